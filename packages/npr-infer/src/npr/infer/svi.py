"""Stochastic variational inference: the seed's functional `svi()` and the `SVI` class.

Parameters live in unconstrained space (through `biject_to` of each `param` site's constraint);
`SVI.get_params` returns them constrained. Optimisers are optax `GradientTransformation`s or
`jax.example_libraries.optimizers` triples.
"""

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from npr.distributions import biject_to, constraints
from npr.handlers import seed, substitute, trace
from npr.infer import progress
from npr.infer.util import merge_static_arguments, split_static_arguments


def _param_sites(rng_key, model, guide, args, kwargs):
    key_guide, key_model = jax.random.split(rng_key)
    guide_trace = trace(seed(guide, key_guide)).get_trace(*args, **kwargs)
    model_trace = trace(seed(substitute(model, {n: s["value"] for n, s in guide_trace.items()}), key_model)).get_trace(
        *args, **kwargs
    )
    sites = {}
    for tr in (model_trace, guide_trace):
        for name, site in tr.items():
            if site["type"] == "param":
                sites[name] = site
    return sites


def _transforms_and_inits(sites):
    """Per-site bijections and unconstrained initial values; a param may hold a pytree (network weights)."""
    transforms, unconstrained = {}, {}
    for name, site in sites.items():
        constraint = site["kwargs"].get("constraint") or constraints.real
        transforms[name] = biject_to(constraint)
        unconstrained[name] = jax.tree_util.tree_map(lambda v, t=transforms[name]: t.inv(jnp.asarray(v)), site["value"])
    return transforms, unconstrained


def _constrain(transforms, params):
    return {name: jax.tree_util.tree_map(transforms[name], value) for name, value in params.items()}


class _Optimizer:
    """One interface over optax transformations and jax.example_libraries triples."""

    def __init__(self, optim):
        if hasattr(optim, "init") and hasattr(optim, "update"):
            self.kind = "optax"
            self.tx = optim
        elif isinstance(optim, tuple) and len(optim) == 3 and all(callable(f) for f in optim):
            self.kind = "triple"
            self.init_fn, self.update_fn, self.get_fn = optim
        else:
            raise ValueError(
                "optim must be an optax GradientTransformation or a jax.example_libraries.optimizers "
                f"(init, update, get_params) triple, got {type(optim).__name__}"
            )

    def init(self, params):
        if self.kind == "optax":
            return (params, self.tx.init(params))
        return self.init_fn(params)

    def update(self, step, grads, state):
        if self.kind == "optax":
            import optax

            params, opt_state = state
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state)
        return self.update_fn(step, grads, state)

    def params(self, state):
        return state[0] if self.kind == "optax" else self.get_fn(state)


class SVIState(NamedTuple):
    optim_state: Any
    step: Any
    rng_key: Any


class SVIRunResult(NamedTuple):
    params: dict
    state: SVIState
    losses: Any


class SVI:
    """Stochastic variational inference of `model` with `guide`.

    Args:
      model: the model.
      guide: a guide (a function with `param` and `sample` sites, or an autoguide).
      optim: optax GradientTransformation or a jax.example_libraries.optimizers triple.
      loss: an ELBO object (`Trace_ELBO()`, `TraceMeanField_ELBO()`, `RenyiELBO()`).
    Example:
      >>> import jax, optax
      >>> import npr.distributions as dist
      >>> from npr.handlers import param, sample
      >>> from npr.infer.elbo import Trace_ELBO
      >>> model = lambda: sample("z", dist.Normal(3.0, 1.0))
      >>> guide = lambda: sample("z", dist.Normal(param("m", 0.0), 1.0))
      >>> svi = SVI(model, guide, optax.adam(0.1), Trace_ELBO())
      >>> result = svi.run(jax.random.PRNGKey(0), 500, progress_bar=False)
      >>> round(float(result.params["m"]), 0)
      3.0
    """

    def __init__(self, model, guide, optim, loss, **static_kwargs):
        self.model, self.guide, self.loss = model, guide, loss
        self.optim = _Optimizer(optim)
        self.static_kwargs = static_kwargs
        self._transforms = None
        self._compiled = {}

    def init(self, rng_key, *args, init_params=None, **kwargs):
        """The initial state: parameters found by tracing the guide and model."""
        key_init, key_run = jax.random.split(rng_key)
        sites = _param_sites(key_init, self.model, self.guide, args, {**self.static_kwargs, **kwargs})
        self._transforms, unconstrained = _transforms_and_inits(sites)
        if init_params is not None:
            unconstrained.update(
                {
                    n: jax.tree_util.tree_map(lambda x, t=self._transforms[n]: t.inv(jnp.asarray(x)), v)
                    for n, v in init_params.items()
                }
            )
        return SVIState(self.optim.init(unconstrained), jnp.array(0), key_run)

    def _loss(self, unconstrained, key, args, kwargs):
        params = _constrain(self._transforms, unconstrained)
        return self.loss.loss(key, params, self.model, self.guide, *args, **{**self.static_kwargs, **kwargs})

    def _update(self, state, args, kwargs):
        key, key_loss = jax.random.split(state.rng_key)
        params = self.optim.params(state.optim_state)
        loss, grads = jax.value_and_grad(self._loss)(params, key_loss, args, kwargs)
        optim_state = self.optim.update(state.step, grads, state.optim_state)
        return SVIState(optim_state, state.step + 1, key), loss, grads

    def update(self, svi_state, *args, **kwargs):
        """One optimisation step: (new state, loss at the old parameters)."""
        new_state, loss, _ = self._update(svi_state, args, kwargs)
        return new_state, loss

    def stable_update(self, svi_state, *args, **kwargs):
        """Like `update`, but a non-finite loss or gradient leaves the parameters unchanged."""
        new_state, loss, grads = self._update(svi_state, args, kwargs)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        kept = jax.tree_util.tree_map(
            lambda a, b: jnp.where(finite, a, b), new_state.optim_state, svi_state.optim_state
        )
        return new_state._replace(optim_state=kept), loss

    def evaluate(self, svi_state, *args, **kwargs):
        """The loss at the current parameters (fresh randomness, no update)."""
        params = self.optim.params(svi_state.optim_state)
        return self._loss(params, jax.random.fold_in(svi_state.rng_key, 1), args, kwargs)

    def get_params(self, svi_state):
        """The current parameters, constrained."""
        return _constrain(self._transforms, self.optim.params(svi_state.optim_state))

    def _run_loop(self, carry, losses, start, stop, stable, args, kwargs):
        step_fn = self.stable_update if stable else self.update

        def body(i, carry):
            (state, last_good, failed, failed_at), losses = carry
            new_state, loss = step_fn(state, *args, **kwargs)
            bad = ~jnp.isfinite(loss)
            # The loss is evaluated at `state`: finite means `state` is good and the step may proceed.
            advance = ~failed & ~bad
            last_good = jax.tree_util.tree_map(lambda a, b: jnp.where(advance, a, b), state, last_good)
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(advance, a, b), new_state, state)
            failed_at = jnp.where(bad & ~failed, i, failed_at)
            losses = jax.lax.dynamic_update_index_in_dim(losses, loss, i, 0)
            return (state, last_good, failed | bad, failed_at), losses

        return jax.lax.fori_loop(start, stop, body, (carry, losses))

    def run(
        self,
        rng_key,
        num_steps,
        *args,
        progress_bar=True,
        stable_update=False,
        init_state=None,
        init_params=None,
        **kwargs,
    ):
        """Optimise for `num_steps` steps in one compiled loop (with a tqdm bar showing the loss, the
        loop runs in chunks and the bar moves between them).

        A non-finite loss stops the optimisation: the result keeps the last finite parameters and a
        warning names the step.
        """
        state = init_state if init_state is not None else self.init(rng_key, *args, init_params=init_params, **kwargs)
        structure = tuple(sorted((name, repr(t)) for name, t in self._transforms.items()))
        dynamic_args, dynamic_kwargs, static = split_static_arguments(args, kwargs)
        key = (bool(stable_update), structure, static)
        if key not in self._compiled:

            def loop(carry, losses, start, stop, a, kw, key=key):
                a, kw = merge_static_arguments(a, kw, key[2])
                return self._run_loop(carry, losses, start, stop, key[0], a, kw)

            self._compiled[key] = jax.jit(loop)
        compiled = self._compiled[key]
        num_steps = int(num_steps)
        init = ((state, state, jnp.array(False), jnp.array(-1)), jnp.zeros(num_steps, jnp.result_type(float)))

        def call(start, stop, carry):
            return compiled(*carry, jnp.int32(start), jnp.int32(stop), dynamic_args, dynamic_kwargs)

        if progress_bar:
            bar_id = progress.open_bar(num_steps, "svi")
            describe = lambda carry, stop: (carry[1][stop - 1], _loss_postfix, None)
            carry = progress.run_in_chunks(call, init, 0, num_steps, bar_id, describe)
            progress.close_bar(bar_id)
        else:
            carry = call(0, num_steps, init)
        (state, last_good, failed, failed_at), losses = carry
        if bool(failed):
            warnings.warn(
                f"SVI stopped: the loss became non-finite at step {int(failed_at)}; returning the last "
                "parameters with a finite loss",
                RuntimeWarning,
                stacklevel=2,
            )
            state = last_good
        return SVIRunResult(self.get_params(state), state, losses)


def _loss_postfix(loss):
    return f"loss {float(np.ravel(np.asarray(loss))[0]):.4g}"


def svi(model, guide, loss, optim_init, optim_update, get_params, **kwargs):
    """The seed's functional SVI: returns `(init_fn, update_fn, evaluate)`.

    `loss(param_map, model, guide, model_args, guide_args, kwargs)` is typically `elbo`. The optimiser
    triple is `jax.example_libraries.optimizers`'; parameters are optimised as given (unconstrained).

    Example:
      >>> import jax
      >>> from jax.example_libraries import optimizers
      >>> import npr.distributions as dist
      >>> from npr.handlers import param, sample
      >>> from npr.infer.elbo import elbo
      >>> model = lambda: sample("z", dist.Normal(3.0, 1.0))
      >>> guide = lambda: sample("z", dist.Normal(param("m", 0.0), 1.0))
      >>> opt_init, opt_update, get_params = optimizers.adam(0.1)
      >>> init_fn, update_fn, evaluate = svi(model, guide, elbo, opt_init, opt_update, get_params)
      >>> opt_state = init_fn(jax.random.PRNGKey(0))
      >>> rng = jax.random.PRNGKey(1)
      >>> for i in range(300):
      ...     loss, opt_state, rng = update_fn(i, opt_state, rng)
      >>> round(float(get_params(opt_state)["m"]), 0)
      3.0
    """

    def init_fn(rng, model_args=(), guide_args=(), params=None):
        if params is None:
            key_guide, key_model = jax.random.split(rng)
            guide_trace = trace(seed(guide, key_guide)).get_trace(*guide_args, **kwargs)
            model_trace = trace(seed(model, key_model)).get_trace(*model_args, **kwargs)
            params = {n: s["value"] for tr in (model_trace, guide_trace) for n, s in tr.items() if s["type"] == "param"}
        return optim_init(params)

    def loss_fn(params, rng, model_args, guide_args):
        try:
            return loss(params, model, guide, model_args, guide_args, kwargs, rng=rng)
        except TypeError:
            return loss(params, model, guide, model_args, guide_args, kwargs)

    @jax.jit
    def _step(i, opt_state, rng, model_args, guide_args):
        rng, key = jax.random.split(rng)
        value, grads = jax.value_and_grad(loss_fn)(get_params(opt_state), key, model_args, guide_args)
        return value, optim_update(i, grads, opt_state), rng

    def update_fn(i, opt_state, rng, model_args=(), guide_args=()):
        return _step(i, opt_state, rng, model_args, guide_args)

    def evaluate(opt_state, rng, model_args=(), guide_args=()):
        return loss_fn(get_params(opt_state), rng, model_args, guide_args)

    return init_fn, update_fn, evaluate
