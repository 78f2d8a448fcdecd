"""Automatic guides built from a model's latent sites (in unconstrained space through `biject_to`)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core
from jax.flatten_util import ravel_pytree
from jax.scipy.special import ndtri

import npr.distributions as dist
from npr.distributions import constraints
from npr.handlers import block, param, sample, seed, substitute, trace
from npr.infer.util import (
    INIT_STRATEGIES,
    _initial_values,
    _latent_sites,
    _transforms,
    potential_energy,
    unconstrain_values,
)


def _support_arrays(support):
    """The arrays a constraint is built from (its bounds), those of the constraints inside it included."""
    arrays = []
    for value in vars(support).values():
        if hasattr(value, "feasible_like"):
            arrays += _support_arrays(value)
        elif isinstance(value, (jax.Array, np.ndarray)):
            arrays.append(value)
    return arrays


def _sites_with_dependent_support(model, args, kwargs, latents):
    """The latent sites whose support is computed from other latent sites' values (`Uniform(0, a)`
    with `a` latent), found by following the model's operations from the latent values to the bounds."""
    names = list(latents)

    def bounds(values):
        model_trace = trace(substitute(seed(model, 0), values)).get_trace(*args, **kwargs)
        return [_support_arrays(model_trace[name]["fn"].support) for name in names]

    values = {name: latents[name]["value"] for name in names}
    try:
        with block():
            closed, shapes = jax.make_jaxpr(bounds, return_shape=True)(values)
    except jax.errors.JAXTypeError:  # Python control flow on latent values: the model cannot be traced
        return []
    dependent = set(closed.jaxpr.invars)
    for eqn in closed.jaxpr.eqns:
        if any(isinstance(v, jax_core.Var) and v in dependent for v in eqn.invars):
            dependent.update(eqn.outvars)
    outputs = iter(closed.jaxpr.outvars)
    found = []
    for name, site_bounds in zip(names, shapes):
        if any(isinstance(v, jax_core.Var) and v in dependent for v in [next(outputs) for _ in site_bounds]):
            found.append(name)
    return found


def _check_fixed_supports(guide, model, args, kwargs, latents):
    """Autoguides map each site through the support of its first trace: a support that moves with
    other latents would give wrong draws and densities, so it is refused."""
    dependent = _sites_with_dependent_support(model, args, kwargs, latents)
    if dependent:
        name = dependent[0]
        raise ValueError(
            f"site '{name}': its support {latents[name]['fn'].support} depends on the values of other latent "
            f"sites, which {type(guide).__name__} cannot follow (it maps each site through one fixed support). "
            f"Sample a variable of fixed support and transform it instead (for Uniform(0, a): "
            f"{name} = a * sample('{name}_unit', Uniform(0, 1)) as a deterministic site), or use MCMC, which "
            "follows such supports"
        )


class AutoGuide:
    """Base class: traces the model on first call to learn its latent sites.

    Args:
      model: the model to approximate.
      prefix: prefix of the guide's parameter names.
      init_loc_fn: 'median', 'uniform', 'prior' (as `initialize_model`) or a dict of constrained values.
      init_scale: initial standard deviation in unconstrained space.
    """

    def __init__(self, model, prefix="auto", init_loc_fn="median", init_scale=0.1):
        if not (isinstance(init_loc_fn, dict) or init_loc_fn in INIT_STRATEGIES):
            raise ValueError(f"init_loc_fn must be one of {INIT_STRATEGIES} or a dict, got {init_loc_fn!r}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        self.model, self.prefix, self.init_loc_fn, self.init_scale = model, prefix, init_loc_fn, init_scale
        self._latents = None

    def _setup(self, args, kwargs):
        if self._latents is not None:
            return
        init = self.init_loc_fn
        with block():  # tracing the model here must not leak its sites into the guide's trace
            prototype = trace(seed(self.model, 0)).get_trace(*args, **kwargs)
            if isinstance(init, dict):
                init = unconstrain_values(self.model, args, kwargs, init)
        self._latents = _latent_sites(prototype)
        _check_fixed_supports(self, self.model, args, kwargs, self._latents)
        self._transforms = _transforms(self._latents)
        self._init_unconstrained = _initial_values(jax.random.PRNGKey(0), self._latents, self._transforms, init)
        flat, self._unravel = ravel_pytree(self._init_unconstrained)
        self._init_flat = flat

    def _name(self, suffix):
        return f"{self.prefix}_{suffix}"

    def __call__(self, *args, **kwargs):
        self._setup(args, kwargs)
        return self._guide(*args, **kwargs)

    def _constrained(self, unconstrained):
        return {name: self._transforms[name](value) for name, value in unconstrained.items()}

    def median(self, params):
        """Constrained values at the guide's location (its median for monotone transforms)."""
        return self._constrained(self._locations(params))

    def quantiles(self, params, quantiles):
        """Per-site quantiles, from the unconstrained normal marginals mapped through the transforms."""
        quantiles = jnp.asarray(quantiles)
        loc, scale = self._marginals(params)
        unconstrained = {
            name: loc[name] + scale[name] * ndtri(quantiles).reshape((-1,) + (1,) * jnp.ndim(loc[name])) for name in loc
        }
        return self._constrained(unconstrained)

    def sample_posterior(self, rng_key, params, sample_shape=()):
        """Draws of every latent site (constrained) from the fitted guide."""
        draw = lambda key: self._sample_unconstrained(key, params)
        keys = jax.random.split(rng_key, int(jnp.prod(jnp.array(sample_shape))) if sample_shape else 1)
        draws = jax.vmap(draw)(keys)
        draws = jax.vmap(self._constrained)(draws)
        shape = tuple(sample_shape)
        return jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]) if shape else x[0], draws)


class AutoNormal(AutoGuide):
    """Independent normals per latent site in unconstrained space (`{prefix}_{site}_loc/scale`).

    Example:
      >>> import npr.distributions as dist
      >>> from npr.handlers import sample
      >>> guide = AutoNormal(lambda: sample("x", dist.Gamma(2.0, 1.0)))
      >>> isinstance(guide, AutoGuide)
      True
    """

    def _guide(self, *args, **kwargs):
        values = {}
        for name, transform in self._transforms.items():
            init = self._init_unconstrained[name]
            loc = param(self._name(f"{name}_loc"), init)
            scale = param(
                self._name(f"{name}_scale"), jnp.full(jnp.shape(init), self.init_scale), constraint=constraints.positive
            )
            base = dist.Normal(loc, scale).to_event(jnp.ndim(init))
            values[name] = sample(name, dist.TransformedDistribution(base, [transform]))
        return values

    def _locations(self, params):
        return {name: params[self._name(f"{name}_loc")] for name in self._transforms}

    def _marginals(self, params):
        loc = self._locations(params)
        return loc, {name: params[self._name(f"{name}_scale")] for name in self._transforms}

    def _sample_unconstrained(self, key, params):
        loc, scale = self._marginals(params)
        keys = jax.random.split(key, len(loc))
        return {n: loc[n] + scale[n] * jax.random.normal(k, jnp.shape(loc[n])) for k, n in zip(keys, loc)}


class _AutoFlat(AutoGuide):
    """Guides over the flat vector of all unconstrained latents: each site is a Delta with the
    transform's log-Jacobian, so the guide's density is that of the constrained values."""

    def _flat_distribution(self, *args):
        raise NotImplementedError

    def _guide(self, *args, **kwargs):
        latent = sample(self._name("latent"), self._flat_distribution())
        unconstrained = self._unravel(latent)
        values = {}
        for name, transform in self._transforms.items():
            value = transform(unconstrained[name])
            log_det = transform.log_abs_det_jacobian(unconstrained[name], value)
            event_dim = jnp.ndim(value)
            values[name] = sample(name, dist.Delta(value, -jnp.sum(log_det), event_dim=event_dim))
        return values

    def _sample_unconstrained(self, key, params):

        distribution = substitute(self._flat_distribution, params)()
        return self._unravel(distribution.sample(key))

    def _locations(self, params):
        return self._unravel(params[self._name("loc")])

    def _marginals(self, params):

        distribution = substitute(self._flat_distribution, params)()
        return self._unravel(distribution.mean), self._unravel(jnp.sqrt(distribution.variance))


class AutoDiagonalNormal(_AutoFlat):
    """A diagonal normal over all unconstrained latents (`{prefix}_loc`, `{prefix}_scale`)."""

    def _flat_distribution(self):
        loc = param(self._name("loc"), self._init_flat)
        scale = param(
            self._name("scale"), jnp.full_like(self._init_flat, self.init_scale), constraint=constraints.positive
        )
        return dist.Normal(loc, scale).to_event(1)


class AutoMultivariateNormal(_AutoFlat):
    """A full-covariance normal over all unconstrained latents (`{prefix}_loc`, `{prefix}_scale_tril`)."""

    def _flat_distribution(self):
        loc = param(self._name("loc"), self._init_flat)
        scale_tril = param(
            self._name("scale_tril"),
            self.init_scale * jnp.eye(self._init_flat.shape[0]),
            constraint=constraints.lower_cholesky,
        )
        return dist.MultivariateNormal(loc, scale_tril=scale_tril)


class AutoLowRankMultivariateNormal(_AutoFlat):
    """A normal with covariance W W^T + diag(d) over all unconstrained latents."""

    def __init__(self, model, prefix="auto", init_loc_fn="median", init_scale=0.1, rank=None):
        super().__init__(model, prefix, init_loc_fn, init_scale)
        self.rank = rank

    def _flat_distribution(self):
        dim = self._init_flat.shape[0]
        rank = self.rank or max(1, int(round(dim**0.5)))
        loc = param(self._name("loc"), self._init_flat)
        factor = param(self._name("cov_factor"), jnp.zeros((dim, rank)))
        diag = param(self._name("cov_diag"), jnp.full((dim,), self.init_scale**2), constraint=constraints.positive)
        return dist.LowRankMultivariateNormal(loc, factor, diag)


class AutoDelta(AutoGuide):
    """Point estimates (MAP): a Delta at a constrained parameter per site (`{prefix}_{site}_loc`)."""

    def _guide(self, *args, **kwargs):
        values = {}
        for name, site in self._latents.items():
            init = self._transforms[name](self._init_unconstrained[name])
            value = param(self._name(f"{name}_loc"), init, constraint=site["fn"].support)
            values[name] = sample(name, dist.Delta(value, event_dim=len(site["fn"].event_shape)))
        return values

    def median(self, params):
        return {name: params[self._name(f"{name}_loc")] for name in self._latents}

    def _locations(self, params):
        return {name: self._transforms[name].inv(v) for name, v in self.median(params).items()}

    def _marginals(self, params):
        loc = self._locations(params)
        return loc, {name: jnp.zeros_like(v) for name, v in loc.items()}

    def _sample_unconstrained(self, key, params):
        return self._locations(params)


class AutoLaplaceApproximation(AutoDelta):
    """MAP in unconstrained space, then a normal with the inverse Hessian of the potential there.

    `get_posterior(params, *args)` returns that normal (over the flat unconstrained vector).
    """

    def get_posterior(self, params, *args, **kwargs):
        loc = self._locations(params)
        flat, unravel = ravel_pytree(loc)
        potential = lambda x: potential_energy(self.model, args, kwargs, unravel(x))
        hessian = jax.hessian(potential)(flat)
        return dist.MultivariateNormal(flat, precision_matrix=hessian), unravel

    def sample_posterior(self, rng_key, params, sample_shape=(), *args, **kwargs):
        posterior, unravel = self.get_posterior(params, *args, **kwargs)
        draws = posterior.sample(rng_key, tuple(sample_shape))
        flat_draws = draws.reshape((-1, draws.shape[-1]))
        constrained = jax.vmap(lambda x: self._constrained(unravel(x)))(flat_draws)
        return jax.tree_util.tree_map(lambda x: x.reshape(tuple(sample_shape) + x.shape[1:]), constrained)

    def quantiles(self, params, quantiles, *args, **kwargs):
        posterior, unravel = self.get_posterior(params, *args, **kwargs)
        sd = jnp.sqrt(posterior.variance)
        q = jnp.asarray(quantiles)[:, None]
        return jax.vmap(lambda x: self._constrained(unravel(x)))(posterior.loc + sd * ndtri(q))
