"""Inference for npr models: HMC/NUTS (functional core and MCMC class) and variational inference."""

from npr.infer._version import __version__
from npr.infer.driver import MCMC
from npr.infer.hmc import HMCState, hmc
from npr.infer.kernels import HMC, NUTS
from npr.infer.mcmc import fori_collect, mcmc
from npr.infer.util import initialize_model, log_density

__all__ = [
    "HMC",
    "MCMC",
    "NUTS",
    "HMCState",
    "__version__",
    "fori_collect",
    "hmc",
    "initialize_model",
    "log_density",
    "mcmc",
]
