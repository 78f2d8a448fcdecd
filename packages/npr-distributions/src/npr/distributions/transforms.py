"""Bijective transforms with log-Jacobians, and `biject_to`: unconstrained space onto a constraint.

Every transform has `__call__` (forward), `inv`, `log_abs_det_jacobian(x, y)` (reduced over the
domain's event dims), `domain`/`codomain` constraints, and `forward_shape`/`inverse_shape`.
"""

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import expit, logit

from npr.distributions import constraints
from npr.distributions._util import sum_rightmost, vec_to_tril_matrix

__all__ = [
    "AffineTransform",
    "ComposeTransform",
    "CorrCholeskyTransform",
    "CorrMatrixCholeskyTransform",
    "ExpTransform",
    "IdentityTransform",
    "IndependentTransform",
    "LowerCholeskyTransform",
    "OrderedTransform",
    "PositiveDefiniteTransform",
    "PowerTransform",
    "SigmoidTransform",
    "StickBreakingTransform",
    "Transform",
    "biject_to",
]


class Transform:
    """Base class of bijections; subclasses set `domain` and `codomain`."""

    domain = constraints.real
    codomain = constraints.real

    def __call__(self, x):
        raise NotImplementedError

    def _inverse(self, y):
        raise NotImplementedError

    def log_abs_det_jacobian(self, x, y):
        raise NotImplementedError

    @property
    def inv(self):
        """The inverse transform."""
        return _InverseTransform(self)

    def forward_shape(self, shape):
        return tuple(shape)

    def inverse_shape(self, shape):
        return tuple(shape)

    def codomain_given(self, support):
        """The image of `support` (a subset of the domain); by default the whole codomain."""
        return self.codomain

    def __repr__(self):
        return type(self).__name__ + "()"


class _InverseTransform(Transform):
    def __init__(self, base):
        self._base = base
        self.domain, self.codomain = base.codomain, base.domain

    def __call__(self, y):
        return self._base._inverse(y)

    def _inverse(self, x):
        return self._base(x)

    @property
    def inv(self):
        return self._base

    def log_abs_det_jacobian(self, y, x):
        return -self._base.log_abs_det_jacobian(x, y)

    def forward_shape(self, shape):
        return self._base.inverse_shape(shape)

    def inverse_shape(self, shape):
        return self._base.forward_shape(shape)


class IdentityTransform(Transform):
    """y = x.

    Example:
      >>> float(IdentityTransform()(2.0))
      2.0
    """

    def __call__(self, x):
        return x

    def _inverse(self, y):
        return y

    def log_abs_det_jacobian(self, x, y):
        return jnp.zeros_like(jnp.asarray(x, dtype=jnp.result_type(float)))


class ExpTransform(Transform):
    """y = exp(x), onto the positive reals.

    Example:
      >>> round(float(ExpTransform().inv(1.0)), 3)
      0.0
    """

    codomain = constraints.positive

    def __call__(self, x):
        return jnp.exp(x)

    def _inverse(self, y):
        return jnp.log(y)

    def log_abs_det_jacobian(self, x, y):
        return jnp.asarray(x)


class AffineTransform(Transform):
    """y = loc + scale * x.

    Example:
      >>> float(AffineTransform(1.0, 2.0)(3.0))
      7.0
    """

    def __init__(self, loc, scale, domain=constraints.real):
        self.loc, self.scale, self.domain = loc, scale, domain
        if domain is constraints.real:
            self.codomain = constraints.real
        elif isinstance(domain, constraints._GreaterThan):
            self.codomain = constraints.greater_than(loc) if _positive_scalar(scale) else constraints.less_than(loc)
        elif isinstance(domain, constraints._Interval):
            low, high = loc + scale * domain.lower_bound, loc + scale * domain.upper_bound
            self.codomain = constraints.interval(jnp.minimum(low, high), jnp.maximum(low, high))
        else:
            self.codomain = constraints.real

    def __call__(self, x):
        return self.loc + self.scale * x

    def codomain_given(self, support):
        return AffineTransform(self.loc, self.scale, domain=support).codomain

    def _inverse(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        return jnp.broadcast_to(jnp.log(jnp.abs(self.scale)), jnp.broadcast_shapes(jnp.shape(x), jnp.shape(self.scale)))


def _positive_scalar(scale):
    try:
        return bool(jnp.all(jnp.asarray(scale) > 0))
    except jax.errors.ConcretizationTypeError:
        return True


class SigmoidTransform(Transform):
    """y = 1 / (1 + exp(-x)), onto the unit interval.

    Example:
      >>> float(SigmoidTransform()(0.0))
      0.5
    """

    codomain = constraints.unit_interval

    def __call__(self, x):
        finfo = jnp.finfo(jnp.result_type(x, float))
        return jnp.clip(expit(x), finfo.tiny, 1.0 - finfo.eps)

    def _inverse(self, y):
        return logit(y)

    def log_abs_det_jacobian(self, x, y):
        return -jax.nn.softplus(x) - jax.nn.softplus(-x)


class PowerTransform(Transform):
    """y = x ** exponent on the positive reals.

    Example:
      >>> float(PowerTransform(2.0)(3.0))
      9.0
    """

    domain = constraints.positive
    codomain = constraints.positive

    def __init__(self, exponent):
        self.exponent = exponent

    def __call__(self, x):
        return jnp.power(x, self.exponent)

    def _inverse(self, y):
        return jnp.power(y, 1.0 / self.exponent)

    def log_abs_det_jacobian(self, x, y):
        return jnp.log(jnp.abs(self.exponent * y / x))


class OrderedTransform(Transform):
    """y_0 = x_0, y_k = y_{k-1} + exp(x_k): onto increasing vectors.

    Example:
      >>> OrderedTransform()(jnp.zeros(3)).tolist()
      [0.0, 1.0, 2.0]
    """

    domain = constraints.real_vector
    codomain = constraints.ordered_vector

    def __call__(self, x):
        increments = jnp.concatenate([x[..., :1], jnp.exp(x[..., 1:])], axis=-1)
        return jnp.cumsum(increments, axis=-1)

    def _inverse(self, y):
        return jnp.concatenate([y[..., :1], jnp.log(jnp.diff(y, axis=-1))], axis=-1)

    def log_abs_det_jacobian(self, x, y):
        return jnp.sum(x[..., 1:], axis=-1)


class StickBreakingTransform(Transform):
    """R^(K-1) onto the K-simplex by Stan's stick-breaking (zero maps to the uniform simplex).

    Example:
      >>> StickBreakingTransform()(jnp.zeros(3)).round(3).tolist()
      [0.25, 0.25, 0.25, 0.25]
    """

    domain = constraints.real_vector
    codomain = constraints.simplex

    @staticmethod
    def _shifted(x):
        num = x.shape[-1]
        return x - jnp.log(jnp.arange(num, 0, -1, dtype=jnp.result_type(x, float)))

    def __call__(self, x):
        u = self._shifted(x)
        log_z = -jax.nn.softplus(-u)
        log_one_minus_z = -jax.nn.softplus(u)
        log_remaining = jnp.cumsum(log_one_minus_z, axis=-1)
        log_remaining_before = jnp.concatenate([jnp.zeros_like(u[..., :1]), log_remaining[..., :-1]], axis=-1)
        head = jnp.exp(log_z + log_remaining_before)
        return jnp.concatenate([head, jnp.exp(log_remaining[..., -1:])], axis=-1)

    def _inverse(self, y):
        remaining = 1.0 - jnp.cumsum(y[..., :-1], axis=-1) + y[..., :-1]
        z = jnp.clip(y[..., :-1] / remaining, jnp.finfo(y.dtype).tiny, 1 - jnp.finfo(y.dtype).eps)
        num = y.shape[-1] - 1
        return logit(z) + jnp.log(jnp.arange(num, 0, -1, dtype=y.dtype))

    def log_abs_det_jacobian(self, x, y):
        u = self._shifted(x)
        log_one_minus_z = -jax.nn.softplus(u)
        log_remaining_before = jnp.cumsum(log_one_minus_z, axis=-1) - log_one_minus_z
        return jnp.sum(-jax.nn.softplus(-u) + log_one_minus_z + log_remaining_before, axis=-1)

    def forward_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + 1,)

    def inverse_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] - 1,)


def _matrix_size_from_tril(length, strict):
    size = (math.isqrt(8 * length + 1) + (1 if strict else -1)) // 2
    if size * (size + (-1 if strict else 1)) // 2 != length:
        raise ValueError(f"a vector of length {length} does not fill a {'strict ' if strict else ''}lower triangle")
    return size


class CorrCholeskyTransform(Transform):
    """R^(K(K-1)/2) onto Cholesky factors of correlation matrices: tanh gives partial correlations
    that are stick-broken along each row, so every row has unit norm.

    Example:
      >>> L = CorrCholeskyTransform()(jnp.zeros(3))
      >>> L.tolist()
      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    domain = constraints.real_vector
    codomain = constraints.corr_cholesky

    def __call__(self, x):
        size = _matrix_size_from_tril(x.shape[-1], strict=True)
        partial = vec_to_tril_matrix(jnp.tanh(x), diagonal=-1, size=size)
        log_remaining = jnp.cumsum(jnp.log1p(-(partial**2)), axis=-1)
        log_remaining_before = jnp.concatenate(
            [jnp.zeros_like(log_remaining[..., :1]), log_remaining[..., :-1]], axis=-1
        )
        scale = jnp.exp(0.5 * log_remaining_before)
        eye = jnp.eye(size, dtype=scale.dtype)
        return partial * scale + eye * scale

    def _inverse(self, y):
        size = y.shape[-1]
        squares_before = jnp.cumsum(y**2, axis=-1) - y**2
        partial = y / jnp.sqrt(jnp.clip(1.0 - squares_before, jnp.finfo(y.dtype).tiny))
        rows, cols = jnp.tril_indices(size, -1)
        clip = 1.0 - jnp.finfo(y.dtype).eps
        return jnp.arctanh(jnp.clip(partial[..., rows, cols], -clip, clip))

    def log_abs_det_jacobian(self, x, y):
        size = y.shape[-1]
        partial = jnp.tanh(x)
        rows, cols = jnp.tril_indices(size, -1)
        squares_before = jnp.cumsum(y**2, axis=-1) - y**2
        remaining = 1.0 - squares_before[..., rows, cols]
        # d tanh = 1 - t^2; each entry is t * sqrt(remaining), and the map is triangular.
        return jnp.sum(jnp.log1p(-(partial**2)) + 0.5 * jnp.log(remaining), axis=-1)

    def forward_shape(self, shape):
        size = _matrix_size_from_tril(shape[-1], strict=True)
        return tuple(shape[:-1]) + (size, size)

    def inverse_shape(self, shape):
        return tuple(shape[:-2]) + (shape[-1] * (shape[-1] - 1) // 2,)


class LowerCholeskyTransform(Transform):
    """R^(K(K+1)/2) onto lower-triangular matrices with positive diagonal (diagonal = exp).

    Example:
      >>> LowerCholeskyTransform()(jnp.zeros(3)).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """

    domain = constraints.real_vector
    codomain = constraints.lower_cholesky

    def __call__(self, x):
        size = _matrix_size_from_tril(x.shape[-1], strict=False)
        strict = vec_to_tril_matrix(x[..., :-size], diagonal=-1, size=size)
        return strict + jnp.exp(x[..., -size:])[..., None] * jnp.eye(size, dtype=x.dtype)

    def _inverse(self, y):
        size = y.shape[-1]
        rows, cols = jnp.tril_indices(size, -1)
        diagonal = jnp.diagonal(y, axis1=-2, axis2=-1)
        return jnp.concatenate([y[..., rows, cols], jnp.log(diagonal)], axis=-1)

    def log_abs_det_jacobian(self, x, y):
        size = y.shape[-1]
        return jnp.sum(x[..., -size:], axis=-1)

    def forward_shape(self, shape):
        size = _matrix_size_from_tril(shape[-1], strict=False)
        return tuple(shape[:-1]) + (size, size)

    def inverse_shape(self, shape):
        return tuple(shape[:-2]) + (shape[-1] * (shape[-1] + 1) // 2,)


def _log_det_jacobian_outer(cholesky, strict):
    """log|J| of L -> L L^T on the free entries of L (lower triangle, or strict lower for unit rows)."""
    size = cholesky.shape[-1]
    diagonal = jnp.diagonal(cholesky, axis1=-2, axis2=-1)
    if strict:
        powers = jnp.arange(size - 1, -1, -1, dtype=cholesky.dtype)
        return jnp.sum(powers * jnp.log(diagonal), axis=-1)
    powers = jnp.arange(size, 0, -1, dtype=cholesky.dtype)
    return size * math.log(2.0) + jnp.sum(powers * jnp.log(diagonal), axis=-1)


class _OuterProductTransform(Transform):
    """A Cholesky-factor transform followed by L -> L L^T."""

    domain = constraints.real_vector
    _factor = None
    _unit_rows = False

    def __call__(self, x):
        cholesky = self._factor(x)
        return cholesky @ jnp.swapaxes(cholesky, -2, -1)

    def _inverse(self, y):
        return self._factor.inv(jnp.linalg.cholesky(y))

    def log_abs_det_jacobian(self, x, y):
        cholesky = self._factor(x)
        return self._factor.log_abs_det_jacobian(x, cholesky) + _log_det_jacobian_outer(cholesky, self._unit_rows)

    def forward_shape(self, shape):
        return self._factor.forward_shape(shape)

    def inverse_shape(self, shape):
        return self._factor.inverse_shape(shape)


class PositiveDefiniteTransform(_OuterProductTransform):
    """R^(K(K+1)/2) onto positive definite matrices: a lower Cholesky factor L, then L L^T.

    Example:
      >>> PositiveDefiniteTransform()(jnp.zeros(3)).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """

    codomain = constraints.positive_definite
    _factor = LowerCholeskyTransform()


class CorrMatrixCholeskyTransform(_OuterProductTransform):
    """R^(K(K-1)/2) onto correlation matrices: a correlation Cholesky factor L, then L L^T.

    Example:
      >>> CorrMatrixCholeskyTransform()(jnp.zeros(1)).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """

    codomain = constraints.corr_matrix
    _factor = CorrCholeskyTransform()
    _unit_rows = True


class IndependentTransform(Transform):
    """Treat `reinterpreted_batch_ndims` batch dims of `base_transform` as event dims.

    Example:
      >>> t = IndependentTransform(ExpTransform(), 1)
      >>> float(t.log_abs_det_jacobian(jnp.ones(3), jnp.exp(jnp.ones(3))))
      3.0
    """

    def __init__(self, base_transform, reinterpreted_batch_ndims):
        self.base_transform = base_transform
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        self.domain = constraints.independent(base_transform.domain, reinterpreted_batch_ndims)
        self.codomain = constraints.independent(base_transform.codomain, reinterpreted_batch_ndims)

    def __call__(self, x):
        return self.base_transform(x)

    def _inverse(self, y):
        return self.base_transform.inv(y)

    def log_abs_det_jacobian(self, x, y):
        return sum_rightmost(self.base_transform.log_abs_det_jacobian(x, y), self.reinterpreted_batch_ndims)

    def forward_shape(self, shape):
        return self.base_transform.forward_shape(shape)

    def inverse_shape(self, shape):
        return self.base_transform.inverse_shape(shape)


class ComposeTransform(Transform):
    """Apply `parts` in order; the log-Jacobians add up over the largest event dim.

    Example:
      >>> t = ComposeTransform([ExpTransform(), AffineTransform(1.0, 2.0)])
      >>> round(float(t(0.0)), 3), round(float(t.inv(t(0.5))), 3)
      (3.0, 0.5)
    """

    def __init__(self, parts):
        self.parts = list(parts)
        self.domain = self.parts[0].domain
        self.codomain = self.parts[-1].codomain

    def __call__(self, x):
        for part in self.parts:
            x = part(x)
        return x

    def _inverse(self, y):
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        event_dim = max(p.domain.event_dim for p in self.parts)
        total = 0.0
        for part in self.parts:
            y_part = part(x)
            term = part.log_abs_det_jacobian(x, y_part)
            total = total + sum_rightmost(term, event_dim - part.domain.event_dim)
            x = y_part
        return total

    def forward_shape(self, shape):
        for part in self.parts:
            shape = part.forward_shape(shape)
        return shape

    def inverse_shape(self, shape):
        for part in reversed(self.parts):
            shape = part.inverse_shape(shape)
        return shape


def biject_to(constraint):
    """The bijection from unconstrained space onto `constraint`.

    Args:
      constraint: a continuous constraint from `npr.distributions.constraints`.
    Returns:
      A `Transform` whose domain is real (or real_vector) and whose codomain is `constraint`.
    Example:
      >>> t = biject_to(constraints.interval(0.0, 10.0))
      >>> float(t(0.0))
      5.0
    """
    c = constraints
    if isinstance(constraint, c.independent):
        return IndependentTransform(biject_to(constraint.base_constraint), constraint.reinterpreted_batch_ndims)
    if constraint is c.real:
        return IdentityTransform()
    if constraint is c.real_vector:
        return IndependentTransform(IdentityTransform(), 1)
    if constraint is c.positive or constraint is c.nonnegative:
        return ExpTransform()
    if constraint is c.unit_interval:
        return SigmoidTransform()
    if isinstance(constraint, c._GreaterThan):
        return ComposeTransform([ExpTransform(), AffineTransform(constraint.lower_bound, 1.0, domain=c.positive)])
    if isinstance(constraint, c._LessThan):
        return ComposeTransform([ExpTransform(), AffineTransform(constraint.upper_bound, -1.0, domain=c.positive)])
    if isinstance(constraint, c._Interval):
        low, high = constraint.lower_bound, constraint.upper_bound
        return ComposeTransform(
            [SigmoidTransform(), AffineTransform(low, jnp.asarray(high) - low, domain=c.unit_interval)]
        )
    if constraint is c.simplex:
        return StickBreakingTransform()
    if constraint is c.ordered_vector:
        return OrderedTransform()
    if constraint is c.corr_cholesky:
        return CorrCholeskyTransform()
    if constraint is c.corr_matrix:
        return CorrMatrixCholeskyTransform()
    if constraint is c.lower_cholesky:
        return LowerCholeskyTransform()
    if constraint is c.positive_definite:
        return PositiveDefiniteTransform()
    if getattr(constraint, "is_discrete", False):
        raise NotImplementedError(f"{constraint!r} is discrete: there is no bijection from unconstrained space")
    raise NotImplementedError(f"biject_to has no transform registered for {constraint!r}")
