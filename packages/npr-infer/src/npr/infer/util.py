"""From a model to a potential over unconstrained space: log densities, transforms, initialisation."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from npr.distributions import biject_to
from npr.handlers import seed, substitute, trace

INIT_STRATEGIES = ("uniform", "prior", "median")


def log_density(model, model_args, model_kwargs, params):
    """The joint log density of `model` with its sites set to `params` (constrained values).

    Observed sites contribute `log_prob(obs)`; sites with a `scale` are scaled, masked entries dropped.

    Args:
      model: a model function.
      model_args: positional arguments of the model.
      model_kwargs: keyword arguments of the model.
      params: dict of constrained values of the latent sites.
    Returns:
      (log_joint, model_trace)
    Example:
      >>> import npr.distributions as dist
      >>> from npr.handlers import sample
      >>> model = lambda: sample("x", dist.Normal(0.0, 1.0))
      >>> round(float(log_density(model, (), {}, {"x": 0.0})[0]), 4)
      -0.9189
    """
    model_trace = trace(substitute(model, params)).get_trace(*model_args, **model_kwargs)
    total = jnp.zeros(())
    for site in model_trace.values():
        if site["type"] != "sample":
            continue
        total = total + site_log_prob(site).sum()
    return total, model_trace


def site_log_prob(site):
    """A sample site's log density with its mask and scale applied."""
    log_prob = site["fn"].log_prob(site["value"])
    if site["mask"] is not None:
        log_prob = jnp.where(site["mask"], log_prob, 0.0)
    if site["scale"] is not None:
        log_prob = site["scale"] * log_prob
    return log_prob


def _latent_sites(model_trace):
    return {
        name: site
        for name, site in model_trace.items()
        if site["type"] == "sample" and not site["is_observed"] and not site["infer"].get("intervened")
    }


def _transforms(latents):
    transforms = {}
    for name, site in latents.items():
        if getattr(site["fn"], "is_discrete", False):
            raise ValueError(
                f"site '{name}': {type(site['fn']).__name__} is discrete; HMC/NUTS need continuous latent sites"
            )
        transforms[name] = biject_to(site["fn"].support)
    return transforms


def constrain(transforms, params):
    """Map unconstrained values to the sites' supports."""
    return {name: transforms[name](value) for name, value in params.items()}


def unconstrain(transforms, values):
    return {name: transforms[name].inv(value) for name, value in values.items()}


def potential_energy(model, model_args, model_kwargs, transforms, params):
    """Negative log joint over unconstrained `params`, Jacobians of the transforms included."""
    constrained = constrain(transforms, params)
    log_joint, _ = log_density(model, model_args, model_kwargs, constrained)
    for name, value in params.items():
        log_det = transforms[name].log_abs_det_jacobian(value, constrained[name])
        log_joint = log_joint + jnp.sum(log_det)
    return -log_joint


def constrain_with_deterministics(model, model_args, model_kwargs, transforms, params):
    """Constrained values of the latent sites plus every deterministic site of the model."""
    constrained = constrain(transforms, params)
    substituted = substitute(seed(model, 0), constrained)
    model_trace = trace(substituted).get_trace(*model_args, **model_kwargs)
    out = dict(constrained)
    out.update({name: site["value"] for name, site in model_trace.items() if site["type"] == "deterministic"})
    return out


def _initial_values(key, latents, transforms, init_strategy):
    shapes = {name: jnp.shape(site["value"]) for name, site in latents.items()}
    fns = {name: site["fn"] for name, site in latents.items()}
    return initial_values(key, shapes, fns, transforms, init_strategy)


def initial_values(key, shapes, fns, transforms, init_strategy):
    """Unconstrained initial values of the sites named in `shapes` (their constrained shapes), drawn
    as `init_strategy` says: 'uniform' needs no distributions (`fns` may be None), 'prior' and 'median'
    draw from `fns`, and a dict gives constrained values. Traceable."""
    values = {}
    for index, (name, shape) in enumerate(shapes.items()):
        site_key = jax.random.fold_in(key, index)
        transform = transforms[name]
        if isinstance(init_strategy, dict):
            values[name] = transform.inv(jnp.asarray(init_strategy[name]))
        elif init_strategy == "uniform":
            unconstrained_shape = transform.inverse_shape(shape)
            values[name] = jax.random.uniform(site_key, unconstrained_shape, minval=-2.0, maxval=2.0)
        elif init_strategy == "prior":
            values[name] = transform.inv(fns[name].sample(site_key))
        else:  # median of prior draws
            draws = fns[name].sample(site_key, (15,))
            values[name] = transform.inv(jnp.median(draws, axis=0))
    return values


def _check_init_dict(init_strategy, latents, transforms):
    missing = sorted(set(latents) - set(init_strategy))
    extra = sorted(set(init_strategy) - set(latents))
    if missing or extra:
        raise ValueError(
            f"init values must name exactly the latent sites {sorted(latents)}; missing {missing}, unknown {extra}"
        )
    for name, value in init_strategy.items():
        support = latents[name]["fn"].support
        ok = np.asarray(support(jnp.asarray(value)))
        if not np.all(ok):
            raise ValueError(
                f"site '{name}': init value of shape {np.shape(value)} lies outside the support {support!r} "
                "(init values are constrained values)"
            )


def _report_non_finite(model, model_args, model_kwargs, transforms, params, grads):
    constrained = constrain(transforms, params)
    _, model_trace = log_density(model, model_args, model_kwargs, constrained)
    problems = []
    for name, site in model_trace.items():
        if site["type"] != "sample":
            continue
        log_prob = np.asarray(site_log_prob(site))
        if not np.all(np.isfinite(log_prob)):
            value = np.asarray(site["value"])
            problems.append(
                f"site '{name}': log density is {log_prob.ravel()[~np.isfinite(log_prob.ravel())][0]} "
                f"at value {value if value.size <= 6 else f'of shape {value.shape}'}"
            )
    for name, grad in grads.items():
        grad = np.asarray(grad)
        if not np.all(np.isfinite(grad)):
            problems.append(f"site '{name}': gradient of the potential is not finite ({grad.ravel()[:6]})")
    return problems


def initialize_model(rng, model, *model_args, init_strategy="uniform", max_tries=100, **model_kwargs):
    """Prepare `model` for HMC/NUTS: initial unconstrained values, the potential and the constrain map.

    Args:
      rng: PRNG key.
      model: a model function whose latent sites are continuous.
      *model_args: positional arguments of the model.
      init_strategy: 'uniform' (unconstrained Uniform(-2, 2), as Stan), 'prior', 'median', or a dict of
        constrained values.
      max_tries: attempts at finding a point where the potential and its gradient are finite.
      **model_kwargs: keyword arguments of the model.
    Returns:
      (init_params, potential_fn, constrain_fn): unconstrained initial values (dict), the potential
      energy over unconstrained dicts, and the map back to constrained values (deterministic sites
      included).
    Example:
      >>> import jax
      >>> import npr.distributions as dist
      >>> from npr.handlers import sample
      >>> def model():
      ...     sample("sigma", dist.HalfNormal(1.0))
      >>> init_params, potential_fn, constrain_fn = initialize_model(jax.random.PRNGKey(0), model)
      >>> sorted(init_params), bool(constrain_fn(init_params)["sigma"] > 0)
      (['sigma'], True)
    """
    if not (isinstance(init_strategy, dict) or init_strategy in INIT_STRATEGIES):
        raise ValueError(f"init_strategy must be one of {INIT_STRATEGIES} or a dict of values, got {init_strategy!r}")
    rng = jnp.asarray(jax.random.key_data(rng)) if jnp.issubdtype(jnp.asarray(rng).dtype, jax.dtypes.prng_key) else rng
    key_trace, key_init = jax.random.split(rng)
    prototype = trace(seed(model, key_trace)).get_trace(*model_args, **model_kwargs)
    latents = _latent_sites(prototype)
    if not latents:
        raise ValueError("the model has no latent sample sites: there is nothing to infer")
    transforms = _transforms(latents)
    if isinstance(init_strategy, dict):
        _check_init_dict(init_strategy, latents, transforms)

    potential_fn = partial(_potential, model, model_args, tuple(sorted(model_kwargs.items())), transforms)
    constrain_fn = partial(_constrain, model, model_args, tuple(sorted(model_kwargs.items())), transforms)
    value_and_grad = jax.jit(jax.value_and_grad(potential_fn))
    params = None
    for attempt in range(max_tries):
        params = _initial_values(jax.random.fold_in(key_init, attempt), latents, transforms, init_strategy)
        value, grads = value_and_grad(params)
        finite = np.isfinite(float(value)) and all(np.all(np.isfinite(np.asarray(g))) for g in grads.values())
        if finite:
            return params, potential_fn, constrain_fn
        if isinstance(init_strategy, dict):
            break
    problems = _report_non_finite(model, model_args, model_kwargs, transforms, params, grads)
    tries = 1 if isinstance(init_strategy, dict) else max_tries
    raise RuntimeError(
        f"cannot find initial parameters with a finite log density and gradient after {tries} "
        f"attempt(s) with init_strategy={init_strategy if not isinstance(init_strategy, dict) else 'dict'}:\n  "
        + "\n  ".join(problems or ["the potential is not finite, but no single site is to blame"])
    )


def _potential(model, model_args, model_kwargs_items, transforms, params):
    return potential_energy(model, model_args, dict(model_kwargs_items), transforms, params)


def _constrain(model, model_args, model_kwargs_items, transforms, params):
    return constrain_with_deterministics(model, model_args, dict(model_kwargs_items), transforms, params)


class ModelPotential:
    """The potential of `model` over unconstrained dicts with the model's arguments as traced inputs.

    One object per model and site structure: compiled loops keyed on it are reused across runs with
    new data of the same shapes.
    """

    def __init__(self, model, transforms, static=((), ())):
        self.model = model
        self.transforms = transforms
        self.static = static
        self.value_and_grad = jax.jit(jax.value_and_grad(self.__call__))
        self.constrain = jax.jit(self._constrain)

    def _arguments(self, model_args, model_kwargs):
        return merge_static_arguments(model_args, model_kwargs, self.static)

    def __call__(self, params, model_args=(), model_kwargs=None):
        args, kwargs = self._arguments(model_args, model_kwargs)
        return potential_energy(self.model, args, kwargs, self.transforms, params)

    def _constrain(self, params, model_args=(), model_kwargs=None):
        args, kwargs = self._arguments(model_args, model_kwargs)
        return constrain_with_deterministics(self.model, args, kwargs, self.transforms, params)


def _is_static(value):
    return value is None or isinstance(value, (bool, int, float, str))


def split_static_arguments(model_args, model_kwargs):
    """Python scalars and strings (sizes, flags) stay static; arrays become traced inputs.

    Returns (dynamic_args, dynamic_kwargs, static) where static positions hold None in dynamic_args.
    """
    dynamic_args = tuple(None if _is_static(a) else a for a in model_args)
    dynamic_kwargs = {k: v for k, v in model_kwargs.items() if not _is_static(v)}
    static = (
        tuple((i, a) for i, a in enumerate(model_args) if _is_static(a)),
        tuple(sorted((k, v) for k, v in model_kwargs.items() if _is_static(v))),
    )
    return dynamic_args, dynamic_kwargs, static


def model_structure(rng, model, model_args, model_kwargs):
    """Trace the model once: its latent sites, their transforms, and a signature of both."""
    prototype = trace(seed(model, rng)).get_trace(*model_args, **model_kwargs)
    latents = _latent_sites(prototype)
    if not latents:
        raise ValueError("the model has no latent sample sites: there is nothing to infer")
    transforms = _transforms(latents)
    signature = tuple(
        (name, np.shape(site["value"]), str(jnp.result_type(site["value"])), repr(site["fn"].support))
        for name, site in latents.items()
    )
    return prototype, latents, transforms, signature


def search_initial_params(value_and_grad, propose, max_tries):
    """Traceable: `params = propose(attempt)` for attempts 0, 1, ... until `value_and_grad(params)`
    is finite or `max_tries` attempts are spent. Returns (params, value, grad, found)."""

    def attempt(i):
        params = propose(i)
        value, grad = value_and_grad(params)
        leaves = [value, *jax.tree_util.tree_leaves(grad)]
        return params, value, grad, jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves]))

    def unfinished(carry):
        tries, (*_, found) = carry
        return ~found & (tries < max_tries)

    # The first attempt runs in the loop too: one copy of the model's gradient to compile, not two.
    unset = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(attempt, 0))
    _, result = jax.lax.while_loop(unfinished, lambda c: (c[0] + 1, attempt(c[0])), (0, unset))
    return result


def check_init_strategy(init_strategy, latents, transforms):
    """A clear error for an unknown strategy or init values that do not fit the latent sites."""
    if isinstance(init_strategy, dict):
        _check_init_dict(init_strategy, latents, transforms)
    elif init_strategy not in INIT_STRATEGIES:
        raise ValueError(f"init_strategy must be one of {INIT_STRATEGIES} or a dict of values, got {init_strategy!r}")


def raise_not_found(potential, init_strategy, model_args, model_kwargs, params, grads, max_tries=100):
    """The error for a chain whose search for initial values failed, naming each site to blame."""
    tries = 1 if isinstance(init_strategy, dict) else max_tries
    full_args, full_kwargs = potential._arguments(model_args, model_kwargs)
    problems = _report_non_finite(potential.model, full_args, full_kwargs, potential.transforms, params, grads)
    raise RuntimeError(
        f"cannot find initial parameters with a finite log density and gradient after {tries} attempt(s):\n  "
        + "\n  ".join(problems or ["the potential is not finite, but no single site is to blame"])
    )


def merge_static_arguments(dynamic_args, dynamic_kwargs, static):
    """Inverse of `split_static_arguments`."""
    args = list(dynamic_args)
    for position, value in static[0]:
        args[position] = value
    return tuple(args), {**(dynamic_kwargs or {}), **dict(static[1])}
