"""From a model to a potential over unconstrained space: log densities, transforms, initialisation."""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from npr.distributions import biject_to, is_validation_enabled
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


def _from_unconstrained(params, log_dets=None):
    """A `substitute_fn`: each latent site named in `params` takes its unconstrained value mapped onto
    the support of the distribution the model gives that site in this very run, so supports that
    depend on other latents (`Uniform(0, a)` with `a` latent) or on data are followed. The log
    Jacobian of each map is appended to `log_dets`."""

    def substitute_fn(msg):
        if msg["type"] != "sample" or msg["name"] not in params:
            return None
        unconstrained = params[msg["name"]]
        transform = biject_to(msg["fn"].support)
        value = transform(unconstrained)
        if log_dets is not None:
            log_dets.append(jnp.sum(transform.log_abs_det_jacobian(unconstrained, value)))
        return value

    return substitute_fn


def potential_energy(model, model_args, model_kwargs, params):
    """Negative log joint over unconstrained `params`, Jacobians of the transforms included.

    Example:
      >>> import npr.distributions as dist
      >>> from npr.handlers import sample
      >>> def model():
      ...     a = sample("a", dist.Uniform(0.0, 1.0))
      ...     sample("b", dist.Uniform(0.0, a))
      >>> # a = 0.5, b = a * sigmoid(0) = 0.25: -(log 1 + log(1 / 0.5) + log(1/4) + log(0.5 / 4)) = log 16
      >>> round(float(potential_energy(model, (), {}, {"a": 0.0, "b": 0.0})), 4), round(float(np.log(16)), 4)
      (2.7726, 2.7726)
    """
    log_dets = []
    log_joint, _ = log_density(
        substitute(model, substitute_fn=_from_unconstrained(params, log_dets)), model_args, model_kwargs, {}
    )
    return -(log_joint + sum(log_dets))


def constrain_with_deterministics(model, model_args, model_kwargs, params):
    """Constrained values of the latent sites plus every deterministic site of the model."""
    substituted = substitute(seed(model, 0), substitute_fn=_from_unconstrained(params))
    model_trace = trace(substituted).get_trace(*model_args, **model_kwargs)
    out = {name: model_trace[name]["value"] for name in params}
    out.update({name: site["value"] for name, site in model_trace.items() if site["type"] == "deterministic"})
    return out


def _trace_at(model, model_args, model_kwargs, values):
    """The model's trace with its latent sites at the constrained `values`."""
    return trace(substitute(seed(model, 0), values)).get_trace(*model_args, **model_kwargs)


def unconstrain_values(model, model_args, model_kwargs, values):
    """Constrained `values` of the latent sites mapped to unconstrained space through the supports the
    model gives the sites at those values. Traceable."""
    model_trace = _trace_at(model, model_args, model_kwargs, values)
    return {name: biject_to(model_trace[name]["fn"].support).inv(jnp.asarray(v)) for name, v in values.items()}


def _initial_values(key, latents, transforms, init_strategy):
    """Unconstrained initial values of the `latents` sites (traced sites), drawn as `init_strategy`
    says; a dict gives the values, already unconstrained (see `unconstrain_values`)."""
    values = {}
    for index, (name, site) in enumerate(latents.items()):
        site_key = jax.random.fold_in(key, index)
        fn = site["fn"]
        if isinstance(init_strategy, dict):
            values[name] = jnp.asarray(init_strategy[name])
        elif init_strategy == "uniform":
            unconstrained_shape = transforms[name].inverse_shape(jnp.shape(site["value"]))
            values[name] = jax.random.uniform(site_key, unconstrained_shape, minval=-2.0, maxval=2.0)
        elif init_strategy == "prior":
            values[name] = biject_to(fn.support).inv(fn.sample(site_key))
        else:  # median of prior draws
            values[name] = biject_to(fn.support).inv(jnp.median(fn.sample(site_key, (15,)), axis=0))
    return values


def _check_init_dict(init_strategy, latents, model, model_args, model_kwargs):
    missing = sorted(set(latents) - set(init_strategy))
    extra = sorted(set(init_strategy) - set(latents))
    if missing or extra:
        raise ValueError(
            f"init values must name exactly the latent sites {sorted(latents)}; missing {missing}, unknown {extra}"
        )
    # Each value against the support its site has at these values (a support may depend on another latent).
    model_trace = _trace_at(model, model_args, model_kwargs, init_strategy)
    for name, value in init_strategy.items():
        support = model_trace[name]["fn"].support
        ok = np.asarray(support(jnp.asarray(value)))
        if not np.all(ok):
            raise ValueError(
                f"site '{name}': init value of shape {np.shape(value)} lies outside the support {support!r} "
                "(init values are constrained values)"
            )


def _report_non_finite(model, model_args, model_kwargs, params, grads):
    substituted = substitute(model, substitute_fn=_from_unconstrained(params))
    _, model_trace = log_density(substituted, model_args, model_kwargs, {})
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
    # Imported here: the driver is built on this module.
    from npr.infer.driver import initial_values

    rng = jax.random.key_data(rng) if jnp.issubdtype(jnp.asarray(rng).dtype, jax.dtypes.prng_key) else rng
    latents, _ = model_structure(rng, model, model_args, model_kwargs)
    if not latents:
        raise ValueError("the model has no latent sample sites: there is nothing to infer")
    dynamic_args, dynamic_kwargs, static = split_static_arguments(model_args, model_kwargs)
    potential = ModelPotential(model, latents, static)
    arguments = (dynamic_args, dynamic_kwargs)
    params = initial_values(rng, potential, latents, init_strategy, max_tries, arguments)
    potential_fn = partial(_potential_at, potential, arguments)
    constrain_fn = partial(_constrain, model, model_args, tuple(sorted(model_kwargs.items())))
    return params, potential_fn, constrain_fn


def _potential_at(potential, arguments, params):
    return potential(params, *arguments)


def _constrain(model, model_args, model_kwargs_items, params):
    return constrain_with_deterministics(model, model_args, dict(model_kwargs_items), params)


class ModelPotential:
    """The potential of `model` over unconstrained dicts with the model's arguments as traced inputs.

    One object per model and site structure: compiled loops keyed on it are reused across runs with
    new data of the same shapes.
    """

    def __init__(self, model, latents, static=((), ())):
        self.model = model
        self.latents = latents
        self.static = static
        self.value_and_grad = jax.jit(jax.value_and_grad(self.__call__))
        self.constrain = jax.jit(self._constrain)

    def _arguments(self, model_args, model_kwargs):
        return merge_static_arguments(model_args, model_kwargs, self.static)

    def __call__(self, params, model_args=(), model_kwargs=None):
        args, kwargs = self._arguments(model_args, model_kwargs)
        return potential_energy(self.model, args, kwargs, params)

    def _constrain(self, params, model_args=(), model_kwargs=None):
        args, kwargs = self._arguments(model_args, model_kwargs)
        return constrain_with_deterministics(self.model, args, kwargs, params)

    def unconstrain(self, values, model_args=(), model_kwargs=None):
        """Constrained values of all latent sites, unconstrained (`unconstrain_values`). Traceable."""
        args, kwargs = self._arguments(model_args, model_kwargs)
        return unconstrain_values(self.model, args, kwargs, values)

    def prior_draw(self, key, model_args=(), model_kwargs=None):
        """Constrained values of the latent sites in one joint draw from the prior. Traceable."""
        args, kwargs = self._arguments(model_args, model_kwargs)
        model_trace = trace(seed(self.model, key)).get_trace(*args, **kwargs)
        return {name: model_trace[name]["value"] for name in self.latents}


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


def _support_kind(support):
    """A constraint's class and those of the constraints it is built from, without their bounds."""
    parts = [type(support).__name__, getattr(support, "event_dim", 0)]
    parts += [_support_kind(v) for v in vars(support).values() if hasattr(v, "feasible_like")]
    return tuple(parts)


class SiteInfo(NamedTuple):
    """What the sampler needs to know of a latent site before it runs."""

    shape: tuple
    dtype: str
    unconstrained_shape: tuple
    support: tuple  # `_support_kind`


def _site_infos(model_trace):
    latents = _latent_sites(model_trace)
    transforms = _transforms(latents)
    return {
        name: SiteInfo(
            tuple(np.shape(site["value"])),
            str(jnp.result_type(site["value"])),
            tuple(transforms[name].inverse_shape(np.shape(site["value"]))),
            _support_kind(site["fn"].support),
        )
        for name, site in latents.items()
    }


def _has_non_finite_floats(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    arrays = [np.asarray(x) for x in leaves if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)]
    return any(not np.all(np.isfinite(a)) for a in arrays)


def model_structure(rng, model, model_args, model_kwargs):
    """Trace the model once: `(latents, signature)`, its latent sites' `SiteInfo` by name and a
    hashable summary of them.

    The trace is abstract (shapes only), so it runs none of the model's operations: run eagerly,
    each new operation compiled a program of its own (about 0.4 s of a small model's first run). It
    runs concretely where concrete values are checked: with distribution validation on, or where an
    argument holds a NaN or an infinity (observed data naming its site in the error).

    Example:
      >>> import npr.distributions as dist
      >>> from npr.handlers import sample
      >>> latents, _ = model_structure(jax.random.PRNGKey(0), lambda: sample("p", dist.Dirichlet(jnp.ones(3))), (), {})
      >>> latents["p"].shape, latents["p"].unconstrained_shape
      ((3,), (2,))
    """
    if is_validation_enabled() or _has_non_finite_floats((model_args, model_kwargs)):
        latents = _site_infos(trace(seed(model, rng)).get_trace(*model_args, **model_kwargs))
    else:
        dynamic_args, dynamic_kwargs, static = split_static_arguments(model_args, model_kwargs)
        latents = {}

        def abstract(rng, dynamic_args, dynamic_kwargs):
            args, kwargs = merge_static_arguments(dynamic_args, dynamic_kwargs, static)
            latents.update(_site_infos(trace(seed(model, rng)).get_trace(*args, **kwargs)))

        jax.eval_shape(abstract, rng, dynamic_args, dynamic_kwargs)
    if not latents:
        raise ValueError("the model has no latent sample sites: there is nothing to infer")
    signature = tuple((name, info.shape, info.dtype, info.support) for name, info in latents.items())
    return latents, signature


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


def check_init_strategy(init_strategy, latents, potential, model_args, model_kwargs):
    """A clear error for an unknown strategy or init values that do not fit the latent sites."""
    if isinstance(init_strategy, dict):
        args, kwargs = potential._arguments(model_args, model_kwargs)
        _check_init_dict(init_strategy, latents, potential.model, args, kwargs)
    elif init_strategy not in INIT_STRATEGIES:
        raise ValueError(f"init_strategy must be one of {INIT_STRATEGIES} or a dict of values, got {init_strategy!r}")


def raise_not_found(potential, init_strategy, model_args, model_kwargs, params, grads, max_tries=100):
    """The error for a chain whose search for initial values failed, naming each site to blame."""
    tries = 1 if isinstance(init_strategy, dict) else max_tries
    full_args, full_kwargs = potential._arguments(model_args, model_kwargs)
    problems = _report_non_finite(potential.model, full_args, full_kwargs, params, grads)
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
