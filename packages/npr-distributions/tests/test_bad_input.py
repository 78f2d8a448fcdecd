import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npr.distributions as dist

INVALID = [
    ("Normal", lambda: dist.Normal(0.0, -1.0, validate_args=True), "scale"),
    ("Gamma", lambda: dist.Gamma(jnp.array([1.0, -2.0]), 1.0, validate_args=True), "concentration"),
    ("Beta", lambda: dist.Beta(1.0, 0.0, validate_args=True), "concentration0"),
    ("Bernoulli", lambda: dist.Bernoulli(probs=1.5, validate_args=True), "probs"),
    ("Categorical", lambda: dist.Categorical(probs=jnp.array([0.5, 0.6]), validate_args=True), "probs"),
    ("Dirichlet", lambda: dist.Dirichlet(jnp.array([1.0, -1.0]), validate_args=True), "concentration"),
    ("Poisson", lambda: dist.Poisson(-3.0, validate_args=True), "rate"),
    ("Uniform", lambda: dist.Uniform(2.0, 1.0, validate_args=True), "low/high"),
    ("Binomial", lambda: dist.Binomial(2.5, probs=0.5, validate_args=True), "total_count"),
]


@pytest.mark.parametrize("name,build,param", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_parameter_names_distribution_and_parameter(name, build, param):
    with pytest.raises(ValueError, match=rf"{name}\w* got invalid {param}"):
        build()


def test_invalid_parameter_inside_jit_with_concrete_values():
    @jax.jit
    def f(x):
        return dist.Normal(0.0, -1.0, validate_args=True).log_prob(x)

    with pytest.raises(ValueError, match="Normal got invalid scale"):
        f(0.0)


def test_traced_parameters_strict_mode_raises():
    @jax.jit
    def f(scale):
        return dist.Normal(0.0, scale, validate_args="strict").log_prob(0.0)

    with pytest.raises(RuntimeError, match="cannot validate parameter 'scale'"):
        f(1.0)


def test_global_validation_switch():
    dist.enable_validation()
    try:
        with pytest.raises(ValueError, match="Exponential got invalid rate"):
            dist.Exponential(-1.0)
    finally:
        dist.enable_validation(False)
    dist.Exponential(-1.0)  # unchecked again


@pytest.mark.parametrize(
    "d,value",
    [
        (dist.Gamma(2.0, 1.0), -1.0),
        (dist.Beta(2.0, 2.0), 1.5),
        (dist.Exponential(1.0), -0.1),
        (dist.Uniform(0.0, 1.0), 2.0),
        (dist.Poisson(2.0), 1.5),
        (dist.Poisson(2.0), -1.0),
        (dist.Bernoulli(probs=0.3), 2.0),
        (dist.Binomial(3, probs=0.3), 4.0),
        (dist.Dirichlet(jnp.ones(3)), jnp.array([0.5, 0.6, -0.1])),
        (dist.HalfNormal(1.0), -0.5),
        (dist.LogNormal(0.0, 1.0), -1.0),
        (dist.TruncatedNormal(0.0, 0.0, 1.0), -0.5),
        (dist.Pareto(2.0, 1.0), 0.5),
        (dist.LKJCholesky(2, 1.0), jnp.array([[1.0, 0.0], [0.5, 0.5]])),
        (dist.Categorical(probs=jnp.ones(3) / 3), 3.0),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, dist.Distribution) else "",
)
def test_outside_support(d, value):
    # Without validation: exactly -inf, never NaN or finite.
    assert float(d.log_prob(value)) == -np.inf
    checked = jax.tree_util.tree_map(lambda x: x, d)
    checked._validate_args = True
    with pytest.raises(ValueError, match="outside the support"):
        checked.log_prob(value)


def test_incompatible_parameter_shapes():
    with pytest.raises(ValueError, match=r"Normal: parameter shapes do not broadcast: loc \(3,\), scale \(4,\)"):
        dist.Normal(jnp.zeros(3), jnp.ones(4))


def test_exactly_one_of_probs_or_logits():
    with pytest.raises(ValueError, match="exactly one of probs or logits"):
        dist.Bernoulli()
    with pytest.raises(ValueError, match="exactly one of probs or logits"):
        dist.Categorical(probs=jnp.ones(2) / 2, logits=jnp.zeros(2))


def test_inputs_not_mutated():
    loc = np.array([1.0, 2.0])
    copy = loc.copy()
    d = dist.Normal(loc, 1.0)
    d.log_prob(np.zeros(2))
    np.testing.assert_array_equal(loc, copy)


PARAMS = [1e-30, 1e-6, 1.0, 1e6, 1e30]


@pytest.mark.parametrize("logit", [-50.0, -10.0, 0.0, 10.0, 50.0])
def test_extreme_logits_exact(logit):
    from scipy.special import log_expit

    d = dist.Bernoulli(logits=logit)
    np.testing.assert_allclose([d.log_prob(1.0), d.log_prob(0.0)], [log_expit(logit), log_expit(-logit)], rtol=1e-10)
    grad = jax.grad(lambda z: dist.Bernoulli(logits=z).log_prob(1.0))(logit)
    assert np.isfinite(grad)
    b = dist.Binomial(10**6, logits=logit)
    assert np.isfinite(b.log_prob(3.0))


@pytest.mark.parametrize(
    "build,value",
    [
        (lambda p: dist.Normal(0.0, p), 1.0),
        (lambda p: dist.Gamma(p, 1.0), 1.0),
        (lambda p: dist.Gamma(1.0, p), 1e-3),
        (lambda p: dist.Beta(p, 1.0), 0.5),
        (lambda p: dist.Exponential(p), 1e-3),
        (lambda p: dist.Poisson(p), 3.0),
        (lambda p: dist.HalfCauchy(p), 2.0),
        (lambda p: dist.StudentT(p, 0.0, 1.0), 3.0),
        (lambda p: dist.LogNormal(0.0, p), 2.0),
        (lambda p: dist.InverseGamma(p, 1.0), 1.0),
        (lambda p: dist.Binomial(10, probs=jnp.clip(p / 1e30, 1e-30, 1.0)), 3.0),
    ],
)
@pytest.mark.parametrize("param", PARAMS)
def test_extreme_parameter_grid_finite(build, value, param):
    value = jnp.asarray(value)
    log_density = build(param).log_prob(value)
    assert not np.isnan(log_density)
    grad_value = jax.grad(lambda v: build(param).log_prob(v))(value)
    grad_param = jax.grad(lambda p: build(p).log_prob(value))(jnp.asarray(param))
    assert not np.isnan(grad_value) and not np.isnan(grad_param)


@pytest.mark.parametrize("x", [0.0, 1e-300, 1e-8, 1e8, 1e300])
def test_boundary_and_tail_values(x):
    for d in [dist.Gamma(2.0, 1.0), dist.Exponential(1.0), dist.HalfNormal(1.0), dist.LogNormal(0.0, 1.0)]:
        log_density = d.log_prob(jnp.asarray(x))
        assert not np.isnan(log_density)
    assert np.isfinite(dist.Normal(0.0, 1.0).log_prob(jnp.asarray(x if x < 1e200 else 1e150)))
    assert float(dist.Beta(2.0, 2.0).log_prob(1.0 - 1e-12)) > -40


def test_tiny_probs_are_finite():
    d = dist.Categorical(probs=jnp.array([1e-30, 1 - 1e-30]))
    assert np.isfinite(d.log_prob(0)) and np.isclose(d.log_prob(0), np.log(1e-30), rtol=1e-6)
