"""The seed's logistic regression: 3000 points, 3 coefficients, 1000 warmup and 1000 NUTS draws.

Run with `nox -s demo` (or `python examples/logistic_regression.py` where npr is installed).
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import npr.distributions as dist
from npr.handlers import sample
from npr.infer import initialize_model, mcmc


def model(data, labels):
    coefs = sample("coefs", dist.Normal(jnp.zeros(3), jnp.ones(3)))
    intercept = sample("intercept", dist.Normal(0.0, 10.0))
    return sample("y", dist.Bernoulli(logits=(coefs * data + intercept).sum(-1)), obs=labels)


def main(num_points=3000, num_warmup=1000, num_samples=1000):
    true_coefs = np.array([1.0, 2.0, 3.0])
    data = jax.random.normal(jax.random.PRNGKey(2), (num_points, 3))
    labels = dist.Bernoulli(logits=(true_coefs * data).sum(-1)).sample(jax.random.PRNGKey(3))
    init_params, potential_fn, constrain_fn = initialize_model(jax.random.PRNGKey(0), model, data, labels)
    samples = mcmc(num_warmup, num_samples, init_params, potential_fn=potential_fn, constrain_fn=constrain_fn)
    return samples


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-points", type=int, default=3000)
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    args = parser.parse_args()
    main(args.num_points, args.num_warmup, args.num_samples)
