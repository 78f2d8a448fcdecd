"""Over-dispersed and zero-inflated count families."""

import jax
import jax.numpy as jnp
from jax import random
from jax.scipy.special import betaln, gammaln, xlog1py, xlogy

from npr.distributions import constraints
from npr.distributions._util import broadcast_params
from npr.distributions.discrete import _Discrete, _log_binomial_coefficient, _one_of
from npr.distributions.distribution import guarded_log_prob


class BetaBinomial(_Discrete):
    """Binomial(total_count, p) with p ~ Beta(concentration1, concentration0).

    Example:
      >>> float(BetaBinomial(1.0, 1.0, total_count=4).mean)
      2.0
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "total_count": constraints.nonnegative_integer,
    }
    has_enumerate_support = True

    def __init__(self, concentration1, concentration0, total_count=1, validate_args=None):
        params, batch_shape = broadcast_params(
            "BetaBinomial", concentration1=concentration1, concentration0=concentration0, total_count=total_count
        )
        self.concentration1, self.concentration0 = params["concentration1"], params["concentration0"]
        self.total_count = params["total_count"]
        self.support = constraints.integer_interval(0, self.total_count)
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        key_beta, key_binomial = random.split(key)
        shape = self.shape(sample_shape)
        probs = random.beta(
            key_beta, jnp.broadcast_to(self.concentration1, shape), jnp.broadcast_to(self.concentration0, shape)
        )
        return random.binomial(key_binomial, jnp.broadcast_to(self.total_count, shape), probs).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        a, b, n = self.concentration1, self.concentration0, self.total_count
        return _log_binomial_coefficient(n, value) + betaln(value + a, n - value + b) - betaln(a, b)

    def enumerate_support(self, expand=True):
        total = int(jnp.max(self.total_count))
        values = jnp.arange(total + 1).reshape((-1,) + (1,) * len(self.batch_shape))
        return jnp.broadcast_to(values, values.shape[:1] + self.batch_shape) if expand else values

    @property
    def mean(self):
        return self.total_count * self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self):
        a, b, n = self.concentration1, self.concentration0, self.total_count
        return n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1))


class GammaPoisson(_Discrete):
    """Poisson(lambda) with lambda ~ Gamma(concentration, rate): a negative binomial.

    Example:
      >>> float(GammaPoisson(2.0, 0.5).mean)
      4.0
    """

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, concentration, rate=1.0, validate_args=None):
        params, batch_shape = broadcast_params(type(self).__name__, concentration=concentration, rate=rate)
        self.concentration, self.rate = params["concentration"], params["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        key_gamma, key_poisson = random.split(key)
        shape = self.shape(sample_shape)
        rate = random.gamma(key_gamma, jnp.broadcast_to(self.concentration, shape)) / self.rate
        return random.poisson(key_poisson, rate).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        a, b = self.concentration, self.rate
        return gammaln(value + a) - gammaln(a) - gammaln(value + 1.0) + xlogy(a, b) - xlog1py(a + value, b)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def variance(self):
        return self.concentration / self.rate**2 * (1 + self.rate)


class NegativeBinomialProbs(GammaPoisson):
    """Gamma-Poisson mixture with `total_count` and success probability `probs`: mean n p / (1 - p).

    Example:
      >>> float(NegativeBinomialProbs(3.0, 0.5).mean)
      3.0
    """

    arg_constraints = {"total_count": constraints.positive, "probs": constraints.unit_interval}

    def __init__(self, total_count, probs, validate_args=None):
        params, _ = broadcast_params("NegativeBinomialProbs", total_count=total_count, probs=probs)
        self.total_count, self.probs = params["total_count"], params["probs"]
        super().__init__(self.total_count, 1.0 / self.probs - 1.0, validate_args=validate_args)


class NegativeBinomialLogits(GammaPoisson):
    """Negative binomial with success log-odds `logits`: mean total_count * exp(logits).

    Example:
      >>> float(NegativeBinomialLogits(3.0, 0.0).mean)
      3.0
    """

    arg_constraints = {"total_count": constraints.positive, "logits": constraints.real}

    def __init__(self, total_count, logits, validate_args=None):
        params, _ = broadcast_params("NegativeBinomialLogits", total_count=total_count, logits=logits)
        self.total_count, self.logits = params["total_count"], params["logits"]
        super().__init__(self.total_count, jnp.exp(-self.logits), validate_args=validate_args)

    @guarded_log_prob
    def log_prob(self, value):
        n, logits = self.total_count, self.logits
        return (
            gammaln(value + n)
            - gammaln(n)
            - gammaln(value + 1.0)
            + value * logits
            - (n + value) * jax.nn.softplus(logits)
        )


def NegativeBinomial(total_count, probs=None, logits=None, validate_args=None):
    """Negative binomial from `probs` or `logits`.

    Example:
      >>> type(NegativeBinomial(2.0, logits=0.1)).__name__
      'NegativeBinomialLogits'
    """
    if _one_of("NegativeBinomial", probs, logits):
        return NegativeBinomialProbs(total_count, probs, validate_args=validate_args)
    return NegativeBinomialLogits(total_count, logits, validate_args=validate_args)


class NegativeBinomial2(GammaPoisson):
    """Negative binomial by its `mean` and `concentration` (variance mean + mean^2 / concentration).

    Example:
      >>> float(NegativeBinomial2(4.0, 2.0).variance)
      12.0
    """

    arg_constraints = {"mean_": constraints.positive, "concentration": constraints.positive}
    pytree_data_fields = ("mean_", "concentration")

    def __init__(self, mean_=None, concentration=None, validate_args=None, mean=None):
        mean_ = mean if mean is not None else mean_
        params, _ = broadcast_params("NegativeBinomial2", mean=mean_, concentration=concentration)
        self.mean_ = params["mean"]
        super().__init__(params["concentration"], params["concentration"] / self.mean_, validate_args=validate_args)


class ZeroInflatedPoisson(_Discrete):
    """Zero with probability `gate`, otherwise Poisson(rate).

    Example:
      >>> round(float(ZeroInflatedPoisson(0.5, 2.0).mean), 4)
      1.0
    """

    arg_constraints = {"gate": constraints.unit_interval, "rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, gate, rate=1.0, validate_args=None):
        params, batch_shape = broadcast_params("ZeroInflatedPoisson", gate=gate, rate=rate)
        self.gate, self.rate = params["gate"], params["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        key_gate, key_poisson = random.split(key)
        shape = self.shape(sample_shape)
        zero = random.bernoulli(key_gate, self.gate, shape)
        return jnp.where(zero, 0, random.poisson(key_poisson, self.rate, shape)).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        poisson = xlogy(value, self.rate) - self.rate - gammaln(value + 1.0)
        log_gate, log_not_gate = jnp.log(self.gate), jnp.log1p(-self.gate)
        at_zero = jnp.logaddexp(log_gate, log_not_gate - self.rate)
        return jnp.where(value == 0, at_zero, log_not_gate + poisson)

    @property
    def mean(self):
        return (1 - self.gate) * self.rate

    @property
    def variance(self):
        return (1 - self.gate) * self.rate * (1 + self.gate * self.rate)
