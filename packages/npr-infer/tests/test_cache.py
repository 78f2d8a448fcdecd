import os
import subprocess
import sys

import jax.numpy as jnp
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
