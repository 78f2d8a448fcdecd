"""Stan's windowed warmup: dual-averaging step size, Welford mass matrix, and the window schedule.

References:
  Hoffman, Gelman (2014). The No-U-Turn Sampler. JMLR (Algorithms 4 and 5).
  Stan Reference Manual, "HMC algorithm parameters: automatic parameter tuning".
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from npr.infer.integrator import IntegratorState, draw_momentum, kinetic_energy, leapfrog, mass_matrix_sqrt

# Dual averaging constants of Stan.
_GAMMA, _T0, _KAPPA = 0.05, 10.0, 0.75


class AdaptState(NamedTuple):
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    mass_matrix_sqrt: jax.Array
    log_step_size: jax.Array
    log_step_size_avg: jax.Array
    gradient_avg: jax.Array
    count: jax.Array
    mu: jax.Array
    welford_mean: jax.Array
    welford_m2: jax.Array
    welford_count: jax.Array


def warmup_schedule(num_warmup, init_buffer=75, term_buffer=50, base_window=25):
    """Boolean arrays over warmup iterations: inside a slow window, and last iteration of one.

    Short warmups use 15% / 75% / 10% for the initial fast, slow and final fast phases, as Stan does.

    Example:
      >>> in_slow, window_end = warmup_schedule(1000)
      >>> [int(i) for i in np.flatnonzero(window_end)]
      [99, 149, 249, 449, 949]
    """
    in_slow = np.zeros(num_warmup, dtype=bool)
    window_end = np.zeros(num_warmup, dtype=bool)
    if num_warmup < 20:
        return in_slow, window_end
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - init_buffer - term_buffer
    end_slow = num_warmup - term_buffer
    start, size = init_buffer, base_window
    while start < end_slow:
        stop = start + size
        if stop + 2 * size > end_slow:
            stop = end_slow
        in_slow[start:stop] = True
        window_end[stop - 1] = True
        start, size = stop, 2 * size
    return in_slow, window_end


def init_adapt_state(step_size, inverse_mass_matrix):
    step_size = jnp.asarray(step_size, dtype=inverse_mass_matrix.dtype)
    dim = inverse_mass_matrix.shape[0]
    zero = jnp.zeros((), inverse_mass_matrix.dtype)
    return AdaptState(
        step_size=step_size,
        inverse_mass_matrix=inverse_mass_matrix,
        mass_matrix_sqrt=mass_matrix_sqrt(inverse_mass_matrix),
        log_step_size=jnp.log(step_size),
        log_step_size_avg=zero,
        gradient_avg=zero,
        count=zero,
        mu=jnp.log(10.0 * step_size),
        welford_mean=jnp.zeros(dim, inverse_mass_matrix.dtype),
        welford_m2=jnp.zeros_like(inverse_mass_matrix),
        welford_count=zero,
    )


def dual_averaging_update(state, accept_prob, target_accept_prob):
    """One dual-averaging step toward `target_accept_prob`; a NaN statistic counts as 0."""
    accept_prob = jnp.where(jnp.isfinite(accept_prob), accept_prob, 0.0)
    count = state.count + 1.0
    eta = 1.0 / (count + _T0)
    gradient_avg = (1.0 - eta) * state.gradient_avg + eta * (target_accept_prob - accept_prob)
    log_step_size = state.mu - jnp.sqrt(count) / _GAMMA * gradient_avg
    weight = count**-_KAPPA
    log_step_size_avg = weight * log_step_size + (1.0 - weight) * state.log_step_size_avg
    # Keep the step size finite and representable whatever the statistics did.
    log_step_size = jnp.clip(log_step_size, -30.0, 30.0)
    return state._replace(
        step_size=jnp.exp(log_step_size),
        log_step_size=log_step_size,
        log_step_size_avg=log_step_size_avg,
        gradient_avg=gradient_avg,
        count=count,
    )


def restart_dual_averaging(state, step_size):
    zero = jnp.zeros_like(state.count)
    return state._replace(
        step_size=step_size,
        log_step_size=jnp.log(step_size),
        log_step_size_avg=zero,
        gradient_avg=zero,
        count=zero,
        mu=jnp.log(10.0 * step_size),
    )


def welford_update(state, x):
    count = state.welford_count + 1.0
    delta = x - state.welford_mean
    mean = state.welford_mean + delta / count
    if state.welford_m2.ndim == 1:
        m2 = state.welford_m2 + delta * (x - mean)
    else:
        m2 = state.welford_m2 + jnp.outer(delta, x - mean)
    return state._replace(welford_mean=mean, welford_m2=m2, welford_count=count)


def welford_estimate(state):
    """Stan's regularised estimate: shrink toward 1e-3 times the identity with weight 5 / (n + 5)."""
    n = state.welford_count
    covariance = state.welford_m2 / jnp.maximum(n - 1.0, 1.0)
    shrink = 5.0 / (n + 5.0)
    if covariance.ndim == 1:
        estimate = (1.0 - shrink) * covariance + 1e-3 * shrink
    else:
        eye = jnp.eye(covariance.shape[0], dtype=covariance.dtype)
        estimate = (1.0 - shrink) * covariance + 1e-3 * shrink * eye
    usable = jnp.all(jnp.isfinite(estimate)) & (n >= 2)
    if estimate.ndim == 1:
        usable = usable & jnp.all(estimate > 0)
    return jnp.where(usable, estimate, state.inverse_mass_matrix)


def reset_welford(state):
    return state._replace(
        welford_mean=jnp.zeros_like(state.welford_mean),
        welford_m2=jnp.zeros_like(state.welford_m2),
        welford_count=jnp.zeros_like(state.welford_count),
    )


class StepSizeSearch(NamedTuple):
    """Stan's step-size heuristic, one try at a time: double or halve the step size until one leapfrog
    step's acceptance probability crosses 0.8, each try from the same point with a fresh momentum.
    Non-finite energies count as rejection, so a search always ends with a usable step size."""

    step_size: jax.Array  # of the latest try (before the first: where the search starts)
    count: jax.Array  # tries made
    accept_prob: jax.Array  # of the latest try
    factor: jax.Array  # 2 (doubling) or 0.5 (halving), set by the first try
    rng: jax.Array  # key data of the next try's momentum


_TARGET = 0.8
MAX_SEARCH_TRIES = 100


def start_search(step_size, rng):
    """A search from `step_size`, drawing momenta from key data `rng`."""
    zero = jnp.zeros_like(step_size)
    return StepSizeSearch(step_size, jnp.array(0), zero, jnp.ones_like(step_size), rng)


def next_try(search):
    """The step size of the search's next try."""
    return jnp.where(search.count == 0, search.step_size, search.step_size * search.factor)


def record_try(search, step_size, accept_prob, rng):
    """The search once a try of `step_size` was accepted with `accept_prob`; `rng`: its next key data."""
    factor = jnp.where(search.count == 0, jnp.where(accept_prob > _TARGET, 2.0, 0.5), search.factor)
    like = lambda value, field: jnp.asarray(value, field.dtype)  # the loop's carry keeps its dtypes
    return StepSizeSearch(
        like(step_size, search.step_size),
        search.count + 1,
        like(accept_prob, search.accept_prob),
        like(factor, search.factor),
        rng,
    )


def search_finished(search):
    crossed = jnp.where(search.factor > 1.0, search.accept_prob <= _TARGET, search.accept_prob > _TARGET)
    return (search.count > 0) & (crossed | (search.count > MAX_SEARCH_TRIES))


def found_step_size(search):
    return jnp.clip(search.step_size, 1e-10, 1e10)


def one_step_accept_prob(energy0, energy):
    """The acceptance probability of a move from Hamiltonian `energy0` to `energy`; 0 where it is not finite."""
    delta = energy - energy0
    delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
    return jnp.where(jnp.isfinite(delta), jnp.minimum(1.0, jnp.exp(-delta)), 0.0)


def find_reasonable_step_size(
    potential_and_grad, inverse_mass_matrix, mass_sqrt, x, potential_energy, grad, rng, step_size, momentum_key=None
):
    """A `StepSizeSearch` from `step_size` at `x`, run to its end; returns the step size found.

    `momentum_key(rng)` gives the next key data and a try's momentum key (default: a split of the
    legacy key data `rng`).
    """
    if momentum_key is None:
        momentum_key = lambda rng: tuple(jax.random.split(rng))

    # One loop holds every try, the first (which sets the direction) included, so the model's
    # gradient is compiled into it once.
    def body(search):
        eps = next_try(search)
        rng, key = momentum_key(search.rng)
        r = draw_momentum(key, mass_sqrt, x)
        energy0 = potential_energy + kinetic_energy(inverse_mass_matrix, r)
        new = leapfrog(potential_and_grad, inverse_mass_matrix, IntegratorState(x, r, potential_energy, grad), eps)
        energy = new.potential_energy + kinetic_energy(inverse_mass_matrix, new.r)
        return record_try(search, eps, one_step_accept_prob(energy0, energy), rng)

    search = jax.lax.while_loop(lambda s: ~search_finished(s), body, start_search(step_size, rng))
    return found_step_size(search)
