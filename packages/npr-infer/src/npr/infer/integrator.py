"""Euclidean kinetic energy, momentum draws and the velocity Verlet (leapfrog) integrator.

Positions and momenta are flat vectors; the inverse mass matrix is a vector (diagonal) or a matrix
(dense), and its shape decides which algebra is used (known at trace time).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import random
from jax.scipy.linalg import solve_triangular

from npr.infer.rng import normal


class IntegratorState(NamedTuple):
    x: jax.Array
    r: jax.Array
    potential_energy: jax.Array
    grad: jax.Array


def velocity(inverse_mass_matrix, r):
    """M^-1 r: the velocity of momentum `r`."""
    if inverse_mass_matrix.ndim == 1:
        return inverse_mass_matrix * r
    return inverse_mass_matrix @ r


def kinetic_energy(inverse_mass_matrix, r):
    """0.5 r^T M^-1 r."""
    # A sum of products: XLA never compiles a loop holding a dot as one function
    # (see npr.infer.cache.compile_small_loops_as_one_kernel).
    return 0.5 * jnp.sum(r * velocity(inverse_mass_matrix, r))


def mass_matrix_sqrt(inverse_mass_matrix):
    """A factor S with S S^T = M, so that S eps ~ N(0, M) for standard normal eps."""
    if inverse_mass_matrix.ndim == 1:
        return jnp.sqrt(1.0 / inverse_mass_matrix)
    cholesky = jnp.linalg.cholesky(inverse_mass_matrix)  # M^-1 = C C^T, so M = C^-T C^-1
    eye = jnp.eye(inverse_mass_matrix.shape[-1], dtype=inverse_mass_matrix.dtype)
    return solve_triangular(cholesky, eye, lower=True).T


def draw_momentum(key, mass_sqrt, like):
    """A momentum N(0, M) shaped as `like`, from a key with two words of key data (typed or raw:
    `npr.infer.rng.normal`) or any other key (`jax.random.normal`)."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    data = random.key_data(key) if typed else key
    if data.shape == (2,) and data.dtype == jnp.uint32:
        eps = normal(data, like.shape, like.dtype)
    else:
        eps = random.normal(key, like.shape, dtype=like.dtype)
    if mass_sqrt.ndim == 1:
        return mass_sqrt * eps
    return mass_sqrt @ eps


def leapfrog(potential_and_grad, inverse_mass_matrix, state, step_size):
    """One velocity Verlet step of size `step_size` (negative steps integrate backwards in time)."""
    r_half = state.r - 0.5 * step_size * state.grad
    x = state.x + step_size * velocity(inverse_mass_matrix, r_half)
    potential_energy, grad = potential_and_grad(x)
    r = r_half - 0.5 * step_size * grad
    return IntegratorState(x, r, potential_energy, grad)
