"""The `Distribution` base class and the distributions built from others.

Distributions are JAX pytrees: their parameters are the leaves, so a distribution object passes
through `jit`, `vmap` and `grad`.

Validation: with `validate_args=True` (per instance, or globally through `enable_validation()`),
invalid parameters raise `ValueError` at construction and `log_prob` raises on values outside the
support. Without validation, `log_prob` of a value outside the support is `-inf`, never NaN or a
finite number. Parameters that are traced (inside `jit` with non-constant inputs) cannot be checked;
`validate_args="strict"` makes that an error instead of a skipped check.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from npr.distributions import constraints
from npr.distributions._util import sum_rightmost

_VALIDATION = {"enabled": False}


def enable_validation(is_validate=True):
    """Turn argument and support checks on (or off) for every distribution made afterwards.

    Example:
      >>> enable_validation(False)
    """
    _VALIDATION["enabled"] = bool(is_validate)


def is_validation_enabled():
    """Whether `enable_validation` has turned checks on for distributions made from now on.

    Example:
      >>> enable_validation(False); is_validation_enabled()
      False
    """
    return _VALIDATION["enabled"]


def _is_traced(x):
    return isinstance(x, jax.core.Tracer)


def _shape_str(x):
    return str(tuple(np.shape(x)))


class Distribution:
    """Base class: subclasses set `arg_constraints`, `support` and implement `sample`/`log_prob`.

    Args:
      batch_shape: shape of independent, non-identical draws.
      event_shape: shape of one draw.
      validate_args: check parameters and `log_prob` values (None: follow `enable_validation`).
    Example:
      >>> import jax.numpy as jnp
      >>> from npr.distributions import Dirichlet
      >>> d = Dirichlet(jnp.ones((2, 3, 4)))
      >>> d.batch_shape, d.event_shape
      ((2, 3), (4,))
    """

    arg_constraints = {}
    support = None
    reparametrized_params = []
    is_discrete = False
    has_enumerate_support = False
    # Leaves of the pytree (constructor keywords); defaults to the arg_constraints keys.
    pytree_data_fields = None
    # Static constructor keywords carried as auxiliary data.
    pytree_aux_fields = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)
        self._validate_args = _VALIDATION["enabled"] if validate_args is None else validate_args
        if self._validate_args:
            self._check_args()

    @classmethod
    def _data_fields(cls):
        return tuple(cls.arg_constraints) if cls.pytree_data_fields is None else cls.pytree_data_fields

    def _tree_flatten(self):
        data = tuple(getattr(self, name) for name in self._data_fields())
        aux = tuple(getattr(self, name) for name in self.pytree_aux_fields)
        return data, (aux, self._batch_shape, self._event_shape)

    @classmethod
    def _tree_unflatten(cls, aux_data, children):
        aux, batch_shape, event_shape = aux_data
        kwargs = dict(zip(cls._data_fields(), children))
        kwargs.update(zip(cls.pytree_aux_fields, aux))
        if all(hasattr(child, "shape") or child is None for child in children):
            # Rebuilding recomputes batch shapes, which differ inside vmap.
            return cls(**kwargs, validate_args=False)
        obj = object.__new__(cls)
        obj.__dict__.update(kwargs)
        obj._batch_shape, obj._event_shape, obj._validate_args = batch_shape, event_shape, False
        return obj

    def _check_args(self):
        name = type(self).__name__
        for param, constraint in self.arg_constraints.items():
            if constraint is constraints.dependent or not hasattr(self, param):
                continue
            value = getattr(self, param)
            if value is None:
                continue
            if _is_traced(value):
                if self._validate_args == "strict":
                    raise RuntimeError(
                        f"{name}: cannot validate parameter {param!r} because it is traced; "
                        "validate outside jit or use validate_args=True to skip traced checks"
                    )
                continue
            with jax.ensure_compile_time_eval():
                ok = np.asarray(constraint(value))
            if not np.all(ok):
                raise ValueError(
                    f"{name} got invalid {param} parameter: expected {constraint!r}, "
                    f"got a value of shape {_shape_str(value)} with {int(np.size(ok) - np.sum(ok))} invalid entries"
                )

    @property
    def batch_shape(self):
        return self._batch_shape

    @property
    def event_shape(self):
        return self._event_shape

    @property
    def event_dim(self):
        return len(self._event_shape)

    def shape(self, sample_shape=()):
        """The shape of `sample(key, sample_shape)`: sample_shape + batch_shape + event_shape."""
        return tuple(sample_shape) + self.batch_shape + self.event_shape

    def sample(self, key, sample_shape=()):
        raise NotImplementedError

    def log_prob(self, value):
        raise NotImplementedError

    @property
    def mean(self):
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    @property
    def variance(self):
        raise NotImplementedError(f"{type(self).__name__} has no closed-form variance")

    def enumerate_support(self, expand=True):
        raise NotImplementedError(f"{type(self).__name__} has no finite support to enumerate")

    def _validate_sample(self, value):
        if not self._validate_args or _is_traced(value):
            return
        with jax.ensure_compile_time_eval():
            ok = np.asarray(self.support(value))
        if not np.all(ok):
            raise ValueError(
                f"{type(self).__name__}: value of shape {_shape_str(value)} is outside the support "
                f"{self.support!r} at {int(np.size(ok) - np.sum(ok))} entries"
            )

    def expand(self, batch_shape):
        """Broadcast to a larger `batch_shape` (returns self when nothing changes)."""
        batch_shape = tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        return ExpandedDistribution(self, batch_shape)

    def expand_by(self, sample_shape):
        return self.expand(tuple(sample_shape) + self.batch_shape)

    def to_event(self, reinterpreted_batch_ndims=None):
        """Treat the rightmost batch dims (all of them by default) as event dims."""
        if reinterpreted_batch_ndims is None:
            reinterpreted_batch_ndims = len(self.batch_shape)
        if reinterpreted_batch_ndims == 0:
            return self
        return Independent(self, reinterpreted_batch_ndims)

    def mask(self, mask):
        """Mask out batch elements: their log density becomes 0 (`mask=False` drops everything)."""
        if mask is True:
            return self
        return MaskedDistribution(self, mask)

    def __repr__(self):
        params = ", ".join(
            f"{name}: {_shape_str(getattr(self, name))}"
            for name in self._data_fields()
            if isinstance(getattr(self, name, None), (jax.Array, np.ndarray))
        )
        return f"{type(self).__name__}({params}; batch_shape={self.batch_shape}, event_shape={self.event_shape})"


def guarded_log_prob(log_prob):
    """Decorate `log_prob`: validate the value when asked, and send values outside the support to -inf."""

    @functools.wraps(log_prob)
    def wrapper(self, value):
        value = jnp.asarray(value)
        if not jnp.issubdtype(value.dtype, jnp.floating):
            # Integer counts: compute in the default float precision, not the integer's width.
            value = value.astype(jnp.result_type(float))
        self._validate_sample(value)
        result = log_prob(self, value)
        support = self.support
        if support is None or support is constraints.real or support is constraints.real_vector:
            return result
        inside = support(value)
        return jnp.where(inside, result, -jnp.inf)

    return wrapper


class ExpandedDistribution(Distribution):
    """`base_dist` broadcast to `batch_shape`."""

    pytree_data_fields = ("base_dist",)
    pytree_aux_fields = ("batch_shape_",)

    def __init__(self, base_dist, batch_shape=None, validate_args=None, batch_shape_=None):
        batch_shape = tuple(batch_shape if batch_shape is not None else batch_shape_)
        try:
            jnp.broadcast_shapes(batch_shape, base_dist.batch_shape)
        except ValueError:
            raise ValueError(
                f"cannot expand {type(base_dist).__name__} with batch shape {base_dist.batch_shape} "
                f"to batch shape {batch_shape}"
            ) from None
        if jnp.broadcast_shapes(batch_shape, base_dist.batch_shape) != batch_shape:
            raise ValueError(f"cannot expand batch shape {base_dist.batch_shape} to the smaller {batch_shape}")
        self.base_dist, self.batch_shape_ = base_dist, batch_shape
        self.support = base_dist.support
        self.is_discrete = base_dist.is_discrete
        self.has_enumerate_support = base_dist.has_enumerate_support
        self.reparametrized_params = base_dist.reparametrized_params
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    def sample(self, key, sample_shape=()):
        extra = len(self.batch_shape) - len(self.base_dist.batch_shape)
        draws = self.base_dist.sample(key, tuple(sample_shape) + self.batch_shape[:extra])
        return jnp.broadcast_to(draws, self.shape(sample_shape)) if self._needs_broadcast() else draws

    def _needs_broadcast(self):
        extra = len(self.batch_shape) - len(self.base_dist.batch_shape)
        return self.batch_shape[extra:] != self.base_dist.batch_shape

    def sample_independent(self, key, sample_shape=()):
        return self.sample(key, sample_shape)

    def log_prob(self, value):
        return jnp.broadcast_to(
            self.base_dist.log_prob(value),
            jnp.broadcast_shapes(jnp.shape(self.base_dist.log_prob(value)), self.batch_shape),
        )

    def enumerate_support(self, expand=True):
        values = self.base_dist.enumerate_support(expand=False)
        if expand:
            return jnp.broadcast_to(values, values.shape[:1] + self.batch_shape + self.event_shape)
        return values

    @property
    def mean(self):
        return jnp.broadcast_to(self.base_dist.mean, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return jnp.broadcast_to(self.base_dist.variance, self.batch_shape + self.event_shape)


class Independent(Distribution):
    """Reinterpret the rightmost `reinterpreted_batch_ndims` batch dims of `base_dist` as event dims.

    Example:
      >>> import jax.numpy as jnp
      >>> from npr.distributions import Normal
      >>> Independent(Normal(jnp.zeros(3), 1.0), 1).event_shape
      (3,)
    """

    pytree_data_fields = ("base_dist",)
    pytree_aux_fields = ("reinterpreted_batch_ndims",)

    def __init__(self, base_dist, reinterpreted_batch_ndims, validate_args=None):
        if reinterpreted_batch_ndims > len(base_dist.batch_shape):
            raise ValueError(
                f"Independent: reinterpreted_batch_ndims={reinterpreted_batch_ndims} exceeds the "
                f"batch rank of {type(base_dist).__name__} (batch shape {base_dist.batch_shape})"
            )
        self.base_dist, self.reinterpreted_batch_ndims = base_dist, reinterpreted_batch_ndims
        split = len(base_dist.batch_shape) - reinterpreted_batch_ndims
        self.support = constraints.independent(base_dist.support, reinterpreted_batch_ndims)
        self.is_discrete = base_dist.is_discrete
        self.reparametrized_params = base_dist.reparametrized_params
        super().__init__(
            base_dist.batch_shape[:split], base_dist.batch_shape[split:] + base_dist.event_shape, validate_args=False
        )

    def sample(self, key, sample_shape=()):
        return self.base_dist.sample(key, sample_shape)

    def log_prob(self, value):
        return sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def variance(self):
        return self.base_dist.variance


class MaskedDistribution(Distribution):
    """`base_dist` whose log density is zeroed where `mask` is False."""

    pytree_data_fields = ("base_dist", "mask_")

    def __init__(self, base_dist, mask_=None, validate_args=None, mask=None):
        mask_ = mask if mask is not None else mask_
        if isinstance(mask_, bool):
            mask_ = jnp.asarray(mask_)
        self.base_dist, self.mask_ = base_dist, mask_
        self.support = base_dist.support
        self.is_discrete = base_dist.is_discrete
        self.reparametrized_params = base_dist.reparametrized_params
        batch_shape = jnp.broadcast_shapes(jnp.shape(mask_), base_dist.batch_shape)
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    def sample(self, key, sample_shape=()):
        return jnp.broadcast_to(self.base_dist.sample(key, sample_shape), self.shape(sample_shape))

    def log_prob(self, value):
        log_density = self.base_dist.log_prob(value)
        return jnp.where(self.mask_, log_density, 0.0)

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def variance(self):
        return self.base_dist.variance


class TransformedDistribution(Distribution):
    """The distribution of `transforms` applied in order to draws of `base_distribution`.

    Example:
      >>> import jax.numpy as jnp
      >>> from npr.distributions import Normal
      >>> from npr.distributions.transforms import ExpTransform
      >>> d = TransformedDistribution(Normal(0.0, 1.0), [ExpTransform()])
      >>> round(float(d.log_prob(1.0)), 4)
      -0.9189
    """

    pytree_data_fields = ("base_distribution",)
    pytree_aux_fields = ("transforms",)
    arg_constraints = {}

    def __init__(self, base_distribution, transforms, validate_args=None):
        self.transforms = list(transforms) if isinstance(transforms, (list, tuple)) else [transforms]
        self.base_distribution = base_distribution
        event_dim = len(base_distribution.event_shape)
        shape = base_distribution.batch_shape + base_distribution.event_shape
        support = base_distribution.support
        for t in self.transforms:
            event_dim = t.codomain.event_dim + max(event_dim - t.domain.event_dim, 0)
            shape = t.forward_shape(shape)
            support = t.codomain_given(support)
        split = len(shape) - event_dim
        self.support = support
        self.reparametrized_params = base_distribution.reparametrized_params
        super().__init__(shape[:split], shape[split:], validate_args=validate_args)

    @property
    def base_dist(self):
        return self.base_distribution

    @property
    def is_reparametrized(self):
        return bool(self.base_distribution.reparametrized_params)

    def sample(self, key, sample_shape=()):
        x = self.base_distribution.sample(key, sample_shape)
        for t in self.transforms:
            x = t(x)
        return x

    def sample_with_intermediates(self, key, sample_shape=()):
        x = self.base_distribution.sample(key, sample_shape)
        intermediates = []
        for t in self.transforms:
            intermediates.append(x)
            x = t(x)
        return x, intermediates

    @guarded_log_prob
    def log_prob(self, value):
        event_dim = len(self.event_shape)
        log_density = 0.0
        y = value
        for t in reversed(self.transforms):
            x = t.inv(y)
            term = t.log_abs_det_jacobian(x, y)
            log_density = log_density - sum_rightmost(term, event_dim - t.codomain.event_dim)
            event_dim = t.domain.event_dim + max(event_dim - t.codomain.event_dim, 0)
            y = x
        base = self.base_distribution.log_prob(y)
        return log_density + sum_rightmost(base, event_dim - len(self.base_distribution.event_shape))


class Delta(Distribution):
    """A point mass at `v`, with optional `log_density` and `event_dim` dims per value.

    Example:
      >>> float(Delta(2.0).log_prob(2.0)), float(Delta(2.0).log_prob(1.0))
      (0.0, -inf)
    """

    arg_constraints = {"v": constraints.dependent, "log_density": constraints.real}
    pytree_aux_fields = ("event_dim_",)
    reparametrized_params = ["v", "log_density"]

    def __init__(self, v=0.0, log_density=0.0, event_dim_=0, validate_args=None, event_dim=None):
        event_dim_ = event_dim if event_dim is not None else event_dim_
        self.v = jnp.asarray(v)
        self.log_density = jnp.asarray(log_density)
        self.event_dim_ = event_dim_
        shape = jnp.shape(self.v)
        split = len(shape) - event_dim_
        self.support = constraints.independent(constraints.real, event_dim_)
        super().__init__(shape[:split], shape[split:], validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        return jnp.broadcast_to(self.v, self.shape(sample_shape))

    def log_prob(self, value):
        equal = sum_rightmost(jnp.asarray(value == self.v, dtype=jnp.result_type(float)), self.event_dim_)
        if self.event_dim_:
            equal = equal == np.prod(self.event_shape)
        return jnp.where(equal, self.log_density, -jnp.inf)

    @property
    def mean(self):
        return self.v

    @property
    def variance(self):
        return jnp.zeros_like(self.v)


class ImproperUniform(Distribution):
    """A flat (improper) density on `support`: log_prob is 0 inside it, -inf outside.

    For Stan's implicit flat priors. `sample` returns points spread over the support (the image of
    Uniform(-2, 2) in unconstrained space) so that models can be traced and initialised; they are not
    draws from a distribution, which does not exist.

    Example:
      >>> import jax.numpy as jnp
      >>> from npr.distributions import constraints
      >>> d = ImproperUniform(constraints.ordered_vector, (), (2,))
      >>> float(d.log_prob(jnp.array([0.0, 1.0]))), float(d.log_prob(jnp.array([1.0, 0.0])))
      (0.0, -inf)
    """

    arg_constraints = {}
    pytree_aux_fields = ("support", "batch_shape_", "event_shape_")

    def __init__(
        self, support, batch_shape=None, event_shape=None, validate_args=None, batch_shape_=(), event_shape_=()
    ):
        self.support = support
        self.batch_shape_ = tuple(batch_shape if batch_shape is not None else batch_shape_)
        self.event_shape_ = tuple(event_shape if event_shape is not None else event_shape_)
        super().__init__(self.batch_shape_, self.event_shape_, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        from npr.distributions.transforms import biject_to

        transform = biject_to(self.support)
        shape = transform.inverse_shape(self.shape(sample_shape))
        return transform(jax.random.uniform(key, shape, minval=-2.0, maxval=2.0))

    @guarded_log_prob
    def log_prob(self, value):
        batch = jnp.shape(value)[: jnp.ndim(value) - len(self.event_shape)]
        return jnp.zeros(batch)

    def expand(self, batch_shape):
        return ImproperUniform(self.support, tuple(batch_shape), self.event_shape)
