"""Families on the positive reals and bounded intervals: Gamma and its relatives, Beta, Uniform."""

import jax.numpy as jnp
from jax import random
from jax.scipy.special import betaln, gammaln, xlog1py, xlogy

from npr.distributions import constraints
from npr.distributions._util import broadcast_params
from npr.distributions.distribution import Distribution, guarded_log_prob


class Gamma(Distribution):
    """Gamma(concentration, rate) with mean concentration / rate.

    Example:
      >>> round(float(Gamma(2.0, 1.0).log_prob(1.0)), 4)
      -1.0
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    reparametrized_params = ["concentration", "rate"]

    def __init__(self, concentration, rate=1.0, validate_args=None):
        params, batch_shape = broadcast_params(type(self).__name__, concentration=concentration, rate=rate)
        self.concentration, self.rate = params["concentration"], params["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = self.shape(sample_shape)
        return random.gamma(key, jnp.broadcast_to(self.concentration, shape)) / self.rate

    @guarded_log_prob
    def log_prob(self, value):
        a, b = self.concentration, self.rate
        return xlogy(a, b) + xlogy(a - 1.0, value) - b * value - gammaln(a)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def variance(self):
        return self.concentration / self.rate**2


class Chi2(Gamma):
    """Chi-squared with `df` degrees of freedom: Gamma(df / 2, 1 / 2).

    Example:
      >>> float(Chi2(4.0).mean)
      4.0
    """

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df, validate_args=None):
        self.df = jnp.asarray(df, dtype=jnp.result_type(float))
        super().__init__(0.5 * self.df, 0.5, validate_args=validate_args)


class Exponential(Distribution):
    """Exponential(rate).

    Example:
      >>> round(float(Exponential(2.0).log_prob(1.0)), 4)
      -1.3069
    """

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative
    reparametrized_params = ["rate"]

    def __init__(self, rate=1.0, validate_args=None):
        params, batch_shape = broadcast_params("Exponential", rate=rate)
        self.rate = params["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        return random.exponential(key, self.shape(sample_shape), dtype=self.rate.dtype) / self.rate

    @guarded_log_prob
    def log_prob(self, value):
        return jnp.log(self.rate) - self.rate * value

    @property
    def mean(self):
        return 1.0 / self.rate

    @property
    def variance(self):
        return 1.0 / self.rate**2


class InverseGamma(Distribution):
    """1 / Gamma(concentration, rate).

    Example:
      >>> round(float(InverseGamma(3.0, 2.0).mean), 4)
      1.0
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    reparametrized_params = ["concentration", "rate"]

    def __init__(self, concentration, rate=1.0, validate_args=None):
        params, batch_shape = broadcast_params("InverseGamma", concentration=concentration, rate=rate)
        self.concentration, self.rate = params["concentration"], params["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = self.shape(sample_shape)
        return self.rate / random.gamma(key, jnp.broadcast_to(self.concentration, shape))

    @guarded_log_prob
    def log_prob(self, value):
        a, b = self.concentration, self.rate
        return xlogy(a, b) - gammaln(a) - xlogy(a + 1.0, value) - b / value

    @property
    def mean(self):
        a = self.concentration
        return jnp.where(a > 1, self.rate / jnp.where(a > 1, a - 1, 1.0), jnp.inf)

    @property
    def variance(self):
        a = self.concentration
        safe = jnp.where(a > 2, a, 3.0)
        return jnp.where(a > 2, self.rate**2 / ((safe - 1) ** 2 * (safe - 2)), jnp.inf)


class Beta(Distribution):
    """Beta(concentration1, concentration0) on [0, 1], with mean c1 / (c1 + c0).

    Example:
      >>> round(float(Beta(2.0, 2.0).log_prob(0.5)), 4)
      0.4055
    """

    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval
    reparametrized_params = ["concentration1", "concentration0"]

    def __init__(self, concentration1, concentration0, validate_args=None):
        params, batch_shape = broadcast_params("Beta", concentration1=concentration1, concentration0=concentration0)
        self.concentration1, self.concentration0 = params["concentration1"], params["concentration0"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = self.shape(sample_shape)
        return random.beta(
            key, jnp.broadcast_to(self.concentration1, shape), jnp.broadcast_to(self.concentration0, shape)
        )

    @guarded_log_prob
    def log_prob(self, value):
        a, b = self.concentration1, self.concentration0
        return xlogy(a - 1.0, value) + xlog1py(b - 1.0, -value) - betaln(a, b)

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self):
        total = self.concentration1 + self.concentration0
        return self.concentration1 * self.concentration0 / (total**2 * (total + 1))


class Weibull(Distribution):
    """Weibull(scale, concentration).

    Example:
      >>> round(float(Weibull(1.0, 1.0).log_prob(1.0)), 4)
      -1.0
    """

    arg_constraints = {"scale": constraints.positive, "concentration": constraints.positive}
    support = constraints.nonnegative
    reparametrized_params = ["scale", "concentration"]

    def __init__(self, scale, concentration, validate_args=None):
        params, batch_shape = broadcast_params("Weibull", scale=scale, concentration=concentration)
        self.scale, self.concentration = params["scale"], params["concentration"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        u = random.exponential(key, self.shape(sample_shape), dtype=self.scale.dtype)
        return self.scale * u ** (1.0 / self.concentration)

    @guarded_log_prob
    def log_prob(self, value):
        k, lam = self.concentration, self.scale
        z = value / lam
        return jnp.log(k / lam) + xlogy(k - 1.0, z) - z**k

    @property
    def mean(self):
        return self.scale * jnp.exp(gammaln(1.0 + 1.0 / self.concentration))

    @property
    def variance(self):
        g1 = jnp.exp(gammaln(1.0 + 1.0 / self.concentration))
        g2 = jnp.exp(gammaln(1.0 + 2.0 / self.concentration))
        return self.scale**2 * (g2 - g1**2)


class Pareto(Distribution):
    """Pareto(alpha, scale) on [scale, inf).

    Example:
      >>> round(float(Pareto(3.0, 1.0).mean), 4)
      1.5
    """

    arg_constraints = {"alpha": constraints.positive, "scale": constraints.positive}
    reparametrized_params = ["alpha", "scale"]

    def __init__(self, alpha, scale=1.0, validate_args=None):
        params, batch_shape = broadcast_params("Pareto", alpha=alpha, scale=scale)
        self.alpha, self.scale = params["alpha"], params["scale"]
        self.support = constraints.greater_than(self.scale)
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        u = random.exponential(key, self.shape(sample_shape), dtype=self.alpha.dtype)
        return self.scale * jnp.exp(u / self.alpha)

    @guarded_log_prob
    def log_prob(self, value):
        return jnp.log(self.alpha) + xlogy(self.alpha, self.scale) - xlogy(self.alpha + 1.0, value)

    @property
    def mean(self):
        a = self.alpha
        return jnp.where(a > 1, a * self.scale / jnp.where(a > 1, a - 1, 1.0), jnp.inf)

    @property
    def variance(self):
        a = jnp.where(self.alpha > 2, self.alpha, 3.0)
        return jnp.where(self.alpha > 2, self.scale**2 * a / ((a - 1) ** 2 * (a - 2)), jnp.inf)


class Uniform(Distribution):
    """Uniform(low, high).

    Example:
      >>> round(float(Uniform(0.0, 4.0).log_prob(1.0)), 4)
      -1.3863
    """

    arg_constraints = {"low": constraints.dependent, "high": constraints.dependent}
    reparametrized_params = ["low", "high"]

    def __init__(self, low=0.0, high=1.0, validate_args=None):
        params, batch_shape = broadcast_params("Uniform", low=low, high=high)
        self.low, self.high = params["low"], params["high"]
        self.support = constraints.interval(self.low, self.high)
        super().__init__(batch_shape, validate_args=validate_args)

    def _check_args(self):
        super()._check_args()
        if not isinstance(self.low, __import__("jax").core.Tracer) and not bool(jnp.all(self.low < self.high)):
            raise ValueError(
                f"Uniform got invalid low/high parameters: expected low < high, got shapes {self.low.shape} "
                f"and {self.high.shape} with low >= high somewhere"
            )

    def sample(self, key, sample_shape=()):
        u = random.uniform(key, self.shape(sample_shape), dtype=self.low.dtype)
        return self.low + (self.high - self.low) * u

    @guarded_log_prob
    def log_prob(self, value):
        return -jnp.log(self.high - self.low) + 0.0 * value

    @property
    def mean(self):
        return (self.low + self.high) / 2

    @property
    def variance(self):
        return (self.high - self.low) ** 2 / 12
