import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import random

from npr.distributions import constraints
from npr.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    ExpTransform,
    OrderedTransform,
    PowerTransform,
    SigmoidTransform,
    biject_to,
)

CONSTRAINTS = [
    ("real", constraints.real, ()),
    ("real_vector", constraints.real_vector, (3,)),
    ("positive", constraints.positive, ()),
    ("nonnegative", constraints.nonnegative, ()),
    ("greater_than", constraints.greater_than(-2.5), ()),
    ("less_than", constraints.less_than(1.5), ()),
    ("interval", constraints.interval(-1.0, 3.0), ()),
    ("unit_interval", constraints.unit_interval, ()),
    ("circular", constraints.circular, ()),
    ("simplex", constraints.simplex, (3,)),
    ("ordered_vector", constraints.ordered_vector, (4,)),
    ("corr_cholesky", constraints.corr_cholesky, (6,)),
    ("corr_matrix", constraints.corr_matrix, (3,)),
    ("lower_cholesky", constraints.lower_cholesky, (6,)),
    ("positive_definite", constraints.positive_definite, (6,)),
    ("independent_positive", constraints.independent(constraints.positive, 1), (3,)),
]


@pytest.mark.parametrize("name,constraint,shape", CONSTRAINTS, ids=[c[0] for c in CONSTRAINTS])
def test_biject_to_round_trip_and_image(name, constraint, shape):
    t = biject_to(constraint)
    x = random.normal(random.PRNGKey(0), (5,) + shape)
    y = t(x)
    assert np.all(np.asarray(constraint(y)))
    np.testing.assert_allclose(t.inv(y), x, atol=1e-6, rtol=1e-6)
    assert y.shape == (5,) + tuple(t.forward_shape(shape))
    assert tuple(t.inverse_shape(y.shape[1:])) == shape


def _free_entries(y, constraint):
    """The free coordinates of y: the entries a Lebesgue density is taken with respect to."""
    if constraint in (constraints.corr_cholesky, constraints.corr_matrix):
        rows, cols = np.tril_indices(y.shape[-1], -1)
        return y[rows, cols]
    if constraint in (constraints.lower_cholesky, constraints.positive_definite):
        rows, cols = np.tril_indices(y.shape[-1])
        return y[rows, cols]
    if constraint is constraints.simplex:
        return y[:-1]
    return y.reshape(-1)


@pytest.mark.parametrize("name,constraint,shape", CONSTRAINTS, ids=[c[0] for c in CONSTRAINTS])
def test_log_abs_det_jacobian_matches_autodiff(name, constraint, shape):
    t = biject_to(constraint)
    x = random.normal(random.PRNGKey(1), shape)
    jac = jax.jacobian(lambda v: _free_entries(t(v), constraint).reshape(-1))(x)
    jac = jac.reshape(jac.shape[0], -1)
    _, expected = np.linalg.slogdet(np.asarray(jac))
    actual = t.log_abs_det_jacobian(x, t(x))
    if not shape or constraint.event_dim == 0:
        actual = jnp.sum(actual)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def test_inverse_log_det_is_negated():
    t = ExpTransform()
    x = jnp.array([0.3, -1.2])
    np.testing.assert_allclose(t.inv.log_abs_det_jacobian(t(x), x), -x)


def test_compose_and_elementwise_transforms():
    t = ComposeTransform([ExpTransform(), AffineTransform(1.0, 2.0), PowerTransform(0.5)])
    x = jnp.linspace(-1, 1, 5)
    np.testing.assert_allclose(t.inv(t(x)), x, atol=1e-6)
    expected = jax.vmap(jax.grad(lambda v: t(v)))(x)
    np.testing.assert_allclose(t.log_abs_det_jacobian(x, t(x)), np.log(np.abs(expected)), rtol=1e-6)


def test_sigmoid_stays_inside_open_interval_at_extremes():
    y = SigmoidTransform()(jnp.array([-1000.0, 1000.0]))
    assert 0 < y[0] and y[1] < 1


def test_ordered_transform_values():
    np.testing.assert_allclose(OrderedTransform()(jnp.array([1.0, 0.0, np.log(2.0)])), [1.0, 2.0, 4.0], rtol=1e-6)


def test_discrete_and_dependent_have_no_bijection():
    with pytest.raises(NotImplementedError, match="discrete"):
        biject_to(constraints.nonnegative_integer)
    with pytest.raises(NotImplementedError):
        biject_to(constraints.dependent)


@pytest.mark.parametrize(
    "constraint,inside,outside",
    [
        (constraints.positive, 1.0, -1.0),
        (constraints.unit_interval, 0.5, 1.5),
        (constraints.integer_interval(0, 3), 2.0, 2.5),
        (constraints.boolean, 1.0, 2.0),
        (constraints.simplex, [0.2, 0.8], [0.5, 0.6]),
        (constraints.ordered_vector, [0.0, 1.0], [1.0, 0.0]),
        (constraints.corr_cholesky, [[1.0, 0.0], [0.6, 0.8]], [[1.0, 0.0], [0.6, 0.9]]),
        (constraints.positive_definite, [[2.0, 0.5], [0.5, 1.0]], [[1.0, 2.0], [2.0, 1.0]]),
    ],
)
def test_constraint_membership(constraint, inside, outside):
    assert bool(constraint(jnp.asarray(inside)))
    assert not bool(constraint(jnp.asarray(outside)))
