import subprocess
import sys


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
