"""Simulation-based calibration (Talts et al. 2018) of NUTS, with a negative control.

For each replication a parameter is drawn from the prior, data from the model, and the rank of the
true parameter among thinned posterior draws is recorded. A calibrated sampler gives uniform ranks;
a chi-square test over 10 bins at p > 1e-3 accepts them. The same test must reject a broken kernel
(leapfrog without the Metropolis correction).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import npr.distributions as dist
from npr.handlers import plate, sample, seed, trace
from npr.infer import MCMC, NUTS, fori_collect
from npr.infer.integrator import IntegratorState, leapfrog

pytestmark = pytest.mark.slow
NUM_REPLICATIONS, NUM_DRAWS, THIN = 200, 990, 10


def normal_model(y):
    mu = sample("mu", dist.Normal(0.0, 1.0))
    with plate("data", 5):
        sample("y", dist.Normal(mu, 1.0), obs=y)


def gamma_model(y):
    rate = sample("rate", dist.Gamma(3.0, 2.0))
    with plate("data", 5):
        sample("y", dist.Exponential(rate), obs=y)


def simulate(model, site, key):
    tr = trace(seed(model, key)).get_trace(None)
    return tr[site]["value"], tr["y"]["value"]


def ranks_uniformity_pvalue(ranks, num_ranks):
    counts, _ = np.histogram(ranks, bins=10, range=(0, num_ranks + 1))
    return stats.chisquare(counts).pvalue


@pytest.mark.parametrize("model,site", [(normal_model, "mu"), (gamma_model, "rate")], ids=["normal", "gamma"])
def test_nuts_is_calibrated(model, site):
    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=NUM_DRAWS, progress_bar=False)
    ranks = []
    for rep in range(NUM_REPLICATIONS):
        truth, y = simulate(model, site, jax.random.PRNGKey(rep))
        mcmc.run(jax.random.PRNGKey(10_000 + rep), y)
        draws = np.asarray(mcmc.get_samples()[site])[::THIN]
        ranks.append(int(np.sum(draws < truth)))
    assert ranks_uniformity_pvalue(np.array(ranks), NUM_DRAWS // THIN) > 1e-3


def _normal_potential(mu, y):
    """-log p(mu, y) of normal_model, up to a constant."""
    return 0.5 * jnp.sum(mu**2) + 0.5 * jnp.sum((y - mu[0]) ** 2)


def _broken_kernel(carry):
    x, key, y = carry
    key, key_momentum = jax.random.split(key)
    grad = jax.value_and_grad(lambda z: _normal_potential(z, y))
    value, g = grad(x)
    state = IntegratorState(x, jax.random.normal(key_momentum, (1,)), value, g)
    for _ in range(3):  # no Metropolis correction: the discretisation error is never undone
        state = leapfrog(grad, jnp.ones(1), state, 0.6)
    return state.x, key, y


def _first(carry):
    return carry[0][0]


def test_negative_control_unadjusted_leapfrog_is_flagged():
    ranks = []
    for rep in range(NUM_REPLICATIONS):
        truth, y = simulate(normal_model, "mu", jax.random.PRNGKey(rep))
        start = (jnp.zeros(1), jax.random.PRNGKey(10_000 + rep), y)
        draws = fori_collect(NUM_DRAWS, _broken_kernel, start, transform=_first, progbar=False)
        ranks.append(int(np.sum(np.asarray(draws)[::THIN] < truth)))
    assert ranks_uniformity_pvalue(np.array(ranks), NUM_DRAWS // THIN) < 1e-3
