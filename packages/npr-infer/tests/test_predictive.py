import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import npr.distributions as dist
from npr.handlers import plate, sample
from npr.infer import MCMC, NUTS, Predictive, log_likelihood, to_inference_data


def model(x, y=None):
    slope = sample("slope", dist.Normal(0.0, 5.0))
    noise = sample("noise", dist.HalfNormal(2.0))
    with plate("data", x.shape[0]):
        return sample("y", dist.Normal(slope * x, noise), obs=y)


X = np.linspace(-1, 1, 40)
Y = 2.0 * X + np.random.default_rng(1).normal(0, 0.3, 40)


@pytest.fixture(scope="module")
def fitted():
    mcmc = MCMC(
        NUTS(model), num_warmup=200, num_samples=250, num_chains=2, chain_method="vectorized", progress_bar=False
    )
    mcmc.run(jax.random.PRNGKey(0), X, Y, extra_fields=("potential_energy", "accept_prob"))
    return mcmc


def test_prior_predictive_matches_prior():
    draws = Predictive(model, num_samples=4000)(jax.random.PRNGKey(1), X)
    assert draws["y"].shape == (4000, 40) and draws["slope"].shape == (4000,)
    assert stats.kstest(np.asarray(draws["slope"]), stats.norm(0, 5).cdf).pvalue > 1e-3


def test_posterior_predictive_and_batching(fitted):
    samples = fitted.get_samples()
    full = Predictive(model, samples)(jax.random.PRNGKey(2), X)
    batched = Predictive(model, samples, batch_size=64)(jax.random.PRNGKey(2), X)
    assert set(full) == {"y"} and full["y"].shape == (500, 40)
    np.testing.assert_allclose(full["y"], batched["y"], rtol=1e-5, atol=1e-5)
    # Predictive mean at each x is slope * x; its spread is the noise plus the slope's uncertainty.
    np.testing.assert_allclose(np.asarray(full["y"]).mean(0), np.asarray(samples["slope"]).mean() * X, atol=0.1)


def test_log_likelihood_matches_scipy(fitted):
    samples = fitted.get_samples()
    ll = log_likelihood(model, samples, X, Y)["y"]
    expected = stats.norm(np.asarray(samples["slope"])[:, None] * X, np.asarray(samples["noise"])[:, None]).logpdf(Y)
    assert ll.shape == (500, 40)
    np.testing.assert_allclose(ll, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_likelihood(model, samples, X, Y, batch_size=100)["y"], ll, rtol=1e-6)


def test_inference_data_and_loo(fitted):
    import arviz as az

    prior = Predictive(model, num_samples=100)(jax.random.PRNGKey(3), X)
    predictive = Predictive(model, fitted.get_samples())(jax.random.PRNGKey(4), X)
    idata = to_inference_data(fitted, prior=prior, posterior_predictive=predictive)
    for group in ["posterior", "sample_stats", "observed_data", "log_likelihood", "prior", "posterior_predictive"]:
        assert group in idata.groups()
    for stat in ["lp", "diverging", "energy", "n_steps", "tree_depth", "step_size", "acceptance_rate"]:
        assert stat in idata.sample_stats
    assert idata.posterior["slope"].shape == (2, 250)
    np.testing.assert_array_equal(idata.observed_data["y"], Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and loo.elpd_loo < 0
    assert az.bfmi(idata).shape == (2,)


class TestBadInput:
    def test_leading_sizes_disagree(self):
        with pytest.raises(ValueError, match="disagree in their leading"):
            Predictive(model, {"slope": jnp.zeros(3), "noise": jnp.ones(4)})

    def test_num_samples_contradicts(self):
        with pytest.raises(ValueError, match="num_samples=5 contradicts the 3 posterior draws"):
            Predictive(model, {"slope": jnp.zeros(3)}, num_samples=5)

    def test_needs_something(self):
        with pytest.raises(ValueError, match="needs posterior_samples or num_samples"):
            Predictive(model)
