import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npr.distributions as dist
from npr.handlers import plate, sample
from npr.infer import MCMC, NUTS
from npr.infer.data_layout import TransposedDataPotential, laid_out

RNG = np.random.default_rng(5)
TALL = RNG.normal(size=(200, 3)).astype(np.float32)
LABELS = (RNG.uniform(size=200) < 0.5).astype(np.float32)
SITES = {"w": jnp.array([0.3, -0.2, 0.5]), "b": jnp.array(0.1)}


def bernoulli_potential(z, data, labels):
    logits = data @ z["w"] + z["b"]
    return -jnp.sum(labels * logits - jnp.logaddexp(0.0, logits)) + 0.5 * jnp.sum(z["w"] ** 2)


def dot_operand_shapes(potential, *args):
    jaxpr = jax.make_jaxpr(jax.value_and_grad(potential))(*args).jaxpr
    shapes = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                shapes.append(tuple(v.aval.shape for v in eqn.invars))
            for inner in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(inner)

    walk(jaxpr)
    return shapes


def assert_same_value_and_gradient(new_potential, new_args, potential, args):
    value, grad = jax.value_and_grad(potential)(SITES, *args)
    new_value, new_grad = jax.value_and_grad(new_potential)(SITES, *new_args)
    np.testing.assert_allclose(new_value, value, rtol=1e-5)
    for name in SITES:
        np.testing.assert_allclose(new_grad[name], grad[name], rtol=1e-5, atol=1e-5)


def test_tall_data_is_read_transposed_with_the_same_value_and_gradient():
    args = (jnp.asarray(TALL), jnp.asarray(LABELS))
    new_potential, new_args = laid_out(bernoulli_potential, SITES, args)
    assert isinstance(new_potential, TransposedDataPotential)
    assert new_args[0] is args and len(new_args[1]) == 1
    np.testing.assert_array_equal(new_args[1][0], TALL.T)
    assert_same_value_and_gradient(new_potential, new_args, bernoulli_potential, args)
    # The potential and its gradient read only the (3, 200) copy: no dot reads the (200, 3) data.
    shapes = dot_operand_shapes(new_potential, SITES, *new_args)
    assert shapes and all((200, 3) not in pair for pair in shapes)
    assert any((3, 200) in pair for pair in shapes)


@pytest.mark.parametrize(
    "potential, data",
    [
        (lambda z, data: jnp.sum((data @ jnp.full(200, z["b"])) ** 2), TALL.T),  # wide: (3, 200)
        (lambda z, data: jnp.sum(jnp.einsum("nk,nk->n", data, data * z["b"])), TALL),  # no dot of data alone
        (lambda z, data: jnp.sum(z["w"] @ data.T), TALL),  # the model itself reads the data's long axis
        (lambda z, data: jnp.sum(data @ jnp.stack([z["w"]] * 5, axis=1)), TALL),  # data @ (3, 5): kept
    ],
    ids=["wide", "batched", "transposed-by-the-model", "matrix"],
)
def test_other_dots_are_left_as_they_are(potential, data):
    args = (jnp.asarray(data),)
    new_potential, new_args = laid_out(potential, SITES, args)
    assert new_potential is potential and new_args is args


def test_dots_in_jitted_functions_and_on_closed_over_data_read_transposed_copies():
    data = jnp.asarray(TALL)

    @jax.jit
    def predictor(x, w):
        return jnp.einsum("nk,k->n", x, w)

    def potential(z, labels):
        logits = predictor(data, z["w"]) + z["b"]  # `data` is closed over: a constant of the trace
        return -jnp.sum(labels * logits - jnp.logaddexp(0.0, logits))

    args = (jnp.asarray(LABELS),)
    new_potential, new_args = laid_out(potential, SITES, args)
    assert isinstance(new_potential, TransposedDataPotential)
    np.testing.assert_array_equal(new_args[1][0], TALL.T)
    assert_same_value_and_gradient(new_potential, new_args, potential, args)
    assert all((200, 3) not in pair for pair in dot_operand_shapes(new_potential, SITES, *new_args))


def test_a_regression_on_tall_data_samples_its_analytic_posterior():
    # y ~ Normal(X w, 1), w ~ Normal(0, I): the posterior is Normal(S X'y, S) with S = (X'X + I)^-1.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(size=400)).astype(np.float32)

    def model(x, y):
        w = sample("w", dist.Normal(jnp.zeros(4), 1.0).to_event(1))
        with plate("n", x.shape[0]):
            sample("y", dist.Normal(x @ w, 1.0), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=1000, num_chains=2, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(3), x, y)
    draws = np.asarray(mcmc.get_samples()["w"], np.float64)
    xd = x.astype(np.float64)
    cov = np.linalg.inv(xd.T @ xd + np.eye(4))
    mean, sd = cov @ xd.T @ y, np.sqrt(np.diag(cov))
    # 2,000 draws of a nearly independent sampler: the mean's Monte Carlo error is under 0.05 sd.
    np.testing.assert_allclose(draws.mean(0), mean, atol=float(5 * 0.05 * sd.max()))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.15)
