import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.example_libraries import optimizers

import npr.distributions as dist
from npr.distributions import constraints
from npr.handlers import param, plate, sample, subsample
from npr.infer import (
    SVI,
    AutoDelta,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
    RenyiELBO,
    Trace_ELBO,
    TraceMeanField_ELBO,
    elbo,
    svi,
)

DATA = np.array([0.8, 1.9, 1.2, 2.5, 0.3, 1.1])
POST_VAR = 1 / (1 / 4 + len(DATA))
POST_MEAN = POST_VAR * DATA.sum()


def normal_model(y):
    mu = sample("mu", dist.Normal(0.0, 2.0))
    with plate("data", len(y)):
        sample("y", dist.Normal(mu, 1.0), obs=y)


def normal_guide(y):
    loc = param("loc", 0.0)
    scale = param("scale", 1.0, constraint=constraints.positive)
    sample("mu", dist.Normal(loc, scale))


@pytest.mark.parametrize(
    "loss", [Trace_ELBO(num_particles=4), TraceMeanField_ELBO(num_particles=4)], ids=["trace", "meanfield"]
)
def test_normal_normal_converges_to_exact_posterior(loss):
    # A decaying step size lets the noisy reparameterised gradients settle on the optimum.
    svi_obj = SVI(normal_model, normal_guide, optax.adam(optax.exponential_decay(0.05, 500, 0.5)), loss)
    result = svi_obj.run(jax.random.PRNGKey(0), 4000, DATA, progress_bar=False)
    assert abs(float(result.params["loc"]) - POST_MEAN) < 0.05
    assert abs(float(result.params["scale"]) - np.sqrt(POST_VAR)) < 0.05
    assert float(result.params["scale"]) > 0
    assert result.losses.shape == (4000,) and result.losses[-100:].mean() < result.losses[:100].mean()


def test_beta_bernoulli_with_beta_guide():
    flips = np.array([1, 0, 1, 1, 1, 0, 1, 1, 0, 1])

    def model(y):
        p = sample("p", dist.Beta(2.0, 2.0))
        with plate("flips", len(y)):
            sample("y", dist.Bernoulli(probs=p), obs=y)

    def guide(y):
        a = param("a", 1.0, constraint=constraints.positive)
        b = param("b", 1.0, constraint=constraints.positive)
        sample("p", dist.Beta(a, b))

    result = SVI(model, guide, optax.adam(0.05), Trace_ELBO(num_particles=8)).run(
        jax.random.PRNGKey(1), 3000, flips, progress_bar=False
    )
    a, b = float(result.params["a"]), float(result.params["b"])
    assert abs(a / (a + b) - 9 / 14) < 0.03  # exact posterior Beta(9, 5)
    assert abs(a + b - 14) < 5


def regression(x, y=None):
    w = sample("w", dist.Normal(jnp.zeros(2), 10.0 * jnp.ones(2)).to_event(1))
    with plate("data", x.shape[0]):
        sample("y", dist.Normal(x @ w, 0.5), obs=y)


X = np.random.default_rng(0).normal(size=(50, 2))
Y = X @ np.array([1.0, -2.0]) + np.random.default_rng(1).normal(0, 0.5, 50)
PRECISION = X.T @ X / 0.25 + np.eye(2) / 100.0
EXACT_COV = np.linalg.inv(PRECISION)
EXACT_MEAN = EXACT_COV @ (X.T @ Y / 0.25)


@pytest.mark.parametrize(
    "guide_cls",
    [
        AutoNormal,
        AutoDiagonalNormal,
        AutoMultivariateNormal,
        AutoLowRankMultivariateNormal,
        AutoDelta,
        AutoLaplaceApproximation,
    ],
)
def test_autoguides_on_linear_regression(guide_cls):
    guide = guide_cls(regression)
    schedule = optax.exponential_decay(0.05, 500, 0.5)
    result = SVI(regression, guide, optax.adam(schedule), Trace_ELBO(num_particles=4)).run(
        jax.random.PRNGKey(2), 3000, X, Y, progress_bar=False
    )
    np.testing.assert_allclose(guide.median(result.params)["w"], EXACT_MEAN, atol=0.03)
    draws = guide.sample_posterior(
        jax.random.PRNGKey(3), result.params, (2000,), *((X, Y) if guide_cls is AutoLaplaceApproximation else ())
    )
    assert draws["w"].shape == (2000, 2)
    if guide_cls is AutoDelta:
        return
    sd = np.asarray(draws["w"]).std(0)
    exact_sd = np.sqrt(np.diag(EXACT_COV))
    np.testing.assert_allclose(sd, exact_sd, rtol=0.3)
    if guide_cls in (AutoMultivariateNormal, AutoLaplaceApproximation):
        corr = np.corrcoef(np.asarray(draws["w"]).T)[0, 1]
        exact_corr = EXACT_COV[0, 1] / np.prod(exact_sd)
        assert abs(corr - exact_corr) < 0.1
    quantiles = (
        guide.quantiles(result.params, [0.25, 0.75], X, Y)
        if guide_cls is AutoLaplaceApproximation
        else guide.quantiles(result.params, [0.25, 0.75])
    )
    assert quantiles["w"].shape == (2, 2) and np.all(quantiles["w"][0] < quantiles["w"][1])


def _dependent_support():
    a = sample("a", dist.Uniform(0.0, 1.0))
    sample("b", dist.Uniform(0.0, a))


@pytest.mark.parametrize("guide_cls", [AutoNormal, AutoDiagonalNormal, AutoDelta])
def test_autoguide_refuses_a_support_that_moves_with_another_latent(guide_cls):
    # Mapping b through the interval of its first trace would give draws outside (0, a).
    svi_ = SVI(_dependent_support, guide_cls(_dependent_support), optax.adam(0.01), Trace_ELBO())
    with pytest.raises(ValueError, match=r"site 'b': its support .* depends on the values of other latent sites"):
        svi_.init(jax.random.PRNGKey(0))


def test_autoguide_follows_a_support_fixed_by_the_data():
    y = jnp.array([1.0, 2.0, -0.5, 0.3])
    upper = 2 * float(jnp.max(jnp.abs(y)))

    def model(y):
        scale = sample("scale", dist.Uniform(0.0, 2 * jnp.max(jnp.abs(y))))
        with plate("n", y.shape[0]):
            sample("y", dist.Normal(0.0, scale), obs=y)

    guide = AutoNormal(model)
    result = SVI(model, guide, optax.adam(0.05), Trace_ELBO()).run(jax.random.PRNGKey(0), 500, y, progress_bar=False)
    draws = np.asarray(guide.sample_posterior(jax.random.PRNGKey(1), result.params, (1000,))["scale"])
    assert np.all((draws > 0) & (draws < upper))
    # The likelihood pulls the scale toward the data's root mean square, well inside the interval.
    assert 0.5 < float(guide.median(result.params)["scale"]) < upper


def test_minibatch_gradient_is_unbiased():
    data = np.random.default_rng(4).normal(1.0, 1.0, size=100)

    def model(batch_size=None):
        mu = sample("mu", dist.Normal(0.0, 10.0))
        with plate("data", 100, subsample_size=batch_size):
            batch = subsample(data, event_dim=0)
            sample("y", dist.Normal(mu, 1.0), obs=batch)

    def guide(batch_size=None):
        sample("mu", dist.Delta(param("m", 0.3)))

    loss = Trace_ELBO()
    grad = lambda key, bs: jax.grad(lambda p: loss.loss(key, p, model, guide, batch_size=bs))({"m": 0.3})["m"]
    full = grad(jax.random.PRNGKey(0), None)
    keys = jax.random.split(jax.random.PRNGKey(5), 2000)
    minibatch = jax.vmap(lambda k: grad(k, 10))(keys)
    assert abs(float(minibatch.mean()) - float(full)) < 5 * float(minibatch.std()) / np.sqrt(2000)
    assert float(minibatch.std()) > 0  # the subsample really varies


def test_discrete_guide_site_uses_score_function():
    def model():
        k = sample("k", dist.Bernoulli(probs=0.8))
        sample("obs", dist.Normal(3.0 * k, 1.0), obs=2.5)

    def guide():
        p = param("p", 0.5, constraint=constraints.unit_interval)
        sample("k", dist.Bernoulli(probs=p))

    result = SVI(model, guide, optax.adam(0.05), Trace_ELBO(num_particles=16)).run(
        jax.random.PRNGKey(6), 1500, progress_bar=False
    )
    like = lambda k: np.exp(-0.5 * (2.5 - 3.0 * k) ** 2)
    exact = 0.8 * like(1) / (0.8 * like(1) + 0.2 * like(0))
    assert abs(float(result.params["p"]) - exact) < 0.05


def test_seed_style_svi_with_example_libraries_and_optax():
    schedule = optimizers.exponential_decay(0.05, 500, 0.5)
    opt_init, opt_update, get_params = optimizers.adam(schedule)
    init_fn, update_fn, evaluate = svi(normal_model, normal_guide, elbo, opt_init, opt_update, get_params)
    opt_state = init_fn(jax.random.PRNGKey(0), model_args=(DATA,), guide_args=(DATA,))
    rng = jax.random.PRNGKey(1)
    for i in range(3000):
        loss, opt_state, rng = update_fn(i, opt_state, rng, model_args=(DATA,), guide_args=(DATA,))
    assert abs(float(get_params(opt_state)["loc"]) - POST_MEAN) < 0.05
    assert np.isfinite(evaluate(opt_state, rng, model_args=(DATA,), guide_args=(DATA,)))
    result = SVI(normal_model, normal_guide, optimizers.adam(schedule), Trace_ELBO()).run(
        jax.random.PRNGKey(0), 3000, DATA, progress_bar=False
    )
    assert abs(float(result.params["loc"]) - POST_MEAN) < 0.05


def test_renyi_elbo_bounds():
    params = {"loc": jnp.array(POST_MEAN), "scale": jnp.array(np.sqrt(POST_VAR) * 1.5)}
    key = jax.random.PRNGKey(0)
    renyi = RenyiELBO(alpha=0.0, num_particles=200).loss(key, params, normal_model, normal_guide, DATA)
    trace_loss = Trace_ELBO(num_particles=200).loss(key, params, normal_model, normal_guide, DATA)
    # The importance-weighted bound is tighter: its negative is smaller than the negative ELBO.
    assert float(renyi) < float(trace_loss)


def test_update_evaluate_get_params_and_stable_update():
    svi_obj = SVI(normal_model, normal_guide, optax.sgd(0.01), Trace_ELBO())
    state = svi_obj.init(jax.random.PRNGKey(0), DATA)
    state, loss = svi_obj.update(state, DATA)
    assert np.isfinite(loss) and np.isfinite(svi_obj.evaluate(state, DATA))
    assert float(svi_obj.get_params(state)["scale"]) > 0
    state2, _ = svi_obj.stable_update(state, DATA)
    assert int(state2.step) == 2


class TestBadInput:
    def test_guide_missing_latent_site(self):
        with pytest.raises(ValueError, match="site 'mu': latent in the model but missing from the guide"):
            SVI(normal_model, lambda y: None, optax.adam(0.1), Trace_ELBO()).run(
                jax.random.PRNGKey(0), 2, DATA, progress_bar=False
            )

    def test_guide_samples_observed_site(self):
        def guide(y):
            normal_guide(y)
            sample("y", dist.Normal(0.0, 1.0).expand((len(y),)))

        with pytest.raises(ValueError, match="site 'y': the guide samples a site that the model observes"):
            SVI(normal_model, guide, optax.adam(0.1), Trace_ELBO()).run(
                jax.random.PRNGKey(0), 2, DATA, progress_bar=False
            )

    def test_param_init_outside_constraint(self):
        def guide(y):
            sample("mu", dist.Normal(param("loc", 0.0), param("scale", -1.0, constraint=constraints.positive)))

        with pytest.raises(ValueError, match="site 'scale'.*violates its constraint"):
            SVI(normal_model, guide, optax.adam(0.1), Trace_ELBO()).init(jax.random.PRNGKey(0), DATA)

    def test_non_finite_loss_stops_and_keeps_last_finite_params(self):
        def model():
            sample("x", dist.Normal(0.0, 1.0))

        def guide():
            loc = param("loc", 0.0)
            sample("x", dist.Normal(loc, jnp.where(loc > 0.5, jnp.nan, 1.0)))

        svi_obj = SVI(model, guide, optax.sgd(0.3), Trace_ELBO())
        with pytest.warns(RuntimeWarning, match="non-finite at step"):
            result = svi_obj.run(jax.random.PRNGKey(0), 50, progress_bar=False, init_params={"loc": 0.45})
        assert np.isfinite(float(result.params["loc"])) and float(result.params["loc"]) <= 0.5 + 1e-6

    def test_bad_optimizer(self):
        with pytest.raises(ValueError, match="optax GradientTransformation"):
            SVI(normal_model, normal_guide, "adam", Trace_ELBO())


def test_no_warnings_in_a_clean_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        SVI(normal_model, normal_guide, optax.adam(0.05), Trace_ELBO()).run(
            jax.random.PRNGKey(0), 10, DATA, progress_bar=False
        )


def test_progress_bar_changes_nothing_but_the_display(capsys):
    svi_obj = SVI(normal_model, normal_guide, optax.adam(0.05), Trace_ELBO())
    quiet = svi_obj.run(jax.random.PRNGKey(0), 300, DATA, progress_bar=False)
    programs = len(svi_obj._compiled)
    shown = svi_obj.run(jax.random.PRNGKey(0), 300, DATA, progress_bar=True)
    assert len(svi_obj._compiled) == programs  # the bar moves between calls of the same program
    np.testing.assert_array_equal(quiet.losses, shown.losses)
    np.testing.assert_array_equal(quiet.params["loc"], shown.params["loc"])
    assert "loss" in capsys.readouterr().err
