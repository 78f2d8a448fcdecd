"""Autocovariance and autocorrelation through the FFT, O(n log n) in the number of draws."""

import numpy as np

from npr.diagnostics._validation import as_float_array


def _fft_length(n):
    """Smallest 5-smooth length (2^a 3^b 5^c) holding 2 * n points, so the correlation does not wrap."""
    target = max(2 * n, 2)
    best = 1 << int(np.ceil(np.log2(target)))
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35 << max(0, int(np.ceil(np.log2(target / power35))))
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


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
    return _autocovariance(as_float_array(x), axis)


def _autocovariance(x, axis):
    axis = axis % x.ndim
    n = x.shape[axis]
    length = _fft_length(n)
    centered = x - x.mean(axis=axis, keepdims=True)
    spectrum = np.fft.rfft(centered, n=length, axis=axis)
    power = spectrum.real**2 + spectrum.imag**2
    acov = np.fft.irfft(power, n=length, axis=axis)
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
