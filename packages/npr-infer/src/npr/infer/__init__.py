"""Inference for npr models: HMC/NUTS (functional core and MCMC class) and variational inference."""

from npr.infer._version import __version__
from npr.infer.autoguide import (
    AutoDelta,
    AutoDiagonalNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from npr.infer.cache import compile_small_loops_as_one_kernel, enable_compilation_cache
from npr.infer.driver import MCMC
from npr.infer.elbo import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO, elbo
from npr.infer.hmc import HMCState, hmc
from npr.infer.inference_data import to_inference_data
from npr.infer.kernels import HMC, NUTS
from npr.infer.mcmc import fori_collect, mcmc
from npr.infer.predictive import Predictive, log_likelihood
from npr.infer.svi import SVI, svi
from npr.infer.util import initialize_model, log_density

__all__ = [
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoLaplaceApproximation",
    "AutoLowRankMultivariateNormal",
    "AutoMultivariateNormal",
    "AutoNormal",
    "RenyiELBO",
    "SVI",
    "TraceMeanField_ELBO",
    "Trace_ELBO",
    "elbo",
    "svi",
    "HMC",
    "MCMC",
    "NUTS",
    "Predictive",
    "HMCState",
    "__version__",
    "compile_small_loops_as_one_kernel",
    "enable_compilation_cache",
    "fori_collect",
    "hmc",
    "initialize_model",
    "log_density",
    "log_likelihood",
    "mcmc",
    "to_inference_data",
]
