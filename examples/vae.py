"""A small variational autoencoder trained with SVI on generated 8x8 binary images.

The data are noisy copies of 10 random prototype images (generated, nothing is downloaded). The
encoder and decoder are one-hidden-layer networks in plain JAX whose weights are `param` sites;
mini-batches come from `plate(..., subsample_size=...)`.

Run: python examples/vae.py [--steps 3000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import npr.distributions as dist
from npr.handlers import param, plate, sample, subsample
from npr.infer import SVI, Trace_ELBO

PIXELS, HIDDEN, LATENT = 64, 64, 2


def make_data(num=2000, seed=0):
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(size=(10, PIXELS)) < 0.5
    labels = rng.integers(0, 10, size=num)
    flips = rng.uniform(size=(num, PIXELS)) < 0.05
    return (prototypes[labels] ^ flips).astype(np.float32), labels


def init_layer(key, n_in, n_out):
    return {"w": jax.random.normal(key, (n_in, n_out)) / np.sqrt(n_in), "b": jnp.zeros(n_out)}


def mlp(weights, x):
    hidden = jax.nn.softplus(x @ weights["hidden"]["w"] + weights["hidden"]["b"])
    return hidden @ weights["out"]["w"] + weights["out"]["b"]


def init_network(key, n_in, n_out):
    k1, k2 = jax.random.split(key)
    return {"hidden": init_layer(k1, n_in, HIDDEN), "out": init_layer(k2, HIDDEN, n_out)}


def model(data, batch_size=None):
    decoder = param("decoder", init_network(jax.random.PRNGKey(1), LATENT, PIXELS))
    with plate("images", data.shape[0], subsample_size=batch_size):
        batch = subsample(data, event_dim=1)
        z = sample("z", dist.Normal(jnp.zeros(LATENT), 1.0).to_event(1))
        sample("x", dist.Bernoulli(logits=mlp(decoder, z)).to_event(1), obs=batch)


def guide(data, batch_size=None):
    encoder = param("encoder", init_network(jax.random.PRNGKey(2), PIXELS, 2 * LATENT))
    with plate("images", data.shape[0], subsample_size=batch_size):
        batch = subsample(data, event_dim=1)
        out = mlp(encoder, batch)
        sample("z", dist.Normal(out[:, :LATENT], jax.nn.softplus(out[:, LATENT:]) + 1e-3).to_event(1))


def main(steps=3000, batch_size=100):
    data, labels = make_data()
    svi = SVI(model, guide, optax.adam(1e-2), Trace_ELBO())
    start = time.perf_counter()
    result = svi.run(jax.random.PRNGKey(0), steps, jnp.asarray(data), batch_size=batch_size)
    elapsed = time.perf_counter() - start
    losses = np.asarray(result.losses)
    print(
        f"{steps} steps in {elapsed:.1f} s; loss per image {losses[:100].mean() / len(data):.2f} -> "
        f"{losses[-100:].mean() / len(data):.2f} nats"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    main(args.steps)
