"""SVI steps per second: npr against NumPyro on the same VAE model and guide, in one process.

Usage: python benchmarks/svi_bench.py [--steps N]
"""

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from vae import HIDDEN, LATENT, PIXELS, make_data


def build(api):
    dist, param, sample, plate, subsample = api

    def net(prefix, n_in, n_out, seed):
        k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
        w1 = param(f"{prefix}_w1", jax.random.normal(k1, (n_in, HIDDEN)) / np.sqrt(n_in))
        b1 = param(f"{prefix}_b1", jnp.zeros(HIDDEN))
        w2 = param(f"{prefix}_w2", jax.random.normal(k2, (HIDDEN, n_out)) / np.sqrt(HIDDEN))
        b2 = param(f"{prefix}_b2", jnp.zeros(n_out))
        return lambda x: jax.nn.softplus(x @ w1 + b1) @ w2 + b2

    def model(data, batch_size):
        decoder = net("decoder", LATENT, PIXELS, 1)
        with plate("images", data.shape[0], subsample_size=batch_size):
            batch = subsample(data, event_dim=1)
            z = sample("z", dist.Normal(jnp.zeros(LATENT), 1.0).to_event(1))
            sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=batch)

    def guide(data, batch_size):
        encoder = net("encoder", PIXELS, 2 * LATENT, 2)
        with plate("images", data.shape[0], subsample_size=batch_size):
            batch = subsample(data, event_dim=1)
            out = encoder(batch)
            sample("z", dist.Normal(out[:, :LATENT], jax.nn.softplus(out[:, LATENT:]) + 1e-3).to_event(1))

    return model, guide


def timed_run(svi_cls, elbo, api, data, steps):
    model, guide = build(api)
    svi = svi_cls(model, guide, optax.adam(1e-2), elbo)
    svi.run(jax.random.PRNGKey(0), steps, data, 100, progress_bar=False)  # compile
    start = time.perf_counter()
    result = svi.run(jax.random.PRNGKey(1), steps, data, 100, progress_bar=False)
    jax.block_until_ready(result.losses)
    seconds = time.perf_counter() - start
    losses = np.asarray(result.losses)
    return seconds, losses[-100:].mean() / data.shape[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--append", help="append the result as a Markdown section to this file")
    options = parser.parse_args()
    steps = options.steps
    data = jnp.asarray(make_data()[0])

    import numpyro
    import numpyro.distributions as ndist
    from numpyro.infer import SVI as NSVI
    from numpyro.infer import Trace_ELBO as NTrace_ELBO

    import npr.distributions as dist
    from npr.handlers import param, plate, sample, subsample
    from npr.infer import SVI, Trace_ELBO

    ours = timed_run(SVI, Trace_ELBO(), (dist, param, sample, plate, subsample), data, steps)
    theirs = timed_run(
        NSVI, NTrace_ELBO(), (ndist, numpyro.param, numpyro.sample, numpyro.plate, numpyro.subsample), data, steps
    )
    lines = [
        "",
        "## SVI: VAE steps per second",
        "",
        f"`python benchmarks/svi_bench.py --steps {steps}`: the VAE of `examples/vae.py` (2000 images of 64 "
        "pixels, batch 100), the same model and guide code run by both libraries, `SVI.run` called twice "
        "and the second call timed (npr reuses its compiled loop).",
        "",
        "| library | steps/s | final loss (nats/image) |",
        "|---|---|---|",
        f"| npr | {steps / ours[0]:.0f} | {ours[1]:.2f} |",
        f"| numpyro | {steps / theirs[0]:.0f} | {theirs[1]:.2f} |",
        "",
        f"npr / NumPyro steps per second: {theirs[0] / ours[0]:.2f}x",
    ]
    print("\n".join(lines))
    if options.append:
        with open(options.append, "a") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
