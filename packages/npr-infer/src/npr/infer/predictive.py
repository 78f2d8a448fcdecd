"""Prior and posterior predictive draws and pointwise log-likelihoods, vectorised over draws."""

import jax
import jax.numpy as jnp

from npr.handlers import seed, substitute, trace
from npr.infer.util import site_log_prob


def _leading_size(samples, what):
    sizes = {name: jnp.shape(value)[0] for name, value in samples.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{what} disagree in their leading (draw) dims: {sizes}")
    return next(iter(sizes.values()))


def _batched_map(fn, keys, samples, batch_size):
    """vmap `fn` over draws, `batch_size` draws at a time (bounded memory)."""
    total = keys.shape[0]
    if batch_size is None or batch_size >= total:
        return jax.vmap(fn)(keys, samples)
    pieces = []
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        chunk = jax.tree_util.tree_map(lambda x, a=start, b=stop: x[a:b], samples)
        pieces.append(jax.vmap(fn)(keys[start:stop], chunk))
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *pieces)


class Predictive:
    """Draws of a model's sites given posterior samples (posterior predictive) or none (prior).

    Args:
      model: the model.
      posterior_samples: dict of draws with a common leading dim, substituted into the model.
      guide: a guide whose draws (with `params`) are substituted instead.
      params: guide parameters.
      num_samples: number of draws (must agree with `posterior_samples` when both are given).
      return_sites: names to return (default: every site not in `posterior_samples`).
      batch_size: draws computed at once, for bounded memory.
    Example:
      >>> import jax, jax.numpy as jnp
      >>> import npr.distributions as dist
      >>> from npr.handlers import sample
      >>> def model():
      ...     mu = sample("mu", dist.Normal(0.0, 1.0))
      ...     sample("y", dist.Normal(mu, 0.1))
      >>> draws = Predictive(model, {"mu": jnp.array([0.0, 10.0])})(jax.random.PRNGKey(0))
      >>> jnp.round(draws["y"]).tolist()
      [0.0, 10.0]
    """

    def __init__(
        self,
        model,
        posterior_samples=None,
        guide=None,
        params=None,
        num_samples=None,
        return_sites=None,
        batch_size=None,
    ):
        if posterior_samples is not None:
            size = _leading_size(posterior_samples, "posterior_samples")
            if num_samples is not None and num_samples != size:
                raise ValueError(f"num_samples={num_samples} contradicts the {size} posterior draws given")
            num_samples = size
        if num_samples is None:
            raise ValueError("Predictive needs posterior_samples or num_samples")
        self.model, self.posterior_samples = model, posterior_samples
        self.guide, self.params = guide, params or {}
        self.num_samples, self.return_sites, self.batch_size = int(num_samples), return_sites, batch_size

    def _one(self, key, sample, args, kwargs):
        key_guide, key_model = jax.random.split(key)
        values = dict(sample)
        if self.guide is not None:
            guide_trace = trace(seed(substitute(self.guide, self.params), key_guide)).get_trace(*args, **kwargs)
            values.update({n: s["value"] for n, s in guide_trace.items() if s["type"] == "sample"})
        model_trace = trace(seed(substitute(self.model, values), key_model)).get_trace(*args, **kwargs)
        if self.return_sites is not None:
            names = list(self.return_sites)
        else:
            names = [n for n, s in model_trace.items() if s["type"] in ("sample", "deterministic") and n not in sample]
        return {name: model_trace[name]["value"] for name in names}

    def __call__(self, rng_key, *args, **kwargs):
        """Predictive draws: a dict of arrays with a leading dim of `num_samples`."""
        keys = jax.random.split(rng_key, self.num_samples)
        samples = self.posterior_samples or {}
        return _batched_map(lambda k, s: self._one(k, s, args, kwargs), keys, samples, self.batch_size)


def log_likelihood(model, posterior_samples, *args, batch_size=None, **kwargs):
    """Pointwise log-likelihood of every observed site under each posterior draw (input of WAIC/LOO).

    Args:
      model: the model.
      posterior_samples: dict of draws with a common leading dim.
      *args: the model's arguments (with the observed data).
      batch_size: draws computed at once.
      **kwargs: the model's keyword arguments.
    Returns:
      dict: observed site -> array (num_draws, *site batch shape).
    Example:
      >>> import jax.numpy as jnp
      >>> import npr.distributions as dist
      >>> from npr.handlers import plate, sample
      >>> def model(y):
      ...     mu = sample("mu", dist.Normal(0.0, 1.0))
      ...     with plate("data", 3):
      ...         sample("y", dist.Normal(mu, 1.0), obs=y)
      >>> log_likelihood(model, {"mu": jnp.zeros(5)}, jnp.zeros(3))["y"].shape
      (5, 3)
    """
    size = _leading_size(posterior_samples, "posterior_samples")

    def one(key, sample):
        model_trace = trace(seed(substitute(model, sample), key)).get_trace(*args, **kwargs)
        return {
            name: site_log_prob(site)
            for name, site in model_trace.items()
            if site["type"] == "sample" and site["is_observed"]
        }

    keys = jax.random.split(jax.random.PRNGKey(0), size)
    return _batched_map(one, keys, posterior_samples, batch_size)
