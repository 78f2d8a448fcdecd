"""Discrete families parametrised by probabilities or logits, and the Poisson family.

`Bernoulli`, `Binomial`, `Categorical`, `Multinomial` and `Geometric` are factories that return the
`...Probs` or `...Logits` class, whichever parametrisation is given; both classes expose `probs`
and `logits`.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax, random
from jax.custom_derivatives import SymbolicZero
from jax.scipy.special import gammaln, xlog1py, xlogy

from npr.distributions import constraints
from npr.distributions._util import (
    as_float,
    broadcast_params,
    clamp_probs,
    logits_to_probs,
    probs_to_logits,
)
from npr.distributions.distribution import Distribution, guarded_log_prob


def _one_of(name, probs, logits):
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: give exactly one of probs or logits")
    return probs is not None


def _binary_cross_entropy(logits, successes, trials):
    """successes * softplus(-l) + (trials - successes) * softplus(l), with one exp and one log1p.

    Both softplus terms share log1p(exp(-|l|)), so every digit of log p and log(1 - p) survives at
    large |l| at the cost of a single softplus.
    """
    dtype = jnp.result_type(logits, successes, trials)
    return _cross_entropy(*(jnp.asarray(x, dtype) for x in (logits, successes, trials)))


def _cross_entropy_from(logits, successes, trials, shared_exp):
    shared = jnp.log1p(shared_exp)
    return successes * jnp.maximum(-logits, 0.0) + (trials - successes) * jnp.maximum(logits, 0.0) + trials * shared


@jax.custom_jvp
def _cross_entropy(logits, successes, trials):
    return _cross_entropy_from(logits, successes, trials, jnp.exp(-jnp.abs(logits)))


# The derivative in the logits reuses the value's exp(-|l|): differentiating the value's maxima and
# log1p instead cost a logistic regression's gradient more (3,000 points, 2-core CPU, microseconds
# per value-and-grad: 24.3 -> 17.3 with the data as stored, 16 -> 7 with it transposed as the chain
# programs read it).
@functools.partial(_cross_entropy.defjvp, symbolic_zeros=True)
def _cross_entropy_jvp(primals, tangents):
    logits, successes, trials = primals
    d_logits, d_successes, d_trials = tangents
    shared_exp = jnp.exp(-jnp.abs(logits))
    value = _cross_entropy_from(logits, successes, trials, shared_exp)
    terms = []
    if not isinstance(d_logits, SymbolicZero):
        # (trials - successes) sigmoid(l) - successes sigmoid(-l), each sigmoid from exp(-|l|): no
        # cancellation where every trial failed or succeeded, however large |l|.
        positive, scale = logits >= 0, 1.0 / (1.0 + shared_exp)
        sigmoid_l = jnp.where(positive, 1.0, shared_exp) * scale
        sigmoid_minus_l = jnp.where(positive, shared_exp, 1.0) * scale
        terms.append(((trials - successes) * sigmoid_l - successes * sigmoid_minus_l) * d_logits)
    if not isinstance(d_successes, SymbolicZero):
        terms.append(-logits * d_successes)
    if not isinstance(d_trials, SymbolicZero):
        terms.append((jnp.maximum(logits, 0.0) + jnp.log1p(shared_exp)) * d_trials)
    tangent = functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(value)
    return value, jnp.broadcast_to(tangent, value.shape)


def _log_binomial_coefficient(n, k):
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


class _Discrete(Distribution):
    is_discrete = True


class BernoulliProbs(_Discrete):
    """Bernoulli with success probability `probs`.

    Example:
      >>> round(float(BernoulliProbs(0.25).log_prob(1)), 4)
      -1.3863
    """

    arg_constraints = {"probs": constraints.unit_interval}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs, validate_args=None):
        params, batch_shape = broadcast_params("BernoulliProbs", probs=probs)
        self.probs = params["probs"]
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    def sample(self, key, sample_shape=()):
        return random.bernoulli(key, self.probs, self.shape(sample_shape)).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        return xlogy(value, self.probs) + xlog1py(1 - value, -self.probs)

    def enumerate_support(self, expand=True):
        values = jnp.arange(2).reshape((2,) + (1,) * len(self.batch_shape))
        return jnp.broadcast_to(values, (2,) + self.batch_shape) if expand else values

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        return self.probs * (1 - self.probs)


class BernoulliLogits(BernoulliProbs):
    """Bernoulli with success log-odds `logits`; exact for logits of any size.

    Example:
      >>> round(float(BernoulliLogits(0.0).log_prob(1)), 4)
      -0.6931
    """

    arg_constraints = {"logits": constraints.real}

    def __init__(self, logits, validate_args=None):
        params, batch_shape = broadcast_params("BernoulliLogits", logits=logits)
        self.logits_ = params["logits"]
        _Discrete.__init__(self, batch_shape, validate_args=validate_args)

    pytree_data_fields = ("logits",)

    @property
    def logits(self):
        return self.logits_

    @property
    def probs(self):
        return jax.nn.sigmoid(self.logits_)

    def sample(self, key, sample_shape=()):
        u = random.uniform(key, self.shape(sample_shape), dtype=self.logits_.dtype)
        return (jnp.log(u) - jnp.log1p(-u) < self.logits_).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        return -_binary_cross_entropy(self.logits_, value, 1.0)


def Bernoulli(probs=None, logits=None, validate_args=None):
    """Bernoulli from `probs` or `logits` (returns BernoulliProbs or BernoulliLogits).

    Example:
      >>> type(Bernoulli(logits=0.3)).__name__
      'BernoulliLogits'
    """
    if _one_of("Bernoulli", probs, logits):
        return BernoulliProbs(probs, validate_args=validate_args)
    return BernoulliLogits(logits, validate_args=validate_args)


class BinomialProbs(_Discrete):
    """Binomial(total_count, probs).

    Example:
      >>> round(float(BinomialProbs(0.5, total_count=2).log_prob(1)), 4)
      -0.6931
    """

    arg_constraints = {"probs": constraints.unit_interval, "total_count": constraints.nonnegative_integer}
    has_enumerate_support = True

    def __init__(self, probs, total_count=1, validate_args=None):
        params, batch_shape = broadcast_params("BinomialProbs", probs=probs, total_count=total_count)
        self.probs, self.total_count = params["probs"], params["total_count"]
        self.support = constraints.integer_interval(0, self.total_count)
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    def sample(self, key, sample_shape=()):
        shape = self.shape(sample_shape)
        draws = random.binomial(key, jnp.broadcast_to(self.total_count, shape), jnp.broadcast_to(self.probs, shape))
        return draws.astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        n = self.total_count
        return _log_binomial_coefficient(n, value) + xlogy(value, self.probs) + xlog1py(n - value, -self.probs)

    def enumerate_support(self, expand=True):
        total = int(jnp.max(self.total_count))
        if not bool(jnp.all(self.total_count == total)):
            raise NotImplementedError("enumerate_support needs the same total_count across the batch")
        values = jnp.arange(total + 1).reshape((-1,) + (1,) * len(self.batch_shape))
        return jnp.broadcast_to(values, values.shape[:1] + self.batch_shape) if expand else values

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)


class BinomialLogits(BinomialProbs):
    """Binomial(total_count, logits), exact for large |logits|.

    Example:
      >>> round(float(BinomialLogits(0.0, total_count=2).log_prob(1)), 4)
      -0.6931
    """

    arg_constraints = {"logits": constraints.real, "total_count": constraints.nonnegative_integer}

    def __init__(self, logits, total_count=1, validate_args=None):
        params, batch_shape = broadcast_params("BinomialLogits", logits=logits, total_count=total_count)
        self.logits_, self.total_count = params["logits"], params["total_count"]
        self.support = constraints.integer_interval(0, self.total_count)
        _Discrete.__init__(self, batch_shape, validate_args=validate_args)

    pytree_data_fields = ("logits", "total_count")

    @property
    def logits(self):
        return self.logits_

    @property
    def probs(self):
        return jax.nn.sigmoid(self.logits_)

    @guarded_log_prob
    def log_prob(self, value):
        n = self.total_count
        return _log_binomial_coefficient(n, value) - _binary_cross_entropy(self.logits_, value, n)


def Binomial(total_count=1, probs=None, logits=None, validate_args=None):
    """Binomial from `probs` or `logits` (returns BinomialProbs or BinomialLogits).

    Example:
      >>> float(Binomial(10, probs=0.3).mean)
      3.0
    """
    if _one_of("Binomial", probs, logits):
        return BinomialProbs(probs, total_count, validate_args=validate_args)
    return BinomialLogits(logits, total_count, validate_args=validate_args)


class CategoricalProbs(_Discrete):
    """Categorical over {0, ..., K-1} with event probabilities in the last dim of `probs`.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(CategoricalProbs(jnp.array([0.2, 0.8])).log_prob(1)), 4)
      -0.2231
    """

    arg_constraints = {"probs": constraints.simplex}
    has_enumerate_support = True

    def __init__(self, probs, validate_args=None):
        self.probs = as_float(probs)
        if self.probs.ndim < 1:
            raise ValueError("CategoricalProbs: probs must have a last dim of categories, got a scalar")
        self.support = constraints.integer_interval(0, self.probs.shape[-1] - 1)
        super().__init__(self.probs.shape[:-1], validate_args=validate_args)

    @property
    def logits(self):
        return probs_to_logits(self.probs)

    def sample(self, key, sample_shape=()):
        return random.categorical(key, self.logits, shape=self.shape(sample_shape)).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        log_probs = jax.nn.log_softmax(self.logits, axis=-1)
        value = jnp.asarray(value)
        batch = jnp.broadcast_shapes(value.shape, self.batch_shape)
        index = jnp.clip(value, 0, log_probs.shape[-1] - 1).astype(jnp.int32)
        log_probs = jnp.broadcast_to(log_probs, batch + log_probs.shape[-1:])
        return jnp.take_along_axis(log_probs, jnp.broadcast_to(index, batch)[..., None], axis=-1)[..., 0]

    def enumerate_support(self, expand=True):
        num = self.probs.shape[-1] if hasattr(self, "probs") and self.probs is not None else self.logits.shape[-1]
        values = jnp.arange(num).reshape((-1,) + (1,) * len(self.batch_shape))
        return jnp.broadcast_to(values, values.shape[:1] + self.batch_shape) if expand else values

    @property
    def mean(self):
        return jnp.full(self.batch_shape, jnp.nan)

    @property
    def variance(self):
        return jnp.full(self.batch_shape, jnp.nan)


class CategoricalLogits(CategoricalProbs):
    """Categorical from unnormalised log probabilities in the last dim of `logits`.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(CategoricalLogits(jnp.zeros(4)).log_prob(2)), 4)
      -1.3863
    """

    arg_constraints = {"logits": constraints.real_vector}
    pytree_data_fields = ("logits",)

    def __init__(self, logits, validate_args=None):
        logits = as_float(logits)
        if logits.ndim < 1:
            raise ValueError("CategoricalLogits: logits must have a last dim of categories, got a scalar")
        self.logits_ = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
        self.support = constraints.integer_interval(0, logits.shape[-1] - 1)
        _Discrete.__init__(self, logits.shape[:-1], validate_args=validate_args)

    @property
    def logits(self):
        return self.logits_

    @property
    def probs(self):
        return logits_to_probs(self.logits_)


def Categorical(probs=None, logits=None, validate_args=None):
    """Categorical from `probs` or `logits` (returns CategoricalProbs or CategoricalLogits).

    Example:
      >>> import jax.numpy as jnp
      >>> Categorical(logits=jnp.zeros((5, 3))).batch_shape
      (5,)
    """
    if _one_of("Categorical", probs, logits):
        return CategoricalProbs(probs, validate_args=validate_args)
    return CategoricalLogits(logits, validate_args=validate_args)


class MultinomialProbs(_Discrete):
    """Counts of `total_count` draws over K categories with probabilities `probs`.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(MultinomialProbs(jnp.array([0.5, 0.5]), total_count=2).log_prob(jnp.array([1, 1]))), 4)
      -0.6931
    """

    arg_constraints = {"probs": constraints.simplex, "total_count": constraints.nonnegative_integer}

    def __init__(self, probs, total_count=1, validate_args=None):
        probs = as_float(probs)
        params, batch_shape = broadcast_params(
            "MultinomialProbs", event_dims={"probs": 1}, probs=probs, total_count=total_count
        )
        self.probs, self.total_count = params["probs"], params["total_count"]
        self.support = constraints.independent(constraints.nonnegative_integer, 1)
        super().__init__(batch_shape, probs.shape[-1:], validate_args=validate_args)

    @property
    def logits(self):
        return probs_to_logits(self.probs)

    def sample(self, key, sample_shape=()):
        # Sequential conditional binomials: no static bound on total_count is needed.
        shape = tuple(sample_shape) + self.batch_shape
        probs = jnp.broadcast_to(clamp_probs(self.probs), shape + self.event_shape)
        probs = jnp.moveaxis(probs, -1, 0)
        remaining_mass = jnp.flip(jnp.cumsum(jnp.flip(probs, 0), 0), 0)
        keys = random.split(key, probs.shape[0])

        def step(remaining_count, inputs):
            k, p, mass = inputs
            conditional = jnp.clip(p / jnp.clip(mass, jnp.finfo(p.dtype).tiny), 0.0, 1.0)
            count = random.binomial(k, remaining_count, conditional)
            return remaining_count - count, count

        total = jnp.broadcast_to(self.total_count, shape).astype(probs.dtype)
        leftover, counts = lax.scan(step, total, (keys[:-1], probs[:-1], remaining_mass[:-1]))
        counts = jnp.concatenate([counts, leftover[None]], axis=0)
        return jnp.moveaxis(counts, 0, -1).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        value = jnp.asarray(value)
        correct_total = jnp.sum(value, axis=-1) == self.total_count
        log_density = (
            gammaln(self.total_count + 1)
            - jnp.sum(gammaln(value + 1), axis=-1)
            + jnp.sum(xlogy(value, clamp_probs(self.probs)), axis=-1)
        )
        return jnp.where(correct_total, log_density, -jnp.inf)

    @property
    def mean(self):
        return self.total_count[..., None] * self.probs

    @property
    def variance(self):
        return self.total_count[..., None] * self.probs * (1 - self.probs)


class MultinomialLogits(MultinomialProbs):
    """Multinomial from log probabilities `logits`.

    Example:
      >>> import jax.numpy as jnp
      >>> MultinomialLogits(jnp.zeros(3), total_count=6).mean.tolist()
      [2.0, 2.0, 2.0]
    """

    arg_constraints = {"logits": constraints.real_vector, "total_count": constraints.nonnegative_integer}
    pytree_data_fields = ("logits", "total_count")

    def __init__(self, logits, total_count=1, validate_args=None):
        logits = as_float(logits)
        self.logits_ = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
        params, batch_shape = broadcast_params(
            "MultinomialLogits", event_dims={"logits": 1}, logits=self.logits_, total_count=total_count
        )
        self.logits_, self.total_count = params["logits"], params["total_count"]
        self.support = constraints.independent(constraints.nonnegative_integer, 1)
        _Discrete.__init__(self, batch_shape, logits.shape[-1:], validate_args=validate_args)

    @property
    def logits(self):
        return self.logits_

    @property
    def probs(self):
        return logits_to_probs(self.logits_)

    @guarded_log_prob
    def log_prob(self, value):
        value = jnp.asarray(value)
        correct_total = jnp.sum(value, axis=-1) == self.total_count
        log_density = (
            gammaln(self.total_count + 1) - jnp.sum(gammaln(value + 1), axis=-1) + jnp.sum(value * self.logits_, -1)
        )
        return jnp.where(correct_total, log_density, -jnp.inf)


def Multinomial(total_count=1, probs=None, logits=None, validate_args=None):
    """Multinomial from `probs` or `logits` (returns MultinomialProbs or MultinomialLogits).

    Example:
      >>> import jax.numpy as jnp
      >>> Multinomial(5, probs=jnp.array([0.2, 0.8])).event_shape
      (2,)
    """
    if _one_of("Multinomial", probs, logits):
        return MultinomialProbs(probs, total_count, validate_args=validate_args)
    return MultinomialLogits(logits, total_count, validate_args=validate_args)


class Poisson(_Discrete):
    """Poisson(rate).

    Example:
      >>> round(float(Poisson(2.0).log_prob(0)), 4)
      -2.0
    """

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        params, batch_shape = broadcast_params("Poisson", rate=rate)
        self.rate = params["rate"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        return random.poisson(key, self.rate, self.shape(sample_shape)).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        return xlogy(value, self.rate) - self.rate - gammaln(value + 1.0)

    @property
    def mean(self):
        return self.rate

    @property
    def variance(self):
        return self.rate


class GeometricProbs(_Discrete):
    """Number of failures before the first success, success probability `probs`.

    Example:
      >>> float(GeometricProbs(0.5).mean)
      1.0
    """

    arg_constraints = {"probs": constraints.unit_interval}
    support = constraints.nonnegative_integer

    def __init__(self, probs, validate_args=None):
        params, batch_shape = broadcast_params("GeometricProbs", probs=probs)
        self.probs = params["probs"]
        super().__init__(batch_shape, validate_args=validate_args)

    @property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    def sample(self, key, sample_shape=()):
        u = random.uniform(key, self.shape(sample_shape), minval=jnp.finfo(self.probs.dtype).tiny)
        return jnp.floor(jnp.log(u) / jnp.log1p(-clamp_probs(self.probs))).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        return xlog1py(value, -self.probs) + jnp.log(self.probs)

    @property
    def mean(self):
        return (1 - self.probs) / self.probs

    @property
    def variance(self):
        return (1 - self.probs) / self.probs**2


class GeometricLogits(GeometricProbs):
    """Geometric from the success log-odds `logits`.

    Example:
      >>> float(GeometricLogits(0.0).mean)
      1.0
    """

    arg_constraints = {"logits": constraints.real}
    pytree_data_fields = ("logits",)

    def __init__(self, logits, validate_args=None):
        params, batch_shape = broadcast_params("GeometricLogits", logits=logits)
        self.logits_ = params["logits"]
        _Discrete.__init__(self, batch_shape, validate_args=validate_args)

    @property
    def logits(self):
        return self.logits_

    @property
    def probs(self):
        return jax.nn.sigmoid(self.logits_)

    @guarded_log_prob
    def log_prob(self, value):
        return -value * jax.nn.softplus(self.logits_) - jax.nn.softplus(-self.logits_)


def Geometric(probs=None, logits=None, validate_args=None):
    """Geometric from `probs` or `logits`.

    Example:
      >>> type(Geometric(probs=0.3)).__name__
      'GeometricProbs'
    """
    if _one_of("Geometric", probs, logits):
        return GeometricProbs(probs, validate_args=validate_args)
    return GeometricLogits(logits, validate_args=validate_args)


class DiscreteUniform(_Discrete):
    """Uniform over the integers low, ..., high.

    Example:
      >>> float(DiscreteUniform(0, 4).mean)
      2.0
    """

    arg_constraints = {"low": constraints.dependent, "high": constraints.dependent}
    has_enumerate_support = True

    def __init__(self, low=0, high=1, validate_args=None):
        params, batch_shape = broadcast_params("DiscreteUniform", low=low, high=high)
        self.low, self.high = params["low"], params["high"]
        self.support = constraints.integer_interval(self.low, self.high)
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        u = random.uniform(key, self.shape(sample_shape))
        return (self.low + jnp.floor(u * (self.high - self.low + 1))).astype(jnp.int32)

    @guarded_log_prob
    def log_prob(self, value):
        return -jnp.log(self.high - self.low + 1) + 0.0 * value

    def enumerate_support(self, expand=True):
        low, high = int(jnp.min(self.low)), int(jnp.max(self.high))
        if not (bool(jnp.all(self.low == low)) and bool(jnp.all(self.high == high))):
            raise NotImplementedError("enumerate_support needs the same low and high across the batch")
        values = jnp.arange(low, high + 1).reshape((-1,) + (1,) * len(self.batch_shape))
        return jnp.broadcast_to(values, values.shape[:1] + self.batch_shape) if expand else values

    @property
    def mean(self):
        return (self.low + self.high) / 2

    @property
    def variance(self):
        return ((self.high - self.low + 1) ** 2 - 1) / 12
