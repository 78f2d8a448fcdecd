"""Hand MCMC results to ArviZ as an `InferenceData`, through ArviZ's public `from_dict`."""

import numpy as np

from npr.handlers import seed, trace
from npr.infer.predictive import log_likelihood as pointwise_log_likelihood


def _numpy(tree):
    return {name: np.asarray(value) for name, value in tree.items()}


def _by_chain(draws, num_chains):
    return {name: value.reshape((num_chains, -1) + value.shape[1:]) for name, value in _numpy(draws).items()}


def to_inference_data(mcmc, prior=None, posterior_predictive=None, log_likelihood=True, coords=None, dims=None):
    """An ArviZ `InferenceData` of an `MCMC` run (ArviZ is the optional extra `npr-infer[arviz]`).

    Groups: posterior, sample_stats (`lp`, `diverging`, `energy`, `n_steps`, `tree_depth`,
    `step_size`, `acceptance_rate`), observed_data, log_likelihood, and prior / posterior_predictive
    when given (dicts of draws with a leading dim of num_chains * num_samples, or of num_samples for
    the prior).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import npr.distributions as dist
      >>> from npr.handlers import sample
      >>> from npr.infer import MCMC, NUTS
      >>> def model(y):
      ...     mu = sample("mu", dist.Normal(0.0, 1.0))
      ...     sample("y", dist.Normal(mu, 1.0), obs=y)
      >>> mcmc = MCMC(NUTS(model), num_warmup=50, num_samples=50, progress_bar=False)
      >>> mcmc.run(jax.random.PRNGKey(0), jnp.array([0.5, 1.5]))
      >>> sorted(to_inference_data(mcmc).groups())
      ['log_likelihood', 'observed_data', 'posterior', 'sample_stats']
    """
    import arviz as az

    num_chains = mcmc.num_chains
    posterior = _by_chain(mcmc.get_samples(), num_chains)  # on the host: no program to compile
    extra = _numpy(mcmc.get_extra_fields(group_by_chain=True))
    stats = {
        "diverging": extra["diverging"],
        "energy": extra["energy"],
        "n_steps": extra["num_steps"],
        "tree_depth": extra["tree_depth"],
        "step_size": np.asarray(mcmc.last_state.step_size)[:, None] * np.ones_like(extra["energy"]),
    }
    if "potential_energy" in extra:
        stats["lp"] = -extra["potential_energy"]
    if "accept_prob" in extra:
        stats["acceptance_rate"] = extra["accept_prob"]
    observed = {}
    log_lik = None
    if mcmc.kernel.model is not None:
        args, kwargs = mcmc._model_args
        model_trace = trace(seed(mcmc.kernel.model, 0)).get_trace(*args, **kwargs)
        observed = {
            n: np.asarray(s["value"]) for n, s in model_trace.items() if s["type"] == "sample" and s["is_observed"]
        }
        if log_likelihood and observed:
            flat = mcmc.get_samples()
            log_lik = _by_chain(pointwise_log_likelihood(mcmc.kernel.model, flat, *args, **kwargs), num_chains)
    prior_group = None
    if prior is not None:
        prior_group = {name: value[None] for name, value in _numpy(prior).items()}
    predictive = _by_chain(posterior_predictive, num_chains) if posterior_predictive is not None else None
    return az.from_dict(
        posterior=posterior,
        sample_stats=stats,
        observed_data=observed or None,
        log_likelihood=log_lik,
        prior=prior_group,
        posterior_predictive=predictive,
        coords=coords,
        dims=dims,
    )
