"""Distributions on the circle."""

import math

import jax.numpy as jnp
from jax import lax, random
from jax.scipy.special import i0e, i1e

from npr.distributions import constraints
from npr.distributions._util import broadcast_params
from npr.distributions.distribution import Distribution, guarded_log_prob


class VonMises(Distribution):
    """Von Mises on [-pi, pi) with mean direction `loc` and `concentration`.

    Example:
      >>> round(float(VonMises(0.0, 1.0).log_prob(0.0)), 4)
      -1.0738
    """

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.circular

    def __init__(self, loc, concentration, validate_args=None):
        params, batch_shape = broadcast_params("VonMises", loc=loc, concentration=concentration)
        self.loc, self.concentration = params["loc"], params["concentration"]
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        # Best and Fisher (1979) rejection sampler, vectorised: retry only the rejected entries.
        shape = self.shape(sample_shape)
        kappa = jnp.broadcast_to(self.concentration, shape)
        tau = 1 + jnp.sqrt(1 + 4 * kappa**2)
        rho = (tau - jnp.sqrt(2 * tau)) / (2 * kappa)
        r = (1 + rho**2) / (2 * rho)

        def not_done(state):
            return ~jnp.all(state[2])

        def body(state):
            k, w, done = state
            k, k1, k2 = random.split(k, 3)
            u1, u2 = random.uniform(k1, shape), random.uniform(k2, shape)
            z = jnp.cos(math.pi * u1)
            w_new = (1 + r * z) / (r + z)
            c = kappa * (r - w_new)
            accept = (c * (2 - c) - u2 > 0) | (jnp.log(c / u2) + 1 - c >= 0)
            return k, jnp.where(done, w, w_new), done | accept

        key, key_sign = random.split(key)
        _, w, _ = lax.while_loop(not_done, body, (key, jnp.zeros(shape), jnp.zeros(shape, bool)))
        sign = jnp.where(random.uniform(key_sign, shape) > 0.5, 1.0, -1.0)
        angle = sign * jnp.arccos(jnp.clip(w, -1.0, 1.0)) + self.loc
        return (angle + math.pi) % (2 * math.pi) - math.pi

    @guarded_log_prob
    def log_prob(self, value):
        kappa = self.concentration
        log_bessel = jnp.log(i0e(kappa)) + kappa
        return kappa * jnp.cos(value - self.loc) - math.log(2 * math.pi) - log_bessel

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        """Circular variance 1 - I1(kappa) / I0(kappa)."""
        return 1 - i1e(self.concentration) / i0e(self.concentration)
