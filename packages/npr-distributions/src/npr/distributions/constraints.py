"""Constraints: the sets that distribution parameters and supports live in.

A constraint is callable: `constraint(x)` returns a boolean array, reduced over the constraint's
`event_dim` rightmost dims. `biject_to(constraint)` (in `npr.distributions.transforms`) gives the
bijection from unconstrained space onto every continuous constraint.
"""

import jax.numpy as jnp
import numpy as np

__all__ = [
    "Constraint",
    "boolean",
    "circular",
    "corr_cholesky",
    "corr_matrix",
    "dependent",
    "greater_than",
    "independent",
    "integer_greater_than",
    "integer_interval",
    "interval",
    "less_than",
    "lower_cholesky",
    "nonnegative",
    "nonnegative_integer",
    "ordered_vector",
    "positive",
    "positive_definite",
    "positive_integer",
    "real",
    "real_vector",
    "simplex",
    "unit_interval",
]


def _reduce_event(ok, event_dim):
    return jnp.all(ok, axis=tuple(range(-event_dim, 0))) if event_dim else ok


class Constraint:
    """Base class: a set of valid values with `event_dim` dims per element.

    Example:
      >>> bool(positive(2.0)), bool(positive(-1.0))
      (True, False)
    """

    event_dim = 0
    is_discrete = False

    def __call__(self, x):
        raise NotImplementedError

    def feasible_like(self, prototype):
        """A value inside the constraint with the shape of `prototype`."""
        return jnp.zeros_like(prototype)

    def __repr__(self):
        name = type(self).__name__.lstrip("_")
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class _Real(Constraint):
    def __call__(self, x):
        x = jnp.asarray(x)
        return (x == x) & (jnp.abs(x) != jnp.inf)


class _RealVector(_Real):
    event_dim = 1

    def __call__(self, x):
        return _reduce_event(super().__call__(x), 1)


class _Boolean(Constraint):
    is_discrete = True

    def __call__(self, x):
        return (x == 0) | (x == 1)


class _GreaterThan(Constraint):
    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def __call__(self, x):
        return x > self.lower_bound

    def feasible_like(self, prototype):
        return jnp.broadcast_to(self.lower_bound + 1, jnp.shape(prototype)).astype(jnp.result_type(prototype, float))

    def __repr__(self):
        return f"greater_than(lower_bound={self.lower_bound})"


class _Positive(_GreaterThan):
    def __init__(self):
        super().__init__(0.0)

    def __repr__(self):
        return "positive"


class _Nonnegative(_GreaterThan):
    def __init__(self):
        super().__init__(0.0)

    def __call__(self, x):
        return x >= 0

    def __repr__(self):
        return "nonnegative"


class _LessThan(Constraint):
    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def __call__(self, x):
        return x < self.upper_bound

    def feasible_like(self, prototype):
        return jnp.broadcast_to(self.upper_bound - 1, jnp.shape(prototype)).astype(jnp.result_type(prototype, float))

    def __repr__(self):
        return f"less_than(upper_bound={self.upper_bound})"


class _Interval(Constraint):
    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def __call__(self, x):
        return (x >= self.lower_bound) & (x <= self.upper_bound)

    def feasible_like(self, prototype):
        mid = (jnp.asarray(self.lower_bound) + jnp.asarray(self.upper_bound)) / 2
        return jnp.broadcast_to(mid, jnp.shape(prototype)).astype(jnp.result_type(prototype, float))

    def __repr__(self):
        return f"interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class _OpenInterval(_Interval):
    def __call__(self, x):
        return (x > self.lower_bound) & (x < self.upper_bound)


class _UnitInterval(_Interval):
    def __init__(self):
        super().__init__(0.0, 1.0)

    def __repr__(self):
        return "unit_interval"


class _Circular(_Interval):
    def __init__(self):
        super().__init__(-np.pi, np.pi)

    def __repr__(self):
        return "circular"


class _IntegerInterval(Constraint):
    is_discrete = True

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def __call__(self, x):
        return (x >= self.lower_bound) & (x <= self.upper_bound) & (x == jnp.floor(x))

    def feasible_like(self, prototype):
        return jnp.broadcast_to(self.lower_bound, jnp.shape(prototype)).astype(jnp.result_type(prototype))

    def __repr__(self):
        return f"integer_interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class _IntegerGreaterThan(Constraint):
    is_discrete = True

    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def __call__(self, x):
        return (x >= self.lower_bound) & (x == jnp.floor(x))

    def feasible_like(self, prototype):
        return jnp.broadcast_to(self.lower_bound, jnp.shape(prototype)).astype(jnp.result_type(prototype))

    def __repr__(self):
        return f"integer_greater_than(lower_bound={self.lower_bound})"


class _Simplex(Constraint):
    event_dim = 1

    def __call__(self, x):
        x = jnp.asarray(x)
        return jnp.all(x >= 0, axis=-1) & (jnp.abs(x.sum(-1) - 1) < 1e-6 * x.shape[-1] ** 0.5 + 1e-6)

    def feasible_like(self, prototype):
        return jnp.full_like(prototype, 1.0 / jnp.shape(prototype)[-1])


class _OrderedVector(Constraint):
    event_dim = 1

    def __call__(self, x):
        x = jnp.asarray(x)
        return jnp.all(x[..., 1:] > x[..., :-1], axis=-1) & jnp.all(jnp.isfinite(x), axis=-1)

    def feasible_like(self, prototype):
        return jnp.broadcast_to(jnp.arange(jnp.shape(prototype)[-1], dtype=float), jnp.shape(prototype))


class _LowerCholesky(Constraint):
    event_dim = 2

    def __call__(self, x):
        x = jnp.asarray(x)
        lower = jnp.all(jnp.tril(x) == x, axis=(-2, -1))
        return lower & jnp.all(jnp.diagonal(x, axis1=-2, axis2=-1) > 0, axis=-1)

    def feasible_like(self, prototype):
        return jnp.broadcast_to(jnp.eye(jnp.shape(prototype)[-1]), jnp.shape(prototype))


class _CorrCholesky(_LowerCholesky):
    def __call__(self, x):
        x = jnp.asarray(x)
        unit_rows = jnp.all(jnp.abs(jnp.sum(x * x, axis=-1) - 1) < 1e-5, axis=-1)
        return super().__call__(x) & unit_rows


class _PositiveDefinite(Constraint):
    event_dim = 2

    def __call__(self, x):
        x = jnp.asarray(x)
        symmetric = jnp.all(jnp.abs(x - jnp.swapaxes(x, -2, -1)) < 1e-6, axis=(-2, -1))
        return symmetric & jnp.all(jnp.linalg.eigvalsh(x) > 0, axis=-1)

    def feasible_like(self, prototype):
        return jnp.broadcast_to(jnp.eye(jnp.shape(prototype)[-1]), jnp.shape(prototype))


class _CorrMatrix(_PositiveDefinite):
    def __call__(self, x):
        x = jnp.asarray(x)
        unit_diagonal = jnp.all(jnp.abs(jnp.diagonal(x, axis1=-2, axis2=-1) - 1) < 1e-6, axis=-1)
        return super().__call__(x) & unit_diagonal


class _Dependent(Constraint):
    """Placeholder for a support that depends on other parameters; it cannot be checked or bijected."""

    def __call__(self, x):
        raise ValueError("a dependent constraint cannot be checked: it depends on other parameters")


class independent(Constraint):
    """Reinterpret the rightmost `reinterpreted_batch_ndims` dims of `base` as event dims.

    Example:
      >>> bool(independent(positive, 1)(jnp.array([1.0, -1.0])))
      False
    """

    def __init__(self, base_constraint, reinterpreted_batch_ndims):
        self.base_constraint = base_constraint
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        self.event_dim = base_constraint.event_dim + reinterpreted_batch_ndims
        self.is_discrete = base_constraint.is_discrete

    def __call__(self, x):
        return _reduce_event(self.base_constraint(x), self.reinterpreted_batch_ndims)

    def feasible_like(self, prototype):
        return self.base_constraint.feasible_like(prototype)

    def __repr__(self):
        return f"independent({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


boolean = _Boolean()
circular = _Circular()
corr_cholesky = _CorrCholesky()
corr_matrix = _CorrMatrix()
dependent = _Dependent()
greater_than = _GreaterThan
integer_interval = _IntegerInterval
integer_greater_than = _IntegerGreaterThan
interval = _Interval
open_interval = _OpenInterval
less_than = _LessThan
lower_cholesky = _LowerCholesky()
nonnegative = _Nonnegative()
nonnegative_integer = _IntegerGreaterThan(0)
ordered_vector = _OrderedVector()
positive = _Positive()
positive_definite = _PositiveDefinite()
positive_integer = _IntegerGreaterThan(1)
real = _Real()
real_vector = _RealVector()
simplex = _Simplex()
unit_interval = _UnitInterval()
