"""Collecting draws in one compiled loop (`fori_collect`) and the seed's `mcmc()` driver."""

import functools

import jax
import jax.numpy as jnp

from npr.diagnostics import print_summary as print_diagnostics
from npr.infer import progress
from npr.infer.chain import warmup_and_sample
from npr.infer.hmc import hmc, initial_state


def _identity(x):
    return x


def _collect(body_fun, transform, val, buffer, start, stop):
    def step(i, carry):
        val, buffer = carry
        val = body_fun(val)
        buffer = jax.tree_util.tree_map(
            lambda b, x: jax.lax.dynamic_update_index_in_dim(b, x, i, 0), buffer, transform(val)
        )
        return val, buffer

    return jax.lax.fori_loop(start, stop, step, (val, buffer))


_compiled_collect = jax.jit(_collect, static_argnums=(0, 1))


def fori_collect(
    n,
    body_fun,
    init_val,
    transform=_identity,
    progbar=True,
    diagnostics_fn=None,
    progbar_desc="sample",
    return_last_val=False,
    **progbar_opts,
):
    """Apply `body_fun` `n` times from `init_val`, stacking `transform(val)` along a new leading axis.

    The loop is compiled once per (body_fun, transform), `n` and input shapes, the same program with
    the bar on or off: with a bar it runs in chunks of iterations and the bar moves between them.

    Args:
      n: number of iterations (>= 1).
      body_fun: val -> val, a JAX-traceable function.
      init_val: initial value (any pytree).
      transform: val -> what is collected.
      progbar: show a tqdm bar.
      diagnostics_fn: val -> postfix string of the bar (evaluated on the host).
      progbar_desc: the bar's label.
      return_last_val: also return the final value.
    Returns:
      The collected pytree (and the last value when `return_last_val`).
    Example:
      >>> import jax.numpy as jnp
      >>> fori_collect(3, lambda x: x + 1, jnp.zeros(()), progbar=False).tolist()
      [1.0, 2.0, 3.0]
    """
    if int(n) < 1:
        raise ValueError(f"fori_collect needs n >= 1 iterations, got {n}")
    n = int(n)
    shapes = jax.eval_shape(lambda val: transform(body_fun(val)), init_val)
    buffer = jax.tree_util.tree_map(lambda x: jnp.zeros((n,) + x.shape, x.dtype), shapes)

    def call(start, stop, carry):
        return _compiled_collect(body_fun, transform, *carry, jnp.int32(start), jnp.int32(stop))

    if progbar:
        desc = progbar_opts.pop("desc", progbar_desc)
        bar_id = progress.open_bar(n, desc)
        describe = lambda carry, stop: (carry[0] if diagnostics_fn else None, diagnostics_fn, None)
        last, collected = progress.run_in_chunks(call, (init_val, buffer), 0, n, bar_id, describe)
        progress.close_bar(bar_id, last if diagnostics_fn else None, diagnostics_fn)
    else:
        last, collected = call(0, n, (init_val, buffer))
    return (collected, last) if return_last_val else collected


@functools.lru_cache(maxsize=64)
def _mapped(function):
    """`function` applied to each draw (leading axis) in one compiled call."""
    return jax.jit(jax.vmap(function))


def _constrained_z(constrain_fn):
    return lambda state: constrain_fn(state.z)


def mcmc(num_warmup, num_samples, init_params, sampler="hmc", constrain_fn=None, print_summary=True, **sampler_kwargs):
    """The seed's driver: warmup and sampling with progress bars, then the summary table.

    Args:
      num_warmup: warmup (adaptation) iterations.
      num_samples: draws to keep.
      init_params: unconstrained initial values (as from `initialize_model`).
      sampler: 'hmc'.
      constrain_fn: unconstrained -> constrained values (identity when None).
      print_summary: print the diagnostics table.
      **sampler_kwargs: `potential_fn` (required), `algo` ('NUTS' or 'HMC'), `kinetic_fn`, and any
        `init_kernel` argument (step_size, dense_mass, target_accept_prob, max_tree_depth, rng, ...).
    Returns:
      dict of draws with a leading axis of length `num_samples`.
    Example:
      >>> import jax, jax.numpy as jnp
      >>> draws = mcmc(100, 100, {"x": jnp.zeros(())}, potential_fn=lambda z: 0.5 * z["x"] ** 2,
      ...              print_summary=False, progbar=False)
      >>> draws["x"].shape
      (100,)
    """
    if sampler != "hmc":
        raise ValueError(f"sampler must be 'hmc', got {sampler!r}")
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if "potential_fn" not in sampler_kwargs:
        raise ValueError("mcmc needs potential_fn= (for example from initialize_model)")
    potential_fn = sampler_kwargs.pop("potential_fn")
    kinetic_fn = sampler_kwargs.pop("kinetic_fn", None)
    algo = sampler_kwargs.pop("algo", "NUTS")
    progbar = sampler_kwargs.pop("progbar", True)
    constrain_fn = _identity if constrain_fn is None else constrain_fn
    init_kernel, sample_kernel = hmc(potential_fn, kinetic_fn, algo)
    if sampler_kwargs.pop("run_warmup", True) and int(num_warmup) > 0:
        # Warmup and sampling in one program: the model's gradient is compiled once.
        state = initial_state(potential_fn, init_params, num_warmup, algo, **sampler_kwargs)
        _, z = warmup_and_sample(potential_fn, state, int(num_warmup), int(num_samples), progbar=progbar)
        samples = _mapped(constrain_fn)(z)
    else:  # no warmup: the step size is searched for first, as `init_kernel` does
        state = init_kernel(init_params, num_warmup, progbar=progbar, run_warmup=False, **sampler_kwargs)
        samples = fori_collect(
            num_samples,
            sample_kernel,
            state,
            transform=_constrained_z(constrain_fn),
            progbar=progbar,
            diagnostics_fn=progress.hmc_postfix,
        )
    if print_summary:
        _print_summary(samples)
    return samples


def _print_summary(samples):
    print_diagnostics(jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], samples), prob=0.89)
