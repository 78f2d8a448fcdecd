"""Time to first draws from a fresh process: warmup + sampling, compilation included.

Each (model, sampler) pair runs in its own new Python process, so no sampler profits from
programs or caches another one left behind; the order of the samplers rotates between repeats.
The clock starts after imports and data preparation and stops when the draws are on the host.

With `--compilation-cache`, every sampler runs with JAX's persistent compilation cache on (npr
through `npr.infer.enable_compilation_cache`, NumPyro and BlackJAX through the same JAX settings),
in a directory of its own per model that one unmeasured process fills first: the time a user waits
in a new session once the model has been compiled before.

Usage: python benchmarks/first_draws.py [--models a,b] [--warmup N] [--samples N] [--chains C]
       [--repeats R] [--compilation-cache] [--out FILE]
"""

import argparse
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
SAMPLERS = ("npr", "numpyro", "blackjax")


def child(sampler, name, warmup, samples, chains, cache_dir=None):
    sys.path.insert(0, str(HERE))
    import jax

    if cache_dir is not None:
        if sampler == "npr":
            from npr.infer import enable_compilation_cache

            enable_compilation_cache(cache_dir)
        else:  # the settings enable_compilation_cache makes
            jax.config.update("jax_compilation_cache_dir", cache_dir)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import jax.numpy as jnp
    import numpy as np
    from models import MODELS

    if sampler == "numpyro":
        import numpyro
        import numpyro.distributions as dist
        from numpyro.infer import MCMC, NUTS

        model, args = MODELS[name]((dist, numpyro.sample, numpyro.plate, numpyro.factor))
    else:
        import npr.distributions as dist
        from npr.handlers import factor, plate, sample
        from npr.infer import MCMC, NUTS, initialize_model

        model, args = MODELS[name]((dist, sample, plate, factor))
    args = jax.block_until_ready(tuple(jnp.asarray(a) for a in args))
    start = time.perf_counter()
    if sampler == "blackjax":
        import blackjax
        from run import _blackjax_chains

        init_params, potential_fn, _ = initialize_model(jax.random.PRNGKey(0), model, *args)
        run = jax.jit(
            lambda key: _blackjax_chains(
                blackjax, lambda z: -potential_fn(z), init_params, key, warmup, samples, chains
            )
        )
        draws = run(jax.random.PRNGKey(0))[0]
    else:
        mcmc = MCMC(
            NUTS(model),
            num_warmup=warmup,
            num_samples=samples,
            num_chains=chains,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(0), *args)
        draws = mcmc.get_samples()
    draws = jax.tree_util.tree_map(np.asarray, draws)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="logistic_seed,eight_schools,correlated_gaussian_100,kidiq_interaction")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compilation-cache", action="store_true")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--child", nargs=2, metavar=("SAMPLER", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        seconds = child(*options.child, options.warmup, options.samples, options.chains, options.cache_dir)
        print(json.dumps({"seconds": seconds}))
        return
    samplers = [s for s in SAMPLERS if s != "blackjax" or _has_blackjax()]
    rows = []
    caches = tempfile.TemporaryDirectory() if options.compilation_cache else None
    for name in options.models.split(","):
        times = {s: [] for s in samplers}

        def run_child(sampler, name=name):
            command = [sys.executable, __file__, "--child", sampler, name]
            command += ["--warmup", str(options.warmup), "--samples", str(options.samples)]
            command += ["--chains", str(options.chains)]
            if caches is not None:
                command += ["--cache-dir", str(pathlib.Path(caches.name) / f"{sampler}-{name}")]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            return json.loads(out.strip().splitlines()[-1])["seconds"]

        if caches is not None:
            for sampler in samplers:
                run_child(sampler)  # fills the sampler's cache
        for repeat in range(options.repeats):
            order = samplers[repeat % len(samplers) :] + samplers[: repeat % len(samplers)]
            for sampler in order:
                times[sampler].append(run_child(sampler))
        medians = {s: statistics.median(t) for s, t in times.items()}
        print(name, {s: [round(x, 2) for x in t] for s, t in times.items()}, flush=True)
        rows.append((name, medians))
    write(rows, samplers, options)


def _has_blackjax():
    try:
        import blackjax  # noqa: F401
    except ImportError:
        return False
    return True


def write(rows, samplers, options):
    import jax

    from npr.infer.chain_groups import host_cores

    what = "time to first draws" if options.chains == 1 else "time to posterior"
    cached = ", persistent compilation cache filled by an earlier process" if options.compilation_cache else ""
    lines = [
        f"\n## NUTS, {what} from a fresh process ({options.chains} chain{'s' if options.chains > 1 else ''}{cached})",
        "",
        f"Command: `python benchmarks/first_draws.py --models {options.models} --warmup {options.warmup} "
        f"--samples {options.samples} --chains {options.chains} --repeats {options.repeats}"
        f"{' --compilation-cache' if options.compilation_cache else ''}`.",
        f"Machine: {platform.machine()}, {jax.device_count()} JAX device(s) ({jax.devices()[0].platform}), "
        f"jax {jax.__version__}; float32; chains vectorized (npr, NumPyro) or vmapped (BlackJAX)"
        + (
            f"; {host_cores()} CPU cores, over which npr's vectorized chains run (up to two chains per core: "
            "one-chain programs, as many at once as there are cores; more: equal vectorized groups; "
            "`npr.infer.chain_groups`)."
            if options.chains > 1
            else "."
        ),
        "Each sampler runs alone in a new process; seconds from after imports and data preparation to draws "
        "on the host (initialisation, compilation, warmup and sampling), median of the repeats. BlackJAX "
        "samples the log density of `npr.infer.initialize_model`, whose cost it includes.",
        "",
        "| model | " + " | ".join(f"{s} (s)" for s in samplers) + " | npr / NumPyro | npr / BlackJAX |",
        "|---|" + "---|" * (len(samplers) + 2),
    ]
    for name, medians in rows:
        cells = " | ".join(f"{medians[s]:.2f}" for s in samplers)
        ratio_blackjax = f"{medians['npr'] / medians['blackjax']:.2f}" if "blackjax" in medians else "-"
        lines.append(f"| {name} | {cells} | {medians['npr'] / medians['numpyro']:.2f} | {ratio_blackjax} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(options.out, "a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
