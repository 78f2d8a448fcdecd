import jax
import jax.numpy as jnp
import pytest


class StandIn:
    """A minimal normal distribution following the protocol npr.handlers relies on."""

    event_shape = ()
    is_discrete = False

    def __init__(self, loc=0.0, scale=1.0, batch_shape=None):
        self.loc, self.scale = jnp.asarray(loc, float), jnp.asarray(scale, float)
        self.batch_shape = (
            tuple(batch_shape) if batch_shape is not None else jnp.broadcast_shapes(self.loc.shape, self.scale.shape)
        )

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return self.loc + self.scale * jax.random.normal(key, shape)

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return jnp.broadcast_to(
            -0.5 * z**2 - jnp.log(self.scale) - 0.9189385332046727, jnp.broadcast_shapes(jnp.shape(z), self.batch_shape)
        )

    def expand(self, batch_shape):
        return StandIn(jnp.broadcast_to(self.loc, batch_shape), jnp.broadcast_to(self.scale, batch_shape), batch_shape)


@pytest.fixture
def Normal():
    return StandIn
