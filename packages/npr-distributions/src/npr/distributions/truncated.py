"""Normal and Cauchy truncated to [low, high] (the seed's lower truncation is high = +inf)."""

import math

import jax.numpy as jnp
from jax import random
from jax.scipy.special import log_ndtr, ndtr, ndtri

from npr.distributions import constraints
from npr.distributions._util import broadcast_params
from npr.distributions.distribution import Distribution, guarded_log_prob

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def _density(t, log_mass):
    """Standard normal density at t divided by the mass; 0 at infinite t, with finite gradients."""
    safe = jnp.where(jnp.isfinite(t), t, 0.0)
    return jnp.where(jnp.isfinite(t), jnp.exp(-0.5 * safe**2 - _HALF_LOG_TWO_PI - log_mass), 0.0)


class _Truncated(Distribution):
    arg_constraints = {
        "low": constraints.dependent,
        "loc": constraints.real,
        "scale": constraints.positive,
        "high": constraints.dependent,
    }
    reparametrized_params = ["low", "loc", "scale", "high"]

    def __init__(self, low=0.0, loc=0.0, scale=1.0, high=None, validate_args=None):
        high = jnp.inf if high is None else high
        low = -jnp.inf if low is None else low
        params, batch_shape = broadcast_params(type(self).__name__, low=low, loc=loc, scale=scale, high=high)
        self.low, self.loc, self.scale, self.high = params["low"], params["loc"], params["scale"], params["high"]
        self.support = constraints.interval(self.low, self.high)
        super().__init__(batch_shape, validate_args=validate_args)

    def _standard_bounds(self):
        def standardise(bound):
            # An infinite bound stays infinite without passing inf through the division (NaN gradients).
            finite = jnp.isfinite(bound)
            return jnp.where(finite, (jnp.where(finite, bound, 0.0) - self.loc) / self.scale, bound)

        return standardise(self.low), standardise(self.high)


class TruncatedNormal(_Truncated):
    """Normal(loc, scale) truncated to [low, high]; arguments in the seed's order (low, loc, scale).

    Example:
      >>> round(float(TruncatedNormal(0.0, 0.0, 1.0).log_prob(0.0)), 4)
      -0.2258
    """

    def _log_mass(self):
        a, b = self._standard_bounds()
        # Work in the tail that is far from the mode, where 1 - Phi loses all its digits.
        flip = a > 0
        upper = jnp.where(flip, -a, b)
        lower = jnp.where(flip, -b, a)
        # Infinite bounds go through finite stand-ins so that gradients stay finite.
        log_upper = jnp.where(upper == jnp.inf, 0.0, log_ndtr(jnp.where(jnp.isfinite(upper), upper, 0.0)))
        log_lower = jnp.where(lower == -jnp.inf, -jnp.inf, log_ndtr(jnp.where(jnp.isfinite(lower), lower, 0.0)))
        return log_upper + jnp.log1p(-jnp.exp(jnp.minimum(log_lower - log_upper, 0.0)))

    def sample(self, key, sample_shape=()):
        a, b = self._standard_bounds()
        flip = a > 0
        lower, upper = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
        u = random.uniform(key, self.shape(sample_shape), dtype=self.loc.dtype)
        p = ndtr(lower) + u * (ndtr(upper) - ndtr(lower))
        tiny = jnp.finfo(p.dtype).tiny
        z = ndtri(jnp.clip(p, tiny, 1 - jnp.finfo(p.dtype).epsneg))
        z = jnp.clip(z, lower, upper)
        return self.loc + self.scale * jnp.where(flip, -z, z)

    @guarded_log_prob
    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -0.5 * z**2 - _HALF_LOG_TWO_PI - jnp.log(self.scale) - self._log_mass()

    @property
    def mean(self):
        a, b = self._standard_bounds()
        log_mass = self._log_mass()
        return self.loc + self.scale * (_density(a, log_mass) - _density(b, log_mass))

    @property
    def variance(self):
        a, b = self._standard_bounds()
        log_mass = self._log_mass()
        finite = lambda t: jnp.where(jnp.isfinite(t), t, 0.0)
        first = _density(a, log_mass) - _density(b, log_mass)
        second = finite(a) * _density(a, log_mass) - finite(b) * _density(b, log_mass)
        return self.scale**2 * (1.0 + second - first**2)


class TruncatedCauchy(_Truncated):
    """Cauchy(loc, scale) truncated to [low, high]; arguments in the seed's order (low, loc, scale).

    Example:
      >>> round(float(TruncatedCauchy(0.0, 0.0, 1.0).log_prob(0.0)), 4)
      -0.4516
    """

    def _cdf_standard(self, z):
        return 0.5 + jnp.arctan(z) / math.pi

    def _log_mass(self):
        a, b = self._standard_bounds()
        # arctan(b) - arctan(a) keeps digits in the far tails where the CDF difference would not.
        return jnp.log((jnp.arctan(b) - jnp.arctan(a)) / math.pi)

    def sample(self, key, sample_shape=()):
        a, b = self._standard_bounds()
        u = random.uniform(key, self.shape(sample_shape), dtype=self.loc.dtype)
        angle = jnp.arctan(a) + u * (jnp.arctan(b) - jnp.arctan(a))
        return self.loc + self.scale * jnp.clip(jnp.tan(angle), a, b)

    @guarded_log_prob
    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -math.log(math.pi) - jnp.log(self.scale) - jnp.log1p(z**2) - self._log_mass()

    @property
    def mean(self):
        return jnp.full(self.batch_shape, jnp.nan)

    @property
    def variance(self):
        return jnp.full(self.batch_shape, jnp.nan)
