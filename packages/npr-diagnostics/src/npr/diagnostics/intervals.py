"""Highest posterior density intervals."""

import numpy as np

from npr.diagnostics._validation import as_float_array, check_prob


def hpdi(x, prob=0.89, axis=0, presorted=False):
    """Narrowest interval that holds a fraction `prob` of the draws along `axis`.

    Among all windows of floor(prob * n) + 1 consecutive sorted draws, the narrowest one is returned
    (as `az.hdi`).

    Args:
      x: array of draws.
      prob: mass of the interval, in (0, 1).
      axis: the axis that indexes draws.
      presorted: `x` is already sorted along `axis` (skips the sort).
    Returns:
      NumPy array whose `axis` has length 2: lower and upper bounds.
    Example:
      >>> import numpy as np
      >>> hpdi(np.arange(101.0), prob=0.5)
      array([ 0., 50.])
    """
    prob = check_prob(prob)
    x = as_float_array(x) if presorted else np.sort(as_float_array(x), axis=axis)
    axis = axis % x.ndim
    n = x.shape[axis]
    if n < 2:
        raise ValueError(f"hpdi needs at least 2 draws along axis {axis}, got shape {x.shape}")
    width_index = int(np.floor(prob * n))
    num_windows = n - width_index
    lower = np.take(x, np.arange(num_windows), axis=axis)
    upper = np.take(x, np.arange(width_index, n), axis=axis)
    start = np.expand_dims(np.argmin(upper - lower, axis=axis), axis)
    bounds = [np.take_along_axis(lower, start, axis), np.take_along_axis(upper, start, axis)]
    return np.concatenate(bounds, axis=axis)
