"""Warmup and sampling of a chain as one compiled loop.

Every iteration runs the same transition; adaptation is applied under a traced "still warming up"
flag and draws are written into a preallocated buffer. The number of warmup and sampling
iterations, the adaptation windows and the thinning are traced inputs (a `Schedule` of fixed
shape), so one program serves a fresh run, a warmup-only run, a continued run and any warmup
length: the sampler's transition is compiled once per model, kernel settings and number of kept
draws.
"""

import collections
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from npr.infer import progress
from npr.infer.adaptation import warmup_schedule
from npr.infer.hmc import adapt_step, sample_step, search_step_size, searches_step_size

# Adaptation windows double in length, so 32 window ends cover any warmup that fits in memory.
MAX_WINDOWS = 32
# How often the chain program has been traced (compilation happens once per trace): tests read it.
TRACE_COUNTS = collections.Counter()


class Schedule(NamedTuple):
    """What a run does, as arrays of fixed shape (so changing it never recompiles).

    `num_warmup` adaptation iterations come first, then sampling; `num_iterations` in all. Draws
    of iterations `collect_from, collect_from + 1, ...` are kept, the last of every `thinning`.
    `window_ends` lists the last iteration of each slow adaptation window (-1 padded); iterations
    in `[slow_start, slow_end)` feed the mass-matrix estimate. With `search_initial_step`, a
    reasonable step size is searched for before the first transition.
    """

    num_warmup: Any
    num_iterations: Any
    collect_from: Any
    thinning: Any
    slow_start: Any
    slow_end: Any
    window_ends: Any
    search_initial_step: Any


def make_schedule(num_warmup, num_draws, thinning=1, search_initial_step=True, collect_warmup=False):
    """The schedule of `num_warmup` warmup iterations followed by `num_draws` kept draws.

    Example:
      >>> schedule = make_schedule(1000, 500, thinning=2)
      >>> int(schedule.num_iterations), int(schedule.collect_from), int(schedule.slow_start)
      (2000, 1000, 75)
    """
    in_slow, window_end = warmup_schedule(num_warmup)
    slow = np.flatnonzero(in_slow)
    ends = np.full(MAX_WINDOWS, -1, np.int32)
    window_ends = np.flatnonzero(window_end)
    ends[: window_ends.size] = window_ends
    return Schedule(
        num_warmup=np.int32(num_warmup),
        num_iterations=np.int32(num_warmup + num_draws * thinning),
        collect_from=np.int32(0 if collect_warmup else num_warmup),
        thinning=np.int32(1 if collect_warmup else thinning),
        slow_start=np.int32(slow[0] if slow.size else 0),
        slow_end=np.int32(slow[-1] + 1 if slow.size else 0),
        window_ends=ends,
        search_initial_step=np.bool_(search_initial_step and num_warmup > 0),
    )


def _iteration(potential, state, t, schedule, potential_args):
    """Iteration `t`: the transition is traced once whatever the phase; adaptation sits under a cond."""
    adapting = t < schedule.num_warmup
    if searches_step_size(state.settings):
        # The search that follows a window runs before the next transition, so one copy of it
        # serves the initial search too.
        search = ((t == 0) & schedule.search_initial_step) | jnp.any(schedule.window_ends == t - 1)
        state = jax.lax.cond(
            adapting & search, lambda s: search_step_size(potential, s, potential_args), lambda s: s, state
        )
    # The mean acceptance probability is that of the current phase of this run.
    count = jnp.where(adapting, t, t - schedule.num_warmup) + 1
    state = sample_step(potential, state, potential_args, count)
    in_slow = (t >= schedule.slow_start) & (t < schedule.slow_end)
    window_end = jnp.any(schedule.window_ends == t)
    is_last = t == schedule.num_warmup - 1
    return jax.lax.cond(adapting, lambda s: adapt_step(s, in_slow, window_end, is_last), lambda s: s, state)


def chain_program(potential, state, schedule, num_kept, fields, show_progress, bar_id, potential_args):
    """Run one chain through `schedule`; return its last state and the kept draws.

    `num_kept` (static) sizes the buffer of draws: `z` and the state fields named in `fields`.
    """
    TRACE_COUNTS["chain"] += 1

    def keep(state):
        return state.z, {name: getattr(state, name) for name in fields}

    buffer = jax.tree_util.tree_map(lambda x: jnp.zeros((num_kept,) + jnp.shape(x), jnp.result_type(x)), keep(state))
    every = jnp.maximum(1, schedule.num_iterations // 20)

    def body(t, carry):
        state, buffer = carry
        state = _iteration(potential, state, t, schedule, potential_args)
        if show_progress:
            progress.report_phase(
                bar_id, t, schedule.num_warmup, schedule.num_iterations, every, progress.hmc_progress(state)
            )
        if buffer is None:
            return state, None
        # Before collect_from the index is clipped to 0; that slot is overwritten by the first kept draw.
        index = jnp.clip((t - schedule.collect_from) // schedule.thinning, 0, num_kept - 1)
        buffer = jax.tree_util.tree_map(
            lambda b, x: jax.lax.dynamic_update_index_in_dim(b, x, index, 0), buffer, keep(state)
        )
        return state, buffer

    if num_kept == 0:
        buffer = None
    return jax.lax.fori_loop(0, schedule.num_iterations, body, (state, buffer))


_single = jax.jit(chain_program, static_argnums=(0, 3, 4, 5))
_vectorized = jax.jit(
    lambda potential, states, schedule, num_kept, fields, show, bar_id, args: jax.vmap(
        lambda s: chain_program(potential, s, schedule, num_kept, fields, show, bar_id, args)
    )(states),
    static_argnums=(0, 3, 4, 5),
)


def _tree_stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _tree_index(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def run_chains(potential, states, schedule, num_kept, fields, method, progress_bar, desc, potential_args=()):
    """Run stacked chain `states` (leading axis: chain) through `schedule`.

    `method` is 'sequential' (one compiled call per chain, one bar each), 'vectorized' (all chains
    in one program, one bar) or 'parallel' (one device per chain).
    Returns the stacked last states and kept draws (chain, draw, ...), or None when `num_kept` is 0.
    """
    num_chains = jax.tree_util.tree_leaves(states)[0].shape[0]
    total = int(schedule.num_iterations)
    show = bool(progress_bar) and total > 0
    schedule = Schedule(*(jnp.asarray(x) for x in schedule))
    fields = tuple(fields)

    def finish(bar_id, out):
        if show:
            jax.block_until_ready(out)
            progress.close_bar(bar_id, out[0], progress.hmc_postfix)
        return out

    if method == "sequential":
        results = []
        for chain in range(num_chains):
            bar_id = progress.open_bar(total, f"chain {chain}", phases=True) if show else -1
            out = _single(
                potential, _tree_index(states, chain), schedule, num_kept, fields, show, bar_id, potential_args
            )
            results.append(finish(bar_id, out))
        last = _tree_stack([r[0] for r in results])
        return last, (_tree_stack([r[1] for r in results]) if num_kept else None)
    bar_id = progress.open_bar(total, f"{num_chains} chains", phases=True) if show else -1
    if method == "vectorized":
        out = _vectorized(potential, states, schedule, num_kept, fields, show, bar_id, potential_args)
    else:
        out = jax.pmap(lambda s: chain_program(potential, s, schedule, num_kept, fields, show, bar_id, potential_args))(
            states
        )
    return finish(bar_id, out)


def warmup(potential_fn, state, num_warmup, progbar=True, desc="warmup"):
    """Run `num_warmup` adaptation iterations of one chain in the compiled chain program.

    A step size is searched for first when the kernel adapts it with the heuristic.
    """
    schedule = Schedule(*(jnp.asarray(x) for x in make_schedule(num_warmup, 0)))
    bar_id = progress.open_bar(num_warmup, desc) if progbar else -1
    state, _ = _single(potential_fn, state, schedule, 0, (), bool(progbar), bar_id, ())
    if progbar:
        jax.block_until_ready(state)
        progress.close_bar(bar_id, state, progress.hmc_postfix)
    return state
