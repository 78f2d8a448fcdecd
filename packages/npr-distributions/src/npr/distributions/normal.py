"""Location-scale families on the real line and their half (folded) versions."""

import math

import jax
import jax.numpy as jnp
from jax import random
from jax.scipy.special import gammaln

from npr.distributions import constraints
from npr.distributions._util import broadcast_params
from npr.distributions.distribution import Distribution, TransformedDistribution, guarded_log_prob
from npr.distributions.transforms import ExpTransform

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class _LocScale(Distribution):
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc=0.0, scale=1.0, validate_args=None):
        params, batch_shape = broadcast_params(type(self).__name__, loc=loc, scale=scale)
        self.loc, self.scale = params["loc"], params["scale"]
        super().__init__(batch_shape, validate_args=validate_args)

    def _standard(self, key, sample_shape):
        raise NotImplementedError

    def sample(self, key, sample_shape=()):
        eps = self._standard(key, self.shape(sample_shape))
        return self.loc + self.scale * eps


class Normal(_LocScale):
    """Normal(loc, scale).

    Example:
      >>> round(float(Normal(0.0, 1.0).log_prob(0.0)), 4)
      -0.9189
    """

    def _standard(self, key, shape):
        return random.normal(key, shape, dtype=self.loc.dtype)

    def log_prob(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -0.5 * z**2 - jnp.log(self.scale) - _HALF_LOG_TWO_PI

    def cdf(self, value):
        return jax.scipy.special.ndtr((value - self.loc) / self.scale)

    def icdf(self, q):
        return self.loc + self.scale * jax.scipy.special.ndtri(q)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale**2


class Cauchy(_LocScale):
    """Cauchy(loc, scale); mean and variance are undefined (NaN and +inf).

    Example:
      >>> round(float(Cauchy(0.0, 1.0).log_prob(0.0)), 4)
      -1.1447
    """

    def _standard(self, key, shape):
        return random.cauchy(key, shape, dtype=self.loc.dtype)

    def log_prob(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -math.log(math.pi) - jnp.log(self.scale) - jnp.log1p(z**2)

    def cdf(self, value):
        return 0.5 + jnp.arctan((value - self.loc) / self.scale) / math.pi

    @property
    def mean(self):
        return jnp.full(self.batch_shape, jnp.nan)

    @property
    def variance(self):
        return jnp.full(self.batch_shape, jnp.inf)


class Laplace(_LocScale):
    """Laplace(loc, scale).

    Example:
      >>> round(float(Laplace(0.0, 1.0).log_prob(1.0)), 4)
      -1.6931
    """

    def _standard(self, key, shape):
        return random.laplace(key, shape, dtype=self.loc.dtype)

    def log_prob(self, value):
        self._validate_sample(value)
        return -jnp.log(2 * self.scale) - jnp.abs(value - self.loc) / self.scale

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return 2 * self.scale**2


class Logistic(_LocScale):
    """Logistic(loc, scale).

    Example:
      >>> round(float(Logistic(0.0, 1.0).log_prob(0.0)), 4)
      -1.3863
    """

    def _standard(self, key, shape):
        return random.logistic(key, shape, dtype=self.loc.dtype)

    def log_prob(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -z - 2 * jax.nn.softplus(-z) - jnp.log(self.scale)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return self.scale**2 * math.pi**2 / 3


class Gumbel(_LocScale):
    """Gumbel(loc, scale) for maxima.

    Example:
      >>> round(float(Gumbel(0.0, 1.0).log_prob(0.0)), 4)
      -1.0
    """

    def _standard(self, key, shape):
        return random.gumbel(key, shape, dtype=self.loc.dtype)

    def log_prob(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -(z + jnp.exp(-z)) - jnp.log(self.scale)

    @property
    def mean(self):
        return self.loc + self.scale * float(jnp.euler_gamma)

    @property
    def variance(self):
        return (math.pi**2 / 6) * self.scale**2


class StudentT(Distribution):
    """Student's t with `df` degrees of freedom, location and scale.

    Example:
      >>> round(float(StudentT(3.0, 0.0, 1.0).log_prob(0.0)), 4)
      -1.0009
    """

    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    reparametrized_params = ["df", "loc", "scale"]

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        params, batch_shape = broadcast_params("StudentT", df=df, loc=loc, scale=scale)
        self.df, self.loc, self.scale = params["df"], params["loc"], params["scale"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        key_normal, key_chi2 = random.split(key)
        shape = self.shape(sample_shape)
        normal = random.normal(key_normal, shape, dtype=self.loc.dtype)
        chi2 = 2.0 * random.gamma(key_chi2, jnp.broadcast_to(0.5 * self.df, shape))
        return self.loc + self.scale * normal * jnp.sqrt(self.df / chi2)

    def log_prob(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        half = 0.5 * (self.df + 1.0)
        return (
            gammaln(half)
            - gammaln(0.5 * self.df)
            - 0.5 * jnp.log(self.df * math.pi)
            - jnp.log(self.scale)
            - half * jnp.log1p(z**2 / self.df)
        )

    @property
    def mean(self):
        return jnp.where(self.df > 1, self.loc, jnp.nan)

    @property
    def variance(self):
        finite = self.scale**2 * self.df / jnp.where(self.df > 2, self.df - 2, 1.0)
        return jnp.where(self.df > 2, finite, jnp.where(self.df > 1, jnp.inf, jnp.nan))


class _Half(Distribution):
    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    reparametrized_params = ["scale"]
    _base = None

    def __init__(self, scale=1.0, validate_args=None):
        params, batch_shape = broadcast_params(type(self).__name__, scale=scale)
        self.scale = params["scale"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        return jnp.abs(self._base(0.0, self.scale).sample(key, sample_shape))

    @guarded_log_prob
    def log_prob(self, value):
        return math.log(2.0) + self._base(0.0, self.scale).log_prob(value)


class HalfNormal(_Half):
    """|Normal(0, scale)|.

    Example:
      >>> round(float(HalfNormal(1.0).log_prob(0.0)), 4)
      -0.2258
    """

    _base = Normal

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def variance(self):
        return self.scale**2 * (1 - 2 / math.pi)


class HalfCauchy(_Half):
    """|Cauchy(0, scale)|; mean and variance are +inf.

    Example:
      >>> round(float(HalfCauchy(1.0).log_prob(0.0)), 4)
      -0.4516
    """

    _base = Cauchy

    @property
    def mean(self):
        return jnp.full(self.batch_shape, jnp.inf)

    @property
    def variance(self):
        return jnp.full(self.batch_shape, jnp.inf)


class LogNormal(TransformedDistribution):
    """exp(Normal(loc, scale)).

    Example:
      >>> round(float(LogNormal(0.0, 1.0).log_prob(1.0)), 4)
      -0.9189
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    pytree_data_fields = ("loc", "scale")
    pytree_aux_fields = ()
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc=0.0, scale=1.0, validate_args=None):
        base = Normal(loc, scale)
        self.loc, self.scale = base.loc, base.scale
        super().__init__(base, [ExpTransform()], validate_args=validate_args)

    @property
    def mean(self):
        return jnp.exp(self.loc + self.scale**2 / 2)

    @property
    def variance(self):
        return jnp.expm1(self.scale**2) * jnp.exp(2 * self.loc + self.scale**2)
