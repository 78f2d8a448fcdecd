"""Posterior summaries of dicts (or pytrees) of draws, as a dict and as a printed table."""

import numpy as np

from npr.diagnostics import convergence
from npr.diagnostics._validation import as_float_array, check_prob
from npr.diagnostics.intervals import hpdi

SEED_COLUMNS = ("mean", "sd", "hpdi_low", "hpdi_high", "n_eff", "r_hat")
MODERN_COLUMNS = ("mean", "sd", "hpdi_low", "hpdi_high", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")


def _flatten_sites(samples, prefix=""):
    """Dicts, lists and tuples of arrays become one flat {name: array} dict, keys joined by '.'."""
    if isinstance(samples, dict):
        items = samples.items()
    elif isinstance(samples, (list, tuple)) and not hasattr(samples, "shape"):
        items = ((str(i), v) for i, v in enumerate(samples))
    else:
        return {prefix or "x": samples}
    flat = {}
    for key, value in items:
        flat.update(_flatten_sites(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _site_statistics(name, draws, prob):
    """Statistics of one site's draws, shape (num_chains, num_draws, ...)."""
    draws = as_float_array(draws, f"site '{name}'")
    if draws.ndim < 2 or draws.shape[1] < 4:
        raise ValueError(f"site '{name}': summary needs at least 4 draws per chain, got shape {draws.shape}")
    event_shape = draws.shape[2:]
    flat, _ = convergence._components(draws)
    pooled = flat.reshape(flat.shape[0], -1)
    ordered = np.sort(pooled, axis=1)
    interval = hpdi(ordered, prob=prob, axis=1, presorted=True)
    stats = {
        "mean": pooled.mean(axis=1),
        "sd": pooled.std(axis=1, ddof=1) if pooled.shape[1] > 1 else np.zeros(pooled.shape[0]),
        "median": convergence._sorted_quantile(ordered, 0.5),
        "hpdi_low": interval[:, 0],
        "hpdi_high": interval[:, 1],
    }
    stats.update(convergence._summary_statistics(flat, ordered))
    return {key: np.asarray(value).reshape(event_shape) for key, value in stats.items()}


def summary(samples, prob=0.89, group_by_chain=True):
    """Per-site posterior statistics: mean, sd, median, HPDI bounds, n_eff, R-hat and the modern set.

    Args:
      samples: an array, or a dict / pytree of arrays. With `group_by_chain=True` each array is shaped
        (num_chains, num_draws, ...); otherwise (num_draws, ...), taken as a single chain.
      prob: the HPDI mass, in (0, 1).
      group_by_chain: whether the leading axis indexes chains.
    Returns:
      dict mapping each site to a dict of statistics; each statistic has the site's event shape.
      `n_eff` and `r_hat` are the seed's classic ESS and split R-hat; `rank_r_hat`, `ess_bulk`,
      `ess_tail`, `mcse_mean` and `mcse_sd` follow Vehtari et al. (2021).
    Example:
      >>> import numpy as np
      >>> draws = {"mu": np.random.default_rng(0).normal(1.0, 0.1, size=(2, 500))}
      >>> round(float(summary(draws)["mu"]["mean"]), 1)
      1.0
    """
    prob = check_prob(prob)
    sites = _flatten_sites(samples)
    result = {}
    for name, draws in sites.items():
        draws = np.asarray(draws)
        if not group_by_chain:
            draws = draws[None]
        result[name] = _site_statistics(name, draws, prob)
    return result


def _component_names(name, shape):
    if not shape:
        return [name]
    return [f"{name}[{','.join(str(i) for i in index)}]" for index in np.ndindex(*shape)]


def format_summary(samples, prob=0.89, group_by_chain=True, columns="seed"):
    """The summary table as a string, with Stan-style convergence warnings after it.

    Args:
      samples: as for `summary`.
      prob: the HPDI mass.
      group_by_chain: whether the leading axis indexes chains.
      columns: "seed" (mean, sd, HPDI bounds, n_eff, r_hat) or "modern" (mean, sd, HPDI bounds,
        mcse_mean, mcse_sd, ess_bulk, ess_tail, rank-normalised r_hat).
    Returns:
      The table as one string.
    Example:
      >>> import numpy as np
      >>> draws = {"coefs": np.random.default_rng(0).normal(size=(2, 500, 2))}
      >>> print(format_summary(draws).splitlines()[0].split())
      ['mean', 'sd', '5.5%', '94.5%', 'n_eff', 'r_hat']
    """
    if columns not in ("seed", "modern"):
        raise ValueError(f"columns must be 'seed' or 'modern', got {columns!r}")
    stats = summary(samples, prob=prob, group_by_chain=group_by_chain)
    keys = SEED_COLUMNS if columns == "seed" else MODERN_COLUMNS
    low, high = f"{50 * (1 - prob):.1f}%", f"{50 * (1 + prob):.1f}%"
    headers = [{"hpdi_low": low, "hpdi_high": high}.get(k, k) for k in keys]
    rows = []
    for name, site in stats.items():
        for index, label in zip(np.ndindex(*site["mean"].shape), _component_names(name, site["mean"].shape)):
            row_stats = dict(site)
            if columns == "modern":
                row_stats = {**site, "r_hat": site["rank_r_hat"]}
            rows.append((label, [float(row_stats[k][index]) for k in keys]))
    label_width = max([len(label) for label, _ in rows] + [4]) + 2
    lines = [" " * label_width + "".join(f"{h:>11}" for h in headers)]
    for label, values in rows:
        lines.append(f"{label:>{label_width}}" + "".join(f"{v:>11.2f}" for v in values))
    num_chains = 1
    first = next(iter(_flatten_sites(samples).values()))
    if group_by_chain:
        num_chains = np.shape(first)[0]
    lines += _convergence_warnings(stats, num_chains)
    return "\n".join(lines)


def _convergence_warnings(stats, num_chains):
    messages = []
    for name, site in stats.items():
        rhat = np.nan_to_num(np.maximum(site["rank_r_hat"], site["r_hat"]), nan=0.0)
        if np.any(rhat > 1.01):
            messages.append(
                f"Warning: site '{name}' has R-hat {float(np.max(rhat)):.3f} > 1.01: chains have not mixed."
            )
        ess = np.minimum(site["ess_bulk"], site["ess_tail"])
        if np.any(np.nan_to_num(ess, nan=np.inf) < 100 * num_chains):
            messages.append(
                f"Warning: site '{name}' has ESS {float(np.nanmin(ess)):.0f} < 100 per chain: "
                "estimates of its posterior may be unreliable."
            )
    return ([""] if messages else []) + messages


def print_summary(samples, prob=0.89, group_by_chain=True, columns="seed"):
    """Print the aligned summary table (see `format_summary`).

    Example:
      >>> import numpy as np
      >>> print_summary({"x": np.random.default_rng(0).normal(size=(4, 1000))})
                   mean         sd       5.5%      94.5%      n_eff      r_hat
           x      -0.02       1.00      -1.58       1.60    3912.27       1.00
    """
    print(format_summary(samples, prob=prob, group_by_chain=group_by_chain, columns=columns))
