"""Finite mixtures whose components share one family."""

import jax
import jax.numpy as jnp
from jax import random

from npr.distributions.distribution import Distribution


class MixtureSameFamily(Distribution):
    """Mixture of the components of `component_distribution` (rightmost batch dim) with weights from
    the categorical `mixing_distribution`.

    Example:
      >>> import jax.numpy as jnp
      >>> from npr.distributions import Categorical, Normal
      >>> mix = MixtureSameFamily(Categorical(probs=jnp.array([0.3, 0.7])), Normal(jnp.array([-1.0, 1.0]), 1.0))
      >>> round(float(mix.mean), 4)
      0.4
    """

    pytree_data_fields = ("mixing_distribution", "component_distribution")

    def __init__(self, mixing_distribution, component_distribution, validate_args=None):
        num = mixing_distribution.probs.shape[-1]
        if component_distribution.batch_shape[-1:] != (num,):
            raise ValueError(
                f"MixtureSameFamily: the component batch shape {component_distribution.batch_shape} must end "
                f"in the number of mixture components {num}"
            )
        self.mixing_distribution, self.component_distribution = mixing_distribution, component_distribution
        self.support = component_distribution.support
        self.is_discrete = component_distribution.is_discrete
        batch_shape = jnp.broadcast_shapes(mixing_distribution.batch_shape, component_distribution.batch_shape[:-1])
        super().__init__(batch_shape, component_distribution.event_shape, validate_args=validate_args)

    @property
    def _event_axis(self):
        return -1 - len(self.event_shape)

    def sample(self, key, sample_shape=()):
        key_component, key_mix = random.split(key)
        draws = self.component_distribution.sample(key_component, sample_shape)
        choice = self.mixing_distribution.sample(key_mix, tuple(sample_shape))
        choice = jnp.broadcast_to(choice, tuple(sample_shape) + self.batch_shape)
        index = choice.reshape(choice.shape + (1,) + (1,) * len(self.event_shape))
        index = jnp.broadcast_to(index, draws.shape[: -1 - len(self.event_shape)] + (1,) + self.event_shape)
        return jnp.take_along_axis(draws, index, axis=self._event_axis).squeeze(self._event_axis)

    def log_prob(self, value):
        value = jnp.expand_dims(value, self._event_axis)
        component_log_prob = self.component_distribution.log_prob(value)
        log_weights = jax.nn.log_softmax(self.mixing_distribution.logits, axis=-1)
        return jax.scipy.special.logsumexp(component_log_prob + log_weights, axis=-1)

    def _weights(self):
        weights = self.mixing_distribution.probs
        return weights.reshape(weights.shape + (1,) * len(self.event_shape))

    @property
    def mean(self):
        return jnp.sum(self._weights() * self.component_distribution.mean, axis=self._event_axis)

    @property
    def variance(self):
        weights = self._weights()
        mean = self.mean
        second = self.component_distribution.variance + self.component_distribution.mean**2
        return jnp.sum(weights * second, axis=self._event_axis) - mean**2
