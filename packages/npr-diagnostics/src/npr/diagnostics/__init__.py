"""MCMC diagnostics on NumPy alone: ESS, R-hat, MCSE, E-BFMI, HPDI and summaries."""

from npr.diagnostics._version import __version__
from npr.diagnostics.autocorrelation import autocorrelation, autocovariance
from npr.diagnostics.convergence import (
    e_bfmi,
    effective_sample_size,
    ess_bulk,
    ess_tail,
    gelman_rubin,
    mcse_mean,
    mcse_quantile,
    mcse_sd,
    rank_rhat,
    split_gelman_rubin,
)
from npr.diagnostics.intervals import hpdi
from npr.diagnostics.summary import format_summary, print_summary, summary

__all__ = [
    "__version__",
    "autocorrelation",
    "autocovariance",
    "e_bfmi",
    "effective_sample_size",
    "ess_bulk",
    "ess_tail",
    "format_summary",
    "gelman_rubin",
    "hpdi",
    "mcse_mean",
    "mcse_quantile",
    "mcse_sd",
    "print_summary",
    "rank_rhat",
    "split_gelman_rubin",
    "summary",
]
