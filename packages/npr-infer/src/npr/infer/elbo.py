"""Evidence lower bounds: Monte Carlo (with score-function terms), mean-field with analytic KL, Renyi."""

import jax
import jax.numpy as jnp

from npr.handlers import replay, seed, substitute, trace
from npr.infer.util import site_log_prob


def _traces(key, params, model, guide, args, kwargs):
    key_guide, key_model = jax.random.split(key)
    guide_trace = trace(seed(substitute(guide, params), key_guide)).get_trace(*args, **kwargs)
    model_trace = trace(seed(replay(substitute(model, params), guide_trace), key_model)).get_trace(*args, **kwargs)
    _check_sites(model_trace, guide_trace)
    return model_trace, guide_trace


def _check_sites(model_trace, guide_trace):
    for name, site in model_trace.items():
        if site["type"] != "sample":
            continue
        if site["is_observed"] and name in guide_trace and guide_trace[name]["type"] == "sample":
            raise ValueError(f"site '{name}': the guide samples a site that the model observes")
        if not site["is_observed"] and not site["infer"].get("intervened") and name not in guide_trace:
            raise ValueError(f"site '{name}': latent in the model but missing from the guide")


def _is_reparametrized(fn):
    return bool(getattr(fn, "reparametrized_params", None)) and not getattr(fn, "is_discrete", False)


def _sum_sites(model_trace, guide_trace):
    log_model = sum(site_log_prob(s).sum() for s in model_trace.values() if s["type"] == "sample")
    log_guide = 0.0
    score = 0.0
    for site in guide_trace.values():
        if site["type"] != "sample":
            continue
        log_q = site_log_prob(site).sum()
        log_guide = log_guide + log_q
        if not _is_reparametrized(site["fn"]):
            score = score + log_q
    return log_model, log_guide, score


def _surrogate(elbo_particle, score):
    """Equals the ELBO in value; its gradient adds the score-function term elbo * grad log q."""
    if isinstance(score, float):
        return elbo_particle
    return elbo_particle + jax.lax.stop_gradient(elbo_particle) * (score - jax.lax.stop_gradient(score))


class Trace_ELBO:
    """The negative ELBO estimated with `num_particles` draws from the guide.

    Reparameterised guide sites give pathwise gradients; the others (discrete sites) add
    score-function terms, so the gradient stays unbiased.

    Example:
      >>> Trace_ELBO(num_particles=2).num_particles
      2
    """

    def __init__(self, num_particles=1):
        if int(num_particles) < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        self.num_particles = int(num_particles)

    def _particle(self, key, params, model, guide, args, kwargs):
        model_trace, guide_trace = _traces(key, params, model, guide, args, kwargs)
        log_model, log_guide, score = _sum_sites(model_trace, guide_trace)
        return _surrogate(log_model - log_guide, score)

    def loss(self, rng_key, params, model, guide, *args, **kwargs):
        keys = jax.random.split(rng_key, self.num_particles)
        particles = jnp.stack([self._particle(k, params, model, guide, args, kwargs) for k in keys])
        return -jnp.mean(particles)


def kl_divergence(p, q):
    """Analytic KL(p || q) for Normal pairs (also inside Independent / expand); None when unknown."""
    p_base, q_base = _unwrap(p), _unwrap(q)
    if type(p_base).__name__ == "Normal" and type(q_base).__name__ == "Normal":
        ratio = (p_base.scale / q_base.scale) ** 2
        return 0.5 * (ratio + ((p_base.loc - q_base.loc) / q_base.scale) ** 2 - 1.0 - jnp.log(ratio))
    return None


def _unwrap(d):
    while type(d).__name__ in ("Independent", "ExpandedDistribution"):
        d = d.base_dist
    return d


class TraceMeanField_ELBO(Trace_ELBO):
    """Trace_ELBO that uses analytic KL divergences between guide and prior sites where known.

    Example:
      >>> TraceMeanField_ELBO().num_particles
      1
    """

    def _particle(self, key, params, model, guide, args, kwargs):
        model_trace, guide_trace = _traces(key, params, model, guide, args, kwargs)
        elbo = 0.0
        score = 0.0
        for name, site in model_trace.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"] or name not in guide_trace:
                elbo = elbo + site_log_prob(site).sum()
                continue
            guide_site = guide_trace[name]
            kl = kl_divergence(guide_site["fn"], site["fn"])
            if kl is None or site["scale"] is not None or site["mask"] is not None:
                elbo = elbo + site_log_prob(site).sum() - site_log_prob(guide_site).sum()
            else:
                elbo = elbo - jnp.sum(kl)
            if not _is_reparametrized(guide_site["fn"]):
                score = score + site_log_prob(guide_site).sum()
        for name, site in guide_trace.items():
            if site["type"] == "sample" and name not in model_trace:
                elbo = elbo - site_log_prob(site).sum()
        return _surrogate(elbo, score)


class RenyiELBO(Trace_ELBO):
    """Renyi's alpha-divergence bound: 1/(1-alpha) log mean exp((1-alpha) w) over particles.

    alpha = 0 gives the importance-weighted bound; alpha -> 1 approaches the ELBO.

    Example:
      >>> RenyiELBO(alpha=0.5, num_particles=4).alpha
      0.5
    """

    def __init__(self, alpha=0.0, num_particles=2):
        if alpha == 1:
            raise ValueError("RenyiELBO with alpha=1 is the ELBO: use Trace_ELBO")
        super().__init__(num_particles)
        self.alpha = float(alpha)

    def loss(self, rng_key, params, model, guide, *args, **kwargs):
        keys = jax.random.split(rng_key, self.num_particles)
        weights = []
        for key in keys:
            model_trace, guide_trace = _traces(key, params, model, guide, args, kwargs)
            log_model, log_guide, _ = _sum_sites(model_trace, guide_trace)
            weights.append(log_model - log_guide)
        scaled = (1.0 - self.alpha) * jnp.stack(weights)
        bound = (jax.scipy.special.logsumexp(scaled) - jnp.log(self.num_particles)) / (1.0 - self.alpha)
        return -bound


def elbo(param_map, model, guide, model_args, guide_args, kwargs, rng=None):
    """The seed's negative ELBO for reparameterised guides (one particle).

    Example:
      >>> import jax
      >>> import npr.distributions as dist
      >>> from npr.handlers import param, sample
      >>> model = lambda: sample("z", dist.Normal(0.0, 1.0))
      >>> guide = lambda: sample("z", dist.Normal(param("m", 0.0), 1.0))
      >>> abs(float(elbo({"m": 0.0}, model, guide, (), (), {}, jax.random.PRNGKey(0)))) < 1e-6
      True
    """
    rng = jax.random.PRNGKey(0) if rng is None else rng
    key_guide, key_model = jax.random.split(rng)
    guide_trace = trace(seed(substitute(guide, param_map), key_guide)).get_trace(*guide_args, **kwargs)
    model_trace = trace(seed(replay(substitute(model, param_map), guide_trace), key_model)).get_trace(
        *model_args, **kwargs
    )
    _check_sites(model_trace, guide_trace)
    log_model, log_guide, _ = _sum_sites(model_trace, guide_trace)
    return -(log_model - log_guide)
