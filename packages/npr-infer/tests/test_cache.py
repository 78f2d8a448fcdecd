import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from npr.infer import compile_small_loops_as_one_kernel


def test_persistent_cache_is_written_and_reused(tmp_path):
    code = (
        "import sys, jax, jax.numpy as jnp; from npr.infer import MCMC, NUTS, enable_compilation_cache;"
        f"enable_compilation_cache({str(tmp_path)!r});"
        "m = MCMC(NUTS(potential_fn=lambda z: 0.5 * jnp.sum(z['x'] ** 2)), num_warmup=20, num_samples=20,"
        " progress_bar=False); m.run(jax.random.PRNGKey(0), init_params={'x': jnp.zeros(2)});"
        "print(float(m.get_samples()['x'].sum()))"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    entries = {p.name for p in tmp_path.iterdir()}
    assert entries, "nothing was written to the compilation cache"
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert first.stdout == second.stdout  # same draws from the cached programs
    assert {p.name for p in tmp_path.iterdir()} == entries  # reused, nothing new compiled


# A loop of 512 floats touches ~2 KiB an iteration: above XLA's default limit of 1 KiB for
# compiling a loop as one function, below the 64 KiB asked for here.
SMALL_LOOP = (
    "import jax, jax.numpy as jnp;"
    "f = jax.jit(lambda x: jax.lax.fori_loop(0, 10, lambda i, y: jnp.sin(y) + i, x));"
    "x = jnp.zeros(512);"
    "print('one kernel' if 'xla_cpu_small_call' in f.lower(x).compile().as_text() else 'thunks',"
    " float(f(x).sum()))"
)


def _env(extra=None):
    return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | (extra or {})


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()).stdout


def test_small_loops_compile_as_one_kernel_on_request():
    plain = _run(SMALL_LOOP).split()
    asked = _run(
        "from npr.infer import compile_small_loops_as_one_kernel; compile_small_loops_as_one_kernel();" + SMALL_LOOP
    ).split()
    assert plain[0] == "thunks" and asked[:2] == ["one", "kernel"]
    assert float(plain[1]) == float(asked[2])  # same result either way


def test_small_loop_request_refused_when_too_late_or_conflicting():
    jnp.ones(2).block_until_ready()  # the backend is running: XLA has read its flags
    with pytest.raises(RuntimeError, match="before JAX runs anything"):
        compile_small_loops_as_one_kernel()
    code = "from npr.infer import compile_small_loops_as_one_kernel as c; c(%s)"
    cases = [
        ("-1", None, "max_bytes must be >= 0"),
        ("", {"XLA_FLAGS": "--xla_backend_extra_options=a=1"}, "already sets"),
    ]
    for argument, env, error in cases:
        with pytest.raises(subprocess.CalledProcessError) as failure:
            subprocess.run(
                [sys.executable, "-c", code % argument], capture_output=True, text=True, check=True, env=_env(env)
            )
        assert error in failure.value.stderr


def test_sampling_with_small_loops_as_one_kernel_finds_the_posterior():
    # There the NUTS leaves check U-turns row by row (npr.infer.gradient_work.rows_in_loop).
    code = (
        "from npr.infer import compile_small_loops_as_one_kernel; compile_small_loops_as_one_kernel();"
        "import jax, jax.numpy as jnp, numpy as np;"
        "import npr.distributions as dist;"
        "from npr.handlers import sample;"
        "from npr.infer import MCMC, NUTS;"
        "from npr.infer.gradient_work import rows_in_loop;"
        "model = lambda: sample('x', dist.Normal(jnp.arange(4.0), jnp.array([0.1, 1.0, 3.0, 10.0])).to_event(1));"
        "m = MCMC(NUTS(model), num_warmup=300, num_samples=1000, progress_bar=False);"
        "m.run(jax.random.PRNGKey(0)); x = np.asarray(m.get_samples()['x']);"
        "print(rows_in_loop(lambda z: jnp.sum(z['x'] ** 2), {'x': jnp.zeros(4)}), *x.mean(0), *x.std(0))"
    )
    out = _run(code).split()
    assert out[0] == "True"
    mean, sd = np.array(out[1:5], float), np.array(out[5:9], float)
    scales = np.array([0.1, 1.0, 3.0, 10.0])
    assert np.all(np.abs(mean - np.arange(4.0)) < 5 * scales / np.sqrt(200))
    assert np.all(np.abs(sd / scales - 1) < 0.2)
