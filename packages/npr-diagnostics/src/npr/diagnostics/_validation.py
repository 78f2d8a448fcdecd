"""Shared argument checks: every public diagnostic raises the same clear errors."""

import numpy as np


def as_float_array(x, name="x"):
    """Convert NumPy/JAX/list input to a float64 NumPy array without touching the caller's object."""
    array = np.asarray(x, dtype=np.float64)  # read only: never written to
    if array.size and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name}: samples must be finite, got {array[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return array


def check_chains(x, min_chains=1, min_draws=1, what="this diagnostic"):
    if x.ndim < 2:
        raise ValueError(f"{what} expects an array of shape (num_chains, num_draws, ...), got shape {x.shape}")
    if x.shape[0] < min_chains:
        raise ValueError(f"{what} requires at least {min_chains} chains (x.shape[0] >= {min_chains}), got {x.shape}")
    if x.shape[1] < min_draws:
        raise ValueError(f"{what} requires at least {min_draws} draws (x.shape[1] >= {min_draws}), got {x.shape}")


def check_prob(prob):
    if not 0.0 < float(prob) < 1.0:
        raise ValueError(f"prob must lie in the open interval (0, 1), got {prob}")
    return float(prob)
