import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import npr.distributions as dist
from npr.handlers import deterministic, plate, sample
from npr.infer import initialize_model, log_density


def model_with_transforms(y):
    sigma = sample("sigma", dist.HalfNormal(1.0))
    p = sample("p", dist.Beta(2.0, 3.0))
    mu = sample("mu", dist.Normal(0.0, 1.0))
    deterministic("twice_mu", 2 * mu)
    with plate("data", len(y)):
        sample("y", dist.Normal(mu, sigma * p), obs=y)


def test_potential_is_negative_log_joint_with_jacobians():
    y = np.array([0.1, -0.3, 0.5])
    init, potential_fn, constrain_fn = initialize_model(jax.random.PRNGKey(0), model_with_transforms, y)
    u = {"sigma": jnp.array(0.3), "p": jnp.array(-0.4), "mu": jnp.array(0.2)}
    sigma, p, mu = np.exp(0.3), 1 / (1 + np.exp(0.4)), 0.2
    log_joint = (
        stats.halfnorm.logpdf(sigma)
        + stats.beta(2, 3).logpdf(p)
        + stats.norm.logpdf(mu)
        + stats.norm(mu, sigma * p).logpdf(y).sum()
    )
    log_jacobian = 0.3 + np.log(p * (1 - p))
    np.testing.assert_allclose(potential_fn(u), -(log_joint + log_jacobian), rtol=1e-5)
    constrained = constrain_fn(u)
    np.testing.assert_allclose(constrained["sigma"], sigma, rtol=1e-6)
    np.testing.assert_allclose(constrained["twice_mu"], 0.4, rtol=1e-6)
    assert set(init) == {"sigma", "p", "mu"}


@pytest.mark.parametrize("strategy", ["uniform", "prior", "median"])
def test_init_strategies(strategy):
    init, potential_fn, _ = initialize_model(
        jax.random.PRNGKey(1), model_with_transforms, np.zeros(3), init_strategy=strategy
    )
    assert np.isfinite(potential_fn(init))
    if strategy == "uniform":
        assert all(np.all(np.abs(np.asarray(v)) <= 2) for v in init.values())


def test_init_from_dict_of_constrained_values():
    init, _, constrain_fn = initialize_model(
        jax.random.PRNGKey(1), model_with_transforms, np.zeros(3), init_strategy={"sigma": 2.0, "p": 0.25, "mu": 1.0}
    )
    np.testing.assert_allclose(constrain_fn(init)["sigma"], 2.0, rtol=1e-6)
    np.testing.assert_allclose(init["sigma"], np.log(2.0), rtol=1e-6)


def test_log_density_matches_scipy():
    def model():
        x = sample("x", dist.Gamma(2.0, 1.0))
        sample("obs", dist.Poisson(x), obs=3)

    value, tr = log_density(model, (), {}, {"x": 1.5})
    np.testing.assert_allclose(value, stats.gamma(2.0).logpdf(1.5) + stats.poisson(1.5).logpmf(3), rtol=1e-5)
    assert set(tr) == {"x", "obs"}


class TestBadInput:
    def test_no_latent_sites(self):
        def model():
            sample("y", dist.Normal(0.0, 1.0), obs=1.0)

        with pytest.raises(ValueError, match="no latent sample sites"):
            initialize_model(jax.random.PRNGKey(0), model)

    def test_density_non_finite_everywhere_names_sites(self):
        def model():
            x = sample("x", dist.Normal(0.0, 1.0))
            sample("y", dist.Exponential(1.0), obs=-1.0 + 0.0 * x)

        with pytest.raises(RuntimeError, match=r"after 100 attempt\(s\)(.|\n)*site 'y': log density is -inf"):
            initialize_model(jax.random.PRNGKey(0), model)

    def test_nan_in_observed_data_names_site(self):
        def model(y):
            mu = sample("mu", dist.Normal(0.0, 1.0))
            sample("obs", dist.Normal(mu, 1.0), obs=y)

        with pytest.raises(ValueError, match=r"site 'obs'.*nan at index \(1,\)"):
            initialize_model(jax.random.PRNGKey(0), model, np.array([0.0, np.nan]))

    def test_init_dict_structure_mismatch(self):
        with pytest.raises(ValueError, match=r"missing \['p'\], unknown \['q'\]"):
            initialize_model(
                jax.random.PRNGKey(0),
                model_with_transforms,
                np.zeros(3),
                init_strategy={"sigma": 1.0, "mu": 0.0, "q": 1.0},
            )

    def test_init_dict_outside_support(self):
        with pytest.raises(ValueError, match="site 'sigma'.*outside the support"):
            initialize_model(
                jax.random.PRNGKey(0),
                model_with_transforms,
                np.zeros(3),
                init_strategy={"sigma": -1.0, "p": 0.5, "mu": 0.0},
            )

    def test_discrete_latent_rejected(self):
        def model():
            sample("k", dist.Poisson(3.0))

        with pytest.raises(ValueError, match="site 'k': Poisson is discrete"):
            initialize_model(jax.random.PRNGKey(0), model)

    def test_unknown_strategy(self):
        with pytest.raises(ValueError, match="init_strategy must be one of"):
            initialize_model(jax.random.PRNGKey(0), model_with_transforms, np.zeros(3), init_strategy="mode")


def nested_uniforms(upper=1.0):
    a = sample("a", dist.Uniform(0.0, upper))
    sample("b", dist.Uniform(0.0, a))  # its support moves with a


def test_a_support_that_depends_on_another_latent_follows_it():
    # p(a, b) = 1 / a on 0 < b < a < 1: a ~ Uniform(0, 1), E[b] = 1/4, Var[b] = E[a^2] / 3 - 1/16 = 7/144.
    from npr.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(nested_uniforms), num_warmup=500, num_samples=2000, num_chains=2, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0))
    draws = mcmc.get_samples()
    a, b = np.asarray(draws["a"]), np.asarray(draws["b"])
    assert np.all((0 < b) & (b < a) & (a < 1))
    # Monte Carlo error: 4000 draws at an effective size of at least a quarter of that.
    assert abs(a.mean() - 0.5) < 4 * (1 / 12) ** 0.5 / np.sqrt(1000)
    assert abs(b.mean() - 0.25) < 4 * (7 / 144) ** 0.5 / np.sqrt(1000)
    assert abs(b.std() - (7 / 144) ** 0.5) < 0.1 * (7 / 144) ** 0.5


def test_init_values_are_checked_and_kept_against_the_supports_they_imply():
    # b = 0.8 lies in b's support only because a = 0.9 (with any smaller a it would not).
    init_params, potential_fn, constrain_fn = initialize_model(
        jax.random.PRNGKey(0), nested_uniforms, init_strategy={"a": 0.9, "b": 0.8}
    )
    constrained = constrain_fn(init_params)
    np.testing.assert_allclose([constrained["a"], constrained["b"]], [0.9, 0.8], rtol=1e-5)
    # -log p(a, b) - log Jacobians at the point: p = 1 / a; a = sigmoid(u_a), b = a sigmoid(u_b).
    jacobian = 0.9 * 0.1 * (0.8 * (0.9 - 0.8) / 0.9)
    np.testing.assert_allclose(potential_fn(init_params), np.log(0.9) - np.log(jacobian), rtol=1e-5)
    with pytest.raises(ValueError, match="site 'b': init value .* outside the support"):
        initialize_model(jax.random.PRNGKey(0), nested_uniforms, init_strategy={"a": 0.5, "b": 0.8})


def test_data_moving_a_support_bound_compiles_nothing_again():
    from npr.infer import MCMC, NUTS
    from npr.infer.chain import TRACE_COUNTS

    mcmc = MCMC(NUTS(nested_uniforms), num_warmup=100, num_samples=300, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), jnp.array(1.0))
    traced = TRACE_COUNTS["chain"]
    mcmc.run(jax.random.PRNGKey(1), jnp.array(10.0))
    assert TRACE_COUNTS["chain"] == traced
    a = np.asarray(mcmc.get_samples()["a"])
    assert a.max() > 2 and a.max() < 10  # the new bound, not the old one


def test_with_validation_on_a_bad_parameter_fails_before_sampling():
    from npr.infer import MCMC, NUTS

    def model(scale):
        sample("x", dist.Normal(0.0, scale))

    mcmc = MCMC(NUTS(model), num_warmup=10, num_samples=10, progress_bar=False)
    dist.enable_validation(True)
    try:
        with pytest.raises(ValueError, match="Normal got invalid scale parameter"):
            mcmc.run(jax.random.PRNGKey(0), jnp.array(-1.0))
    finally:
        dist.enable_validation(False)
