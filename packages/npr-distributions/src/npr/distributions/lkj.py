"""LKJ distributions over correlation matrices and their Cholesky factors.

References:
  Lewandowski, Kurowicka, Joe (2009). Generating random correlation matrices based on vines and
  extended onion method. Journal of Multivariate Analysis.
"""

import math

import jax.numpy as jnp
from jax import random
from jax.scipy.special import betaln

from npr.distributions import constraints
from npr.distributions._util import broadcast_params
from npr.distributions.distribution import Distribution, guarded_log_prob
from npr.distributions.transforms import CorrCholeskyTransform


def _log_normaliser(dimension, concentration):
    """log of the LKJ normalising constant c_K(eta) (Lewandowski et al. 2009, eq. 16)."""
    total = 0.0
    for k in range(1, dimension):
        order = dimension - k
        shape = concentration + 0.5 * (order - 1)
        total = total + (2 * concentration - 2 + order) * order * math.log(2.0) + order * betaln(shape, shape)
    return total


class LKJCholesky(Distribution):
    """Cholesky factors L of correlation matrices L L^T ~ LKJ(concentration).

    Args:
      dimension: size K of the matrices.
      concentration: eta > 0; 1 is uniform over correlation matrices, larger favours the identity.
      sample_method: 'onion' or 'cvine'; both draw from the same distribution.
    Example:
      >>> d = LKJCholesky(3, 2.0)
      >>> d.event_shape
      (3, 3)
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_cholesky
    reparametrized_params = []
    pytree_aux_fields = ("dimension", "sample_method")

    def __init__(self, dimension, concentration=1.0, sample_method="onion", validate_args=None):
        if int(dimension) < 2:
            raise ValueError(f"{type(self).__name__}: dimension must be at least 2, got {dimension}")
        if sample_method not in ("onion", "cvine"):
            raise ValueError(f"{type(self).__name__}: sample_method must be 'onion' or 'cvine', got {sample_method!r}")
        params, batch_shape = broadcast_params(type(self).__name__, concentration=concentration)
        self.dimension, self.sample_method = int(dimension), sample_method
        self.concentration = params["concentration"]
        super().__init__(batch_shape, (self.dimension, self.dimension), validate_args=validate_args)

    def _sample_cvine(self, key, shape):
        k = self.dimension
        rows, cols = jnp.tril_indices(k, -1)
        eta = self.concentration[..., None]
        # Partial correlations at vine level j are 2 Beta(b_j, b_j) - 1 with b_j = eta + (K - 2 - j) / 2.
        shape_param = eta + 0.5 * (k - 2 - cols)
        shape_param = jnp.broadcast_to(shape_param, shape + (rows.size,))
        partial = 2.0 * random.beta(key, shape_param, shape_param) - 1.0
        return CorrCholeskyTransform()(jnp.arctanh(jnp.clip(partial, -1 + 1e-7, 1 - 1e-7)))

    def _sample_onion(self, key, shape):
        k = self.dimension
        key_beta, key_sphere = random.split(key)
        rows = jnp.arange(1, k)
        eta = self.concentration[..., None]
        beta_a = jnp.broadcast_to(0.5 * rows, shape + (k - 1,))
        beta_b = jnp.broadcast_to(eta + 0.5 * (k - 2) - 0.5 * (rows - 1), shape + (k - 1,))
        y = random.beta(key_beta, beta_a, beta_b)[..., None]  # squared norm of each row's off-diagonal part
        direction = random.normal(key_sphere, shape + (k - 1, k - 1))
        direction = jnp.tril(direction)  # row r uses its first r entries
        direction = direction / jnp.linalg.norm(direction, axis=-1, keepdims=True)
        off_diagonal = jnp.sqrt(y) * direction
        diagonal = jnp.sqrt(jnp.clip(1.0 - y[..., 0], 0.0))
        lower = jnp.zeros(shape + (k, k))
        lower = lower.at[..., 1:, :-1].set(off_diagonal)
        diagonal = jnp.concatenate([jnp.ones(shape + (1,)), diagonal], axis=-1)
        return lower + diagonal[..., None] * jnp.eye(k)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        if self.sample_method == "onion":
            return self._sample_onion(key, shape)
        return self._sample_cvine(key, shape)

    @guarded_log_prob
    def log_prob(self, value):
        k = self.dimension
        eta = self.concentration
        diagonal = jnp.diagonal(value, axis1=-2, axis2=-1)[..., 1:]
        powers = (k - jnp.arange(2, k + 1)) + 2 * eta[..., None] - 2
        return jnp.sum(powers * jnp.log(diagonal), axis=-1) - _log_normaliser(k, eta)


class LKJ(LKJCholesky):
    """Correlation matrices C ~ LKJ(concentration), density proportional to det(C)^(concentration - 1).

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(LKJ(2, 1.0).log_prob(jnp.eye(2))), 4)
      -0.6931
    """

    support = constraints.corr_matrix

    def sample(self, key, sample_shape=()):
        cholesky = super().sample(key, sample_shape)
        return cholesky @ jnp.swapaxes(cholesky, -2, -1)

    @guarded_log_prob
    def log_prob(self, value):
        cholesky = jnp.linalg.cholesky(value)
        log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(cholesky, axis1=-2, axis2=-1)), axis=-1)
        return (self.concentration - 1) * log_det - _log_normaliser(self.dimension, self.concentration)

    @property
    def mean(self):
        """The identity: every off-diagonal correlation is symmetric about zero."""
        return jnp.broadcast_to(jnp.eye(self.dimension), self.batch_shape + self.event_shape)
