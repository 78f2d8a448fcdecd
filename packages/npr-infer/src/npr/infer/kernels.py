"""Kernel objects: they hold settings; the work happens in `npr.infer.hmc`."""

import math

from npr.infer.hmc import KernelSettings


class NUTS:
    """No-U-Turn sampler settings for `MCMC` (a model, or a potential over unconstrained dicts).

    Example:
      >>> NUTS(potential_fn=lambda z: (z["x"] ** 2).sum()).settings.algo
      'NUTS'
    """

    algo = "NUTS"

    def __init__(
        self,
        model=None,
        potential_fn=None,
        step_size=1.0,
        adapt_step_size=True,
        adapt_mass_matrix=True,
        dense_mass=False,
        target_accept_prob=0.8,
        max_tree_depth=10,
        init_strategy="uniform",
        heuristic_step_size=True,
        trajectory_length=2 * math.pi,
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of model or potential_fn")
        self.settings = KernelSettings.checked(
            self.algo,
            max_tree_depth,
            target_accept_prob,
            trajectory_length,
            adapt_step_size,
            adapt_mass_matrix,
            dense_mass,
            heuristic_step_size,
            step_size,
        )
        self.model, self.potential_fn = model, potential_fn
        self.step_size = float(step_size)
        self.init_strategy = init_strategy


class HMC(NUTS):
    """Static-trajectory HMC settings for `MCMC`: `trajectory_length` / step size leapfrog steps.

    Example:
      >>> HMC(potential_fn=lambda z: (z["x"] ** 2).sum(), trajectory_length=1.0).settings.trajectory_length
      1.0
    """

    algo = "HMC"
