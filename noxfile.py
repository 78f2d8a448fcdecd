"""Sessions for the npr monorepo: `nox -l` lists them, `nox` runs the default set."""

import glob
import os
import shutil
import sys
import tempfile

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests", "integration", "build"]

# Each wheel and the npr siblings it declares: the single source of truth for installs.
PACKAGES = {
    "distributions": [],
    "handlers": [],
    "diagnostics": [],
    "infer": ["distributions", "handlers", "diagnostics"],
}
PYTHON = None  # the interpreter nox runs under


def _paths(names, extra=""):
    return [f"packages/npr-{name}{extra}" for name in names]


def _install_all(session, extras="test"):
    session.install(*_paths(["distributions", "handlers", "diagnostics"]), f"packages/npr-infer[{extras}]")


@nox.session(python=PYTHON)
@nox.parametrize("package", list(PACKAGES), ids=list(PACKAGES))
def tests(session, package):
    """One wheel alone (plus its declared siblings): doctests of what is installed, then its tests."""
    session.install(*_paths(PACKAGES[package]), f"packages/npr-{package}[test]")
    session.chdir(f"packages/npr-{package}")
    session.run("pytest", "-q", "--doctest-modules", "--pyargs", f"npr.{package}")
    session.run("pytest", "-q", "-m", "not slow", "tests", *session.posargs)


@nox.session(python=PYTHON)
def integration(session):
    """All four wheels together: end-to-end models in tests/integration."""
    _install_all(session)
    session.run("pytest", "-q", "-m", "not slow", "tests/integration", *session.posargs)


@nox.session(python=PYTHON)
def slow(session):
    """Long statistical tests (posterior database, calibration) across every wheel."""
    _install_all(session)
    session.run("pytest", "-q", "-m", "slow", "tests/integration", *session.posargs)
    # The sampler's correctness tests again in float64.
    session.run("pytest", "-q", "-m", "not slow", "packages/npr-infer/tests/test_hmc.py", env={"JAX_ENABLE_X64": "1"})


@nox.session(python=PYTHON)
def lint(session):
    """ruff check, ruff format --check, and the layout rules of the four wheels."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "tools/check_layout.py")


@nox.session(python=PYTHON)
def build(session):
    """Wheels and sdists into dist/, then each wheel installed alone into a fresh env and imported."""
    session.install("build")
    shutil.rmtree("dist", ignore_errors=True)
    for package in PACKAGES:
        session.run("python", "-m", "build", "--installer", "uv", "--outdir", "dist", f"packages/npr-{package}")
    wheels = {name: glob.glob(f"dist/npr_{name}-*.whl") for name in PACKAGES}
    for name, found in wheels.items():
        if len(found) != 1 or len(glob.glob(f"dist/npr_{name}-*.tar.gz")) != 1:
            session.error(f"expected one wheel and one sdist for npr-{name}, found {found}")
    probes = {
        "distributions": "import npr.distributions as d; d.Normal(0.0, 1.0)",
        "handlers": (
            "import sys, npr.handlers; "
            "assert 'npr.distributions' not in sys.modules, 'npr.handlers imported npr.distributions'"
        ),
        "diagnostics": ("import sys, npr.diagnostics; assert 'jax' not in sys.modules, 'npr.diagnostics imported jax'"),
        "infer": "import npr.infer, npr.distributions, npr.handlers, npr.diagnostics",
    }
    for name in PACKAGES:
        with tempfile.TemporaryDirectory() as env_dir:
            session.run("uv", "venv", "--quiet", "--python", sys.executable, env_dir, external=True)
            python = os.path.join(env_dir, "bin", "python")
            own = [wheels[name][0]] + [wheels[dep][0] for dep in PACKAGES[name]]
            session.run("uv", "pip", "install", "--quiet", "--python", python, *own, external=True)
            session.run(python, "-c", probes[name], external=True)
            others = [other for other in PACKAGES if other not in PACKAGES[name] and other != name]
            check_missing = "; ".join(
                f"importlib.util.find_spec('npr.{other}') is None or sys.exit('npr.{other} present')"
                for other in others
            )
            session.run(python, "-c", f"import importlib.util, sys; {check_missing}", external=True)


@nox.session(python=PYTHON)
def demo(session):
    """The main job: the logistic-regression example with progress bars and the summary table."""
    _install_all(session, extras="test")
    session.run("python", "examples/logistic_regression.py", *session.posargs)


SMALL_MODELS = (
    "logistic_seed,eight_schools,correlated_gaussian_100,kidiq_interaction,garch11,low_dim_gauss_mix,arma11,kilpisjarvi"
)
CHAIN_MODELS = "eight_schools,logistic_seed,kidiq_interaction,garch11,low_dim_gauss_mix"


@nox.session(python=PYTHON)
def bench(session):
    """Side-by-side benchmarks against NumPyro, BlackJAX and ArviZ; writes benchmarks/RESULTS.md (~60 min)."""
    _install_all(session)
    session.install("numpyro", "blackjax", "arviz")
    run = ("python", "benchmarks/run.py")
    # 8 keys: one key's min bulk ESS swings by a factor of 2-4 on some models, 4 left ratios +-10% apart.
    session.run(*run, "--models", SMALL_MODELS, "--keys", "8", *session.posargs)
    # The same with XLA asked to compile small loops as one function (in a new process: XLA reads its flags once).
    session.run(*run, "--models", SMALL_MODELS, "--keys", "8", "--small-loops", "--append")
    for method in ("vectorized", "sequential"):
        chains = ("--chains", "4", "--warmup", "500", "--samples", "500", "--chain-method", method)
        session.run(*run, "--models", CHAIN_MODELS, *chains, "--append")
    # Large models: fewer iterations (a leapfrog step costs milliseconds). 3 keys: with 200 warmup
    # iterations diamonds' step size collapses on some keys, for every sampler (2 keys in 12 for npr and
    # for NumPyro), and one key's min bulk ESS ranged from 2 to 60.
    session.run(
        *run, "--models", "covtype_synthetic,diamonds", "--warmup", "200", "--samples", "200", "--keys", "3", "--append"
    )
    # 3 repeats: on a shared 2-core machine one fresh process's time swings by 10-15%.
    first = ("python", "benchmarks/first_draws.py", "--repeats", "3")
    session.run(*first, "--models", "logistic_seed,eight_schools,kidiq_interaction,garch11,low_dim_gauss_mix")
    four_chains = ("--models", "eight_schools,logistic_seed,kidiq_interaction", "--chains", "4")
    session.run(*first, *four_chains, "--warmup", "500", "--samples", "500")
    # A new session of a model compiled before, every sampler with JAX's persistent compilation cache.
    session.run(*first, *four_chains, "--warmup", "500", "--samples", "500", "--compilation-cache")
    session.run("python", "benchmarks/svi_bench.py", "--append", "benchmarks/RESULTS.md")
    session.run("python", "benchmarks/diagnostics_summary.py", "--append", "benchmarks/RESULTS.md")
