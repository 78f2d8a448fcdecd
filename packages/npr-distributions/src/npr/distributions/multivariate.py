"""Vector-valued families: Dirichlet, multivariate normals, Gaussian random walk."""

import math

import jax.numpy as jnp
from jax import random
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import gammaln, xlogy

from npr.distributions import constraints
from npr.distributions._util import as_float, broadcast_params
from npr.distributions.distribution import Distribution, guarded_log_prob

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class Dirichlet(Distribution):
    """Dirichlet(concentration) on the simplex; the last dim of `concentration` is the event.

    Example:
      >>> import jax.numpy as jnp
      >>> Dirichlet(jnp.ones((2, 3, 4))).batch_shape
      (2, 3)
    """

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    reparametrized_params = ["concentration"]

    def __init__(self, concentration, validate_args=None):
        concentration = as_float(concentration)
        if concentration.ndim < 1:
            raise ValueError("Dirichlet: concentration must have at least one dim (the event), got a scalar")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return random.dirichlet(key, self.concentration, shape=shape)

    @guarded_log_prob
    def log_prob(self, value):
        a = self.concentration
        normaliser = jnp.sum(gammaln(a), axis=-1) - gammaln(jnp.sum(a, axis=-1))
        return jnp.sum(xlogy(a - 1.0, value), axis=-1) - normaliser

    @property
    def mean(self):
        return self.concentration / jnp.sum(self.concentration, axis=-1, keepdims=True)

    @property
    def variance(self):
        total = jnp.sum(self.concentration, axis=-1, keepdims=True)
        return self.concentration * (total - self.concentration) / (total**2 * (total + 1))


class MultivariateNormal(Distribution):
    """Multivariate normal given exactly one of covariance_matrix, precision_matrix or scale_tril.

    Example:
      >>> import jax.numpy as jnp
      >>> d = MultivariateNormal(jnp.zeros(2), covariance_matrix=jnp.eye(2))
      >>> round(float(d.log_prob(jnp.zeros(2))), 4)
      -1.8379
    """

    arg_constraints = {"loc": constraints.real_vector, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    reparametrized_params = ["loc", "scale_tril"]

    def __init__(self, loc=0.0, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        given = [m is not None for m in (covariance_matrix, precision_matrix, scale_tril)]
        if sum(given) != 1:
            raise ValueError(
                "MultivariateNormal: give exactly one of covariance_matrix, precision_matrix or scale_tril"
            )
        if covariance_matrix is not None:
            scale_tril = jnp.linalg.cholesky(as_float(covariance_matrix))
        elif precision_matrix is not None:
            precision_matrix = as_float(precision_matrix)
            # The inverse of a Cholesky factor of the precision gives a factor of the covariance.
            flipped = jnp.linalg.cholesky(jnp.flip(precision_matrix, axis=(-2, -1)))
            inverse = solve_triangular(flipped, jnp.broadcast_to(jnp.eye(flipped.shape[-1]), flipped.shape), lower=True)
            scale_tril = jnp.swapaxes(jnp.flip(inverse, axis=(-2, -1)), -2, -1)
        scale_tril = as_float(scale_tril)
        loc = as_float(loc)
        if loc.ndim == 0:
            loc = jnp.broadcast_to(loc, scale_tril.shape[-1:])
        if loc.shape[-1] != scale_tril.shape[-1]:
            raise ValueError(
                f"MultivariateNormal: loc has event size {loc.shape[-1]} but the scale matrix is "
                f"{scale_tril.shape[-2:]}"
            )
        params, batch_shape = broadcast_params(
            "MultivariateNormal", event_dims={"loc": 1, "scale_tril": 2}, loc=loc, scale_tril=scale_tril
        )
        self.loc, self.scale_tril = params["loc"], params["scale_tril"]
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)

    @property
    def covariance_matrix(self):
        return self.scale_tril @ jnp.swapaxes(self.scale_tril, -2, -1)

    @property
    def precision_matrix(self):
        return jnp.linalg.inv(self.covariance_matrix)

    def sample(self, key, sample_shape=()):
        eps = random.normal(key, self.shape(sample_shape), dtype=self.loc.dtype)
        return self.loc + jnp.squeeze(self.scale_tril @ eps[..., None], -1)

    def log_prob(self, value):
        self._validate_sample(value)
        diff = value - self.loc
        batch = jnp.broadcast_shapes(diff.shape[:-1], self.batch_shape)
        scale_tril = jnp.broadcast_to(self.scale_tril, batch + self.scale_tril.shape[-2:])
        diff = jnp.broadcast_to(diff, batch + diff.shape[-1:])
        # L x = d solved as (L^T)^T x = d: LAPACK reads its matrix column-major, which L^T is when L
        # comes in row-major, so a scale given as data is not relaid out on every evaluation.
        whitened = solve_triangular(jnp.swapaxes(scale_tril, -2, -1), diff[..., None], trans=1, lower=False)[..., 0]
        half_log_det = jnp.sum(jnp.log(jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)), axis=-1)
        return -0.5 * jnp.sum(whitened**2, axis=-1) - half_log_det - self.event_shape[0] * _HALF_LOG_TWO_PI

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return jnp.sum(self.scale_tril**2, axis=-1)


class LowRankMultivariateNormal(Distribution):
    """Normal with covariance cov_factor @ cov_factor.T + diag(cov_diag).

    Example:
      >>> import jax.numpy as jnp
      >>> d = LowRankMultivariateNormal(jnp.zeros(3), jnp.ones((3, 1)), jnp.ones(3))
      >>> d.variance.tolist()
      [2.0, 2.0, 2.0]
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "cov_factor": constraints.independent(constraints.real, 2),
        "cov_diag": constraints.independent(constraints.positive, 1),
    }
    support = constraints.real_vector
    reparametrized_params = ["loc", "cov_factor", "cov_diag"]

    def __init__(self, loc, cov_factor, cov_diag, validate_args=None):
        loc, cov_factor, cov_diag = as_float(loc), as_float(cov_factor), as_float(cov_diag)
        if cov_factor.ndim < 2 or cov_factor.shape[-2] != loc.shape[-1] or cov_diag.shape[-1] != loc.shape[-1]:
            raise ValueError(
                f"LowRankMultivariateNormal: expected loc (..., D), cov_factor (..., D, K), cov_diag (..., D); "
                f"got {loc.shape}, {cov_factor.shape}, {cov_diag.shape}"
            )
        params, batch_shape = broadcast_params(
            "LowRankMultivariateNormal",
            event_dims={"loc": 1, "cov_factor": 2, "cov_diag": 1},
            loc=loc,
            cov_factor=cov_factor,
            cov_diag=cov_diag,
        )
        self.loc, self.cov_factor, self.cov_diag = params["loc"], params["cov_factor"], params["cov_diag"]
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)

    @property
    def covariance_matrix(self):
        w = self.cov_factor
        return w @ jnp.swapaxes(w, -2, -1) + self.cov_diag[..., None] * jnp.eye(self.event_shape[0])

    def sample(self, key, sample_shape=()):
        key_factor, key_diag = random.split(key)
        shape = tuple(sample_shape) + self.batch_shape
        eps_factor = random.normal(key_factor, shape + self.cov_factor.shape[-1:], dtype=self.loc.dtype)
        eps_diag = random.normal(key_diag, shape + self.event_shape, dtype=self.loc.dtype)
        return self.loc + jnp.squeeze(self.cov_factor @ eps_factor[..., None], -1) + jnp.sqrt(self.cov_diag) * eps_diag

    def log_prob(self, value):
        self._validate_sample(value)
        return MultivariateNormal(self.loc, covariance_matrix=self.covariance_matrix).log_prob(value)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return jnp.sum(self.cov_factor**2, axis=-1) + self.cov_diag


class GaussianRandomWalk(Distribution):
    """A random walk of `num_steps` steps with Normal(0, scale) increments, started at 0.

    Example:
      >>> GaussianRandomWalk(2.0, num_steps=3).variance.tolist()
      [4.0, 8.0, 12.0]
    """

    arg_constraints = {"scale": constraints.positive}
    support = constraints.real_vector
    reparametrized_params = ["scale"]
    pytree_aux_fields = ("num_steps",)

    def __init__(self, scale=1.0, num_steps=1, validate_args=None):
        if int(num_steps) < 1:
            raise ValueError(f"GaussianRandomWalk: num_steps must be a positive integer, got {num_steps}")
        params, batch_shape = broadcast_params("GaussianRandomWalk", scale=scale)
        self.scale, self.num_steps = params["scale"], int(num_steps)
        super().__init__(batch_shape, (self.num_steps,), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        steps = random.normal(key, self.shape(sample_shape), dtype=self.scale.dtype)
        return jnp.cumsum(steps, axis=-1) * self.scale[..., None]

    def log_prob(self, value):
        self._validate_sample(value)
        steps = jnp.concatenate([value[..., :1], jnp.diff(value, axis=-1)], axis=-1)
        scale = self.scale[..., None]
        log_density = -0.5 * (steps / scale) ** 2 - jnp.log(scale) - _HALF_LOG_TWO_PI
        return jnp.sum(log_density, axis=-1)

    @property
    def mean(self):
        return jnp.zeros(self.batch_shape + self.event_shape)

    @property
    def variance(self):
        steps = jnp.arange(1, self.num_steps + 1, dtype=self.scale.dtype)
        return self.scale[..., None] ** 2 * steps
