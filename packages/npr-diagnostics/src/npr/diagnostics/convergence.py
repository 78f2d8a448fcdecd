"""Effective sample size, R-hat, Monte Carlo standard errors and E-BFMI.

All functions take draws shaped (num_chains, num_draws, ...) and return one value per trailing
component. The work is vectorised over components, so thousands of parameters cost one FFT.

Constant components: ESS is the total number of draws, R-hat is 1.0 when every chain holds the same
constant and +inf when chains are stuck at different values; a `RuntimeWarning` says so.

References:
  Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021). Rank-normalization, folding, and
  localization: an improved R-hat for assessing convergence of MCMC. Bayesian Analysis.
  Geyer (1992). Practical Markov chain Monte Carlo. Statistical Science.
"""

import statistics
import warnings

import numpy as np

from npr.diagnostics._validation import as_float_array, check_chains
from npr.diagnostics.autocorrelation import _autocovariance


def _components(x):
    """Move the component axes first: (C, N, ...) -> (P, C, N), remembering the trailing shape."""
    trailing = x.shape[2:]
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return np.moveaxis(flat, -1, 0), trailing


def _is_constant(flat):
    return (flat.max(axis=(1, 2)) - flat.min(axis=(1, 2))) < np.finfo(np.float64).resolution


def _constant_within_chains(flat):
    return np.all((flat.max(axis=2) - flat.min(axis=2)) < np.finfo(np.float64).resolution, axis=1)


def _warn_constant(constant):
    if np.any(constant):
        warnings.warn(
            f"{int(np.sum(constant))} component(s) are constant within every chain: ESS is reported as the number "
            "of draws and R-hat as 1.0 (identical chains) or inf (chains stuck at different values)",
            RuntimeWarning,
            stacklevel=3,
        )


_CHUNK_VALUES = 400_000  # draws per FFT batch: keeps the complex spectra cache-sized


def _geyer_ess(flat):
    """Stan's ESS for flat draws (P, C, N): Geyer's initial positive then monotone sequence."""
    per_param = max(1, flat.shape[1] * flat.shape[2])
    step = max(1, _CHUNK_VALUES // per_param)
    if flat.shape[0] <= step:
        return _geyer_ess_block(np.ascontiguousarray(flat))
    return np.concatenate(
        [_geyer_ess_block(np.ascontiguousarray(flat[i : i + step])) for i in range(0, flat.shape[0], step)]
    )


def _geyer_ess_block(flat):
    num_params, num_chains, num_draws = flat.shape
    mean_acov = _autocovariance(flat, 2).mean(axis=1)  # (P, N)
    chain_mean = flat.mean(axis=2)
    mean_var = mean_acov[:, 0] * num_draws / (num_draws - 1.0)
    var_plus = mean_var * (num_draws - 1.0) / num_draws
    if num_chains > 1:
        var_plus = var_plus + np.var(chain_mean, axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (mean_var[:, None] - mean_acov) / var_plus[:, None]
    rho[:, 0] = 1.0
    num_pairs = num_draws // 2
    even, odd = rho[:, 0 : 2 * num_pairs : 2], rho[:, 1 : 2 * num_pairs : 2]
    pair_sums = even + odd  # (P, num_pairs)
    # Pair k is examined while its index stays below (num_draws - 2) / 2; the walk stops at the first
    # non-positive pair sum, and that last pair's even term still counts when positive.
    last_pair = max(0, min(num_pairs - 1, (num_draws - 3) // 2))
    pair_index = np.arange(num_pairs)
    nonpositive = (pair_sums <= 0) & (pair_index <= last_pair)
    stop = np.where(nonpositive.any(axis=1), np.argmax(nonpositive, axis=1), last_pair)
    running_min = np.minimum.accumulate(pair_sums, axis=1)
    kept = pair_index[None, :] < stop[:, None]
    total = np.sum(np.where(kept, running_min, 0.0), axis=1)
    rows = np.arange(num_params)
    stop_even, stop_sum = even[rows, stop], pair_sums[rows, stop]
    tail = np.where((stop_sum >= 0) | (stop_even > 0), stop_even, 0.0)
    tail = np.where(stop == 0, 1.0, tail)
    tau = -1.0 + 2.0 * total + tail
    size = num_chains * num_draws
    tau = np.maximum(tau, 1.0 / np.log10(size))
    ess = size / tau
    ess = np.where(np.isnan(rho).any(axis=1), np.nan, ess)
    return np.where(_is_constant(flat), float(size), ess)


def _split(flat):
    """Halve every chain (dropping the middle draw of an odd count): (P, C, N) -> (P, 2C, N // 2)."""
    half = flat.shape[2] // 2
    return np.concatenate([flat[:, :, :half], flat[:, :, flat.shape[2] - half :]], axis=1)


def _rank_average(flat):
    """Average ranks (1-based) over all chains and draws of each component, ties shared."""
    num_params = flat.shape[0]
    values = flat.reshape(num_params, -1)
    n = values.shape[1]
    order = np.argsort(values, axis=1)  # tie order is irrelevant: ties share their average rank
    offsets = (np.arange(num_params) * n)[:, None]
    flat_order = (order + offsets).ravel()
    sorted_values = values.ravel()[flat_order].reshape(num_params, n)
    starts_group = np.ones((num_params, n), dtype=bool)
    starts_group[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    ranks = np.empty(num_params * n)
    if starts_group.all():
        ranks[flat_order] = np.tile(np.arange(1.0, n + 1.0), num_params)
        return ranks.reshape(flat.shape)
    # Groups of equal values are contiguous in sorted order (and never cross rows): one pass over all.
    starts = np.flatnonzero(starts_group.ravel())
    ends = np.append(starts[1:], num_params * n) - 1
    average = (starts + ends) / 2.0 - (starts // n) * n + 1.0
    group = np.cumsum(starts_group.ravel()) - 1
    ranks[flat_order] = average[group]
    return ranks.reshape(flat.shape)


def _normal_quantile_of_ranks(ranks):
    """Blom's normal scores Phi^-1((r - 3/8) / (S + 1/4)) for half-integer ranks, via a lookup table."""
    size = ranks[0].size
    inverse_cdf = statistics.NormalDist().inv_cdf
    grid = (np.arange(1, 2 * size) / 2.0 + 0.5 - 0.375) / (size + 0.25)  # ranks 1, 1.5, ..., size
    table = np.array([inverse_cdf(p) for p in grid])
    return table[np.rint(2.0 * ranks - 2.0).astype(np.int64)]


def _z_scale(flat):
    return _normal_quantile_of_ranks(_rank_average(flat))


def _rhat_core(flat):
    num_draws = flat.shape[2]
    chain_mean = flat.mean(axis=2)
    within = np.var(flat, axis=2, ddof=1).mean(axis=1)
    between = num_draws * np.var(chain_mean, axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = np.sqrt((between / within + num_draws - 1) / num_draws)
    constant_within = within < np.finfo(np.float64).resolution
    return np.where(constant_within, np.where(between > 0, np.inf, 1.0), rhat)


def _prepare(x, min_chains, min_draws, what):
    x = as_float_array(x)
    check_chains(x, min_chains=min_chains, min_draws=min_draws, what=what)
    flat, trailing = _components(x)
    return flat, trailing


def _finish(values, trailing):
    values = values.reshape(trailing)
    return values if values.ndim else float(values)


def effective_sample_size(x):
    """Effective sample size of the (unsplit) chains, as in Stan and `az.ess(method="identity")`.

    Args:
      x: draws of shape (num_chains, num_draws, ...).
    Returns:
      ESS per trailing component (a float for scalar draws).
    Example:
      >>> import numpy as np
      >>> draws = np.random.default_rng(0).normal(size=(4, 1000))
      >>> 3000 < effective_sample_size(draws) < 5000
      True
    """
    flat, trailing = _prepare(x, 1, 2, "effective_sample_size")
    _warn_constant(_is_constant(flat))
    return _finish(_geyer_ess(flat), trailing)


def gelman_rubin(x):
    """Potential scale reduction factor R-hat of Gelman and Rubin (unsplit chains).

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 2 chains and 2 draws.
    Returns:
      R-hat per trailing component.
    Example:
      >>> import numpy as np
      >>> round(gelman_rubin(np.random.default_rng(0).normal(size=(4, 1000))), 2)
      1.0
    """
    flat, trailing = _prepare(x, 2, 2, "gelman_rubin")
    _warn_constant(_constant_within_chains(flat))
    return _finish(_rhat_core(flat), trailing)


def split_gelman_rubin(x):
    """Split R-hat: R-hat after cutting every chain in half (as `az.rhat(method="split")`).

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 4 draws.
    Returns:
      Split R-hat per trailing component.
    Example:
      >>> import numpy as np
      >>> trend = np.linspace(0, 5, 1000)[None, :] + np.zeros((2, 1))
      >>> split_gelman_rubin(trend) > 1.5
      True
    """
    flat, trailing = _prepare(x, 1, 4, "split_gelman_rubin")
    _warn_constant(_constant_within_chains(flat))
    return _finish(_rhat_core(_split(flat)), trailing)


def rank_rhat(x):
    """Rank-normalised split R-hat: the larger of the bulk and the folded (tail) R-hat.

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 4 draws.
    Returns:
      R-hat per trailing component (as `az.rhat(method="rank")`).
    Example:
      >>> import numpy as np
      >>> round(rank_rhat(np.random.default_rng(1).standard_cauchy(size=(4, 1000))), 2)
      1.0
    """
    flat, trailing = _prepare(x, 1, 4, "rank_rhat")
    constant = _constant_within_chains(flat)
    _warn_constant(constant)
    split = _split(flat)
    bulk = _rhat_core(_z_scale(split))
    folded = np.abs(split - np.median(split.reshape(split.shape[0], -1), axis=1)[:, None, None])
    tail = _rhat_core(_z_scale(folded))
    return _finish(np.where(constant, _rhat_core(split), np.maximum(bulk, tail)), trailing)


def ess_bulk(x):
    """Bulk ESS: ESS of the rank-normalised split chains.

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 4 draws.
    Returns:
      Bulk ESS per trailing component (as `az.ess(method="bulk")`).
    Example:
      >>> import numpy as np
      >>> 3000 < ess_bulk(np.random.default_rng(0).normal(size=(4, 1000))) < 5000
      True
    """
    flat, trailing = _prepare(x, 1, 4, "ess_bulk")
    constant = _is_constant(flat)
    _warn_constant(constant)
    ess = _geyer_ess(_z_scale(_split(flat)))
    return _finish(np.where(constant, float(flat[0].size), ess), trailing)


def _quantile_ess(flat, prob, quantiles=None):
    if quantiles is None:
        quantiles = np.quantile(flat.reshape(flat.shape[0], -1), prob, axis=1)
    indicator = (flat <= quantiles[:, None, None]).astype(np.float64)
    return _geyer_ess(_split(indicator))


def ess_tail(x, prob=(0.05, 0.95)):
    """Tail ESS: the smaller ESS of the indicators of falling below the 5% and 95% quantiles.

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 4 draws.
      prob: the two tail probabilities.
    Returns:
      Tail ESS per trailing component (as `az.ess(method="tail")`).
    Example:
      >>> import numpy as np
      >>> 2000 < ess_tail(np.random.default_rng(0).normal(size=(4, 1000))) < 5000
      True
    """
    flat, trailing = _prepare(x, 1, 4, "ess_tail")
    constant = _is_constant(flat)
    _warn_constant(constant)
    ess = np.minimum(_quantile_ess(flat, prob[0]), _quantile_ess(flat, prob[1]))
    return _finish(np.where(constant, float(flat[0].size), ess), trailing)


def mcse_mean(x):
    """Monte Carlo standard error of the posterior mean: sd / sqrt(ESS of the split chains).

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 4 draws.
    Returns:
      MCSE per trailing component (as `az.mcse(method="mean")`).
    Example:
      >>> import numpy as np
      >>> round(mcse_mean(np.random.default_rng(0).normal(size=(4, 2500))), 2)
      0.01
    """
    flat, trailing = _prepare(x, 1, 4, "mcse_mean")
    sd = flat.reshape(flat.shape[0], -1).std(axis=1, ddof=1)
    return _finish(sd / np.sqrt(_geyer_ess(_split(flat))), trailing)


def mcse_sd(x):
    """Monte Carlo standard error of the posterior sd, by the delta method on the squared deviations.

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 4 draws.
    Returns:
      MCSE of the sd per trailing component (as `az.mcse(method="sd")`).
    Example:
      >>> import numpy as np
      >>> round(mcse_sd(np.random.default_rng(0).normal(size=(4, 2500))), 3)
      0.007
    """
    flat, trailing = _prepare(x, 1, 4, "mcse_sd")
    values = flat.reshape(flat.shape[0], -1)
    squared = (values - values.mean(axis=1, keepdims=True)) ** 2
    ess = _geyer_ess(_split(squared.reshape(flat.shape)))
    expected_var = squared.mean(axis=1)
    var_of_var = ((squared**2).mean(axis=1) - expected_var**2) / ess
    with np.errstate(invalid="ignore", divide="ignore"):
        return _finish(np.sqrt(var_of_var / expected_var / 4.0), trailing)


def mcse_quantile(x, prob):
    """Monte Carlo standard error of the `prob` quantile.

    The quantile ESS gives the uncertainty of the empirical CDF at the quantile,
    sqrt(p (1 - p) / ESS); its image through the sorted draws is halved to a standard error. This is
    the normal approximation of the Beta interval ArviZ uses, so the two agree to O(1 / ESS).

    Args:
      x: draws of shape (num_chains, num_draws, ...), at least 4 draws.
      prob: the quantile's probability, in (0, 1).
    Returns:
      MCSE per trailing component.
    Example:
      >>> import numpy as np
      >>> round(mcse_quantile(np.random.default_rng(0).normal(size=(4, 2500)), 0.5), 2)
      0.01
    """
    flat, trailing = _prepare(x, 1, 4, "mcse_quantile")
    ess = _quantile_ess(flat, prob)
    spread = np.sqrt(prob * (1 - prob) / ess)
    values = np.sort(flat.reshape(flat.shape[0], -1), axis=1)
    size = values.shape[1]
    low = np.floor(np.clip((prob - spread) * size - 1, 0, size - 1)).astype(int)
    high = np.ceil(np.clip((prob + spread) * size - 1, 0, size - 1)).astype(int)
    rows = np.arange(values.shape[0])
    return _finish((values[rows, high] - values[rows, low]) / 2.0, trailing)


def e_bfmi(energy):
    """Energy Bayesian fraction of missing information, one value per chain.

    Values below 0.3 suggest the momentum resampling explores the energy distribution poorly.

    Args:
      energy: Hamiltonian energies, shape (num_draws,) or (num_chains, num_draws).
    Returns:
      NumPy array of shape (num_chains,) (as `az.bfmi`).
    Example:
      >>> import numpy as np
      >>> e_bfmi(np.random.default_rng(0).normal(size=(2, 5000))).round(1)
      array([2., 2.])
    """
    energy = np.atleast_2d(as_float_array(energy, "energy"))
    if energy.shape[1] < 2:
        raise ValueError(f"e_bfmi requires at least 2 draws per chain, got energy of shape {energy.shape}")
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1, ddof=1)


def _sorted_quantile(ordered, prob):
    """Linear-interpolation quantile (NumPy's default) of rows that are already sorted."""
    position = prob * (ordered.shape[1] - 1)
    low = int(np.floor(position))
    high = min(low + 1, ordered.shape[1] - 1)
    return ordered[:, low] + (position - low) * (ordered[:, high] - ordered[:, low])


def _summary_statistics(flat, ordered=None):
    """Every convergence statistic of validated flat draws (P, C, N), sharing splits, ranks and FFT work.

    `ordered` may hold each component's pooled draws already sorted. Components are processed in
    blocks small enough to stay in cache.
    """
    step = max(1, _CHUNK_VALUES // max(1, flat.shape[1] * flat.shape[2]))
    if flat.shape[0] <= step:
        return _summary_block(flat, ordered)
    blocks = [
        _summary_block(flat[i : i + step], None if ordered is None else ordered[i : i + step])
        for i in range(0, flat.shape[0], step)
    ]
    return {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}


def _summary_block(flat, ordered=None):
    flat = np.ascontiguousarray(flat)
    constant = _is_constant(flat)
    within_constant = _constant_within_chains(flat)
    _warn_constant(within_constant)
    split = _split(flat)
    values = flat.reshape(flat.shape[0], -1)
    stats = {"n_eff": _geyer_ess(flat), "r_hat": _rhat_core(split)}
    z = _z_scale(split)
    stats["ess_bulk"] = np.where(constant, float(flat[0].size), _geyer_ess(z))
    folded = np.abs(split - np.median(split.reshape(split.shape[0], -1), axis=1)[:, None, None])
    rank = np.maximum(_rhat_core(z), _rhat_core(_z_scale(folded)))
    stats["rank_r_hat"] = np.where(within_constant, stats["r_hat"], rank)
    if ordered is None:
        ordered = np.sort(values, axis=1)
    tail = np.minimum(
        _quantile_ess(flat, 0.05, _sorted_quantile(ordered, 0.05)),
        _quantile_ess(flat, 0.95, _sorted_quantile(ordered, 0.95)),
    )
    stats["ess_tail"] = np.where(constant, float(flat[0].size), tail)
    sd = values.std(axis=1, ddof=1)
    stats["mcse_mean"] = sd / np.sqrt(_geyer_ess(split))
    squared = (values - values.mean(axis=1, keepdims=True)) ** 2
    ess_squared = _geyer_ess(_split(squared.reshape(flat.shape)))
    expected_var = squared.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_of_var = ((squared**2).mean(axis=1) - expected_var**2) / ess_squared
        stats["mcse_sd"] = np.sqrt(var_of_var / expected_var / 4.0)
    return stats
