"""Autocovariance and autocorrelation through the FFT, O(n log n) in the number of draws."""

import numpy as np

from npr.diagnostics._validation import as_float_array


def _fft_length(n):
    """Smallest power of two that holds 2 * n points, so the circular correlation does not wrap."""
    return 1 << int(np.ceil(np.log2(max(2 * n, 2))))


def autocovariance(x, axis=0):
    """Biased autocovariance (divided by n) of `x` along `axis`, for every lag 0..n-1.

    Args:
      x: array of draws.
      axis: the axis that indexes draws.
    Returns:
      NumPy array of the same shape as `x`.
    Example:
      >>> import numpy as np
      >>> np.round(autocovariance(np.array([1.0, -1.0, 1.0, -1.0])), 3)
      array([ 1.  , -0.75,  0.5 , -0.25])
    """
    x = as_float_array(x)
    axis = axis % x.ndim
    n = x.shape[axis]
    centered = x - x.mean(axis=axis, keepdims=True)
    spectrum = np.fft.rfft(centered, n=_fft_length(n), axis=axis)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=_fft_length(n), axis=axis)
    return np.take(acov, np.arange(n), axis=axis) / n


def autocorrelation(x, axis=0):
    """Autocorrelation of `x` along `axis`: the autocovariance normalised by its lag-0 value.

    Args:
      x: array of draws.
      axis: the axis that indexes draws.
    Returns:
      NumPy array of the same shape as `x`; lag 0 is 1 (NaN for a constant series).
    Example:
      >>> import numpy as np
      >>> np.round(autocorrelation(np.array([1.0, 2.0, 3.0, 4.0])), 3)
      array([ 1.  ,  0.25, -0.3 , -0.45])
    """
    acov = autocovariance(x, axis=axis)
    axis = axis % acov.ndim
    with np.errstate(invalid="ignore", divide="ignore"):
        return acov / np.take(acov, [0], axis=axis)
