import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npr.distributions as dist
from npr.handlers import plate, sample
from npr.infer import MCMC, NUTS
from npr.infer.gradient_work import rows_in_loop
from npr.infer.loop_data import PreparedDataPotential, prepared

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
    new_potential, new_args = prepared(bernoulli_potential, SITES, args)
    assert isinstance(new_potential, PreparedDataPotential)
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
    new_potential, new_args = prepared(potential, SITES, args)
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
    new_potential, new_args = prepared(potential, SITES, args)
    assert isinstance(new_potential, PreparedDataPotential)
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


def primitive_names(potential, *args):
    names = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            names.append(eqn.primitive.name)
            for inner in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(inner)

    walk(jax.make_jaxpr(jax.value_and_grad(potential))(*args).jaxpr)
    return names


def scale_tril(dim, seed=4):
    a = np.random.default_rng(seed).normal(size=(dim, dim))
    return np.linalg.cholesky(a @ a.T / dim + 0.05 * np.eye(dim)).astype(np.float32)


def mvn_potential(z, tril):
    return -dist.MultivariateNormal(jnp.zeros(tril.shape[-1]), scale_tril=tril).log_prob(z["x"])


def test_a_triangular_solve_with_data_becomes_a_product_with_its_inverse():
    tril = jnp.asarray(scale_tril(6))
    sites = {"x": jnp.linspace(-1.0, 2.0, 6)}
    new_potential, new_args = prepared(mvn_potential, sites, (tril,))
    assert isinstance(new_potential, PreparedDataPotential) and new_potential.solves_by_inverse
    value, grad = jax.value_and_grad(mvn_potential)(sites, tril)
    new_value, new_grad = jax.value_and_grad(new_potential)(sites, *new_args)
    np.testing.assert_allclose(new_value, value, rtol=1e-5)
    np.testing.assert_allclose(new_grad["x"], grad["x"], rtol=1e-4, atol=1e-5)
    # The potential and its gradient solve nothing in the loop, and the chain programs check U-turns
    # one block per loop iteration for such potentials.
    assert "triangular_solve" not in primitive_names(new_potential, sites, *new_args)
    assert "dot_general" in primitive_names(new_potential, sites, *new_args)
    assert rows_in_loop(new_potential, sites, new_args)


@pytest.mark.parametrize("left_side", [True, False])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("transpose_a", [True, False])
@pytest.mark.parametrize("unit_diagonal", [True, False])
def test_every_kind_of_triangular_solve_keeps_its_value_and_gradient(left_side, lower, transpose_a, unit_diagonal):
    rng = np.random.default_rng(7)
    # A batch of two 4 x 4 triangles, data; the right-hand sides depend on the sites.
    a = np.tril(rng.normal(size=(2, 4, 4))) + 3 * np.eye(4)
    a = jnp.asarray(a if lower else np.swapaxes(a, -1, -2), jnp.float32)
    b_shape = (2, 4, 3) if left_side else (2, 3, 4)
    sites = {"w": jnp.asarray(rng.normal(size=b_shape), jnp.float32)}
    params = dict(left_side=left_side, lower=lower, transpose_a=transpose_a, unit_diagonal=unit_diagonal)

    def potential(z, a):
        return jnp.sum(jnp.sin(jax.lax.linalg.triangular_solve(a, z["w"] ** 2 + 1.0, **params)))

    new_potential, new_args = prepared(potential, sites, (a,))
    assert new_potential.solves_by_inverse
    value, grad = jax.value_and_grad(potential)(sites, a)
    new_value, new_grad = jax.value_and_grad(new_potential)(sites, *new_args)
    np.testing.assert_allclose(new_value, value, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new_grad["w"], grad["w"], rtol=1e-4, atol=1e-5)


def test_the_product_with_the_inverse_rounds_like_the_solve():
    # Against float64: the relative error of L^-1 (L z) for standard normal z, float32, with L of
    # condition number about 1000, stays within a small factor of the solve's own.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    tril64 = np.linalg.cholesky((q * np.logspace(0, -6, 50)) @ q.T).astype(np.float32).astype(np.float64)
    tril = jnp.asarray(tril64, jnp.float32)

    def whitened(z, tril):
        return jax.scipy.linalg.solve_triangular(tril, z["b"], lower=True)

    b = {"b": jnp.zeros(50)}
    new_potential, new_args = prepared(whitened, b, (tril,))
    solve_errors, product_errors = [], []
    for _ in range(20):
        rhs = (tril64 @ rng.normal(size=50)).astype(np.float32)
        truth = np.linalg.solve(tril64, rhs.astype(np.float64))
        for errors, f, args in ((solve_errors, whitened, (tril,)), (product_errors, new_potential, new_args)):
            errors.append(np.linalg.norm(np.asarray(f({"b": jnp.asarray(rhs)}, *args), np.float64) - truth))
    assert max(product_errors) < 4 * max(solve_errors)


def test_values_of_the_data_alone_are_computed_before_the_loop():
    # A covariance matrix given as data: its Cholesky factor, and the solve with it, are prepared.
    cov = jnp.asarray(scale_tril(5) @ scale_tril(5).T)
    sites = {"x": jnp.linspace(-1.0, 1.0, 5)}

    def potential(z, cov):
        return -dist.MultivariateNormal(jnp.zeros(5), covariance_matrix=cov).log_prob(z["x"])

    new_potential, new_args = prepared(potential, sites, (cov,))
    assert "cholesky" in primitive_names(potential, sites, cov)
    assert "cholesky" not in primitive_names(new_potential, sites, *new_args)
    np.testing.assert_allclose(new_potential(sites, *new_args), potential(sites, cov), rtol=1e-5)


@pytest.mark.parametrize(
    "potential",
    [
        lambda z, a: jnp.sum(jnp.sin(jnp.linalg.inv(a) @ z["w"])),  # LU and solves of data alone
        lambda z, a: jnp.sum(jnp.sin(jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a @ a.T), z["w"]))),
    ],
    ids=["inverse", "cho_solve"],
)
def test_linear_algebra_of_data_alone_leaves_the_loop(potential):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(4, 4)) + 4 * np.eye(4), jnp.float32)
    sites = {"w": jnp.asarray(rng.normal(size=4), jnp.float32)}
    new_potential, new_args = prepared(potential, sites, (a,))
    factorizations = ("lu", "cholesky", "triangular_solve", "custom_linear_solve")
    assert any(name in factorizations for name in primitive_names(potential, sites, a))
    assert not any(name in factorizations for name in primitive_names(new_potential, sites, *new_args))
    value, grad = jax.value_and_grad(potential)(sites, a)
    new_value, new_grad = jax.value_and_grad(new_potential)(sites, *new_args)
    np.testing.assert_allclose(new_value, value, rtol=1e-5)
    np.testing.assert_allclose(new_grad["w"], grad["w"], rtol=1e-4, atol=1e-6)


def test_data_only_values_larger_than_the_data_or_elementwise_are_left_in_the_loop():
    data = jnp.linspace(0.1, 1.0, 30)

    def potential(z, data):
        outer = data[:, None] @ data[None, :]  # 900 elements: larger than any data array
        return jnp.sum(outer * z["b"] ** 2) + jnp.sum(jnp.log(data) * z["b"])

    new_potential, new_args = prepared(potential, {"b": jnp.array(0.5)}, (data,))
    assert new_potential is potential and new_args == (data,)


def test_a_multivariate_normal_with_its_scale_as_data_samples_its_covariance():
    tril = scale_tril(4, seed=9)

    def model(tril):
        sample("x", dist.MultivariateNormal(jnp.zeros(4), scale_tril=tril))

    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=1000, num_chains=2, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(5), tril)
    draws = np.asarray(mcmc.get_samples()["x"], np.float64)
    cov = tril.astype(np.float64) @ tril.T.astype(np.float64)
    sd = np.sqrt(np.diag(cov))
    # 2,000 draws, ESS in the hundreds at least: means within 0.25 sd, sds within 15%.
    np.testing.assert_allclose(draws.mean(0), 0.0, atol=float(0.25 * sd.max()))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.15)
    np.testing.assert_allclose(np.corrcoef(draws.T), cov / np.outer(sd, sd), atol=0.1)
