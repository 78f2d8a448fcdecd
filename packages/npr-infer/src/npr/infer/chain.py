"""Warmup and sampling of a chain as one compiled loop.

Every iteration runs the same transition; adaptation is applied under a traced "still warming up"
flag and draws are written into a preallocated buffer. The number of warmup and sampling
iterations, the adaptation windows and the thinning are traced inputs (a `Schedule` of fixed
shape), so one program serves a fresh run, a warmup-only run, a continued run, any warmup length,
and the progress bar on or off: the sampler's transition is compiled once per model, kernel
settings and number of kept draws.

The progress bar is fed between calls that each run a chunk of iterations (`progress.run_in_chunks`).
"""

import collections
import concurrent.futures
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from npr.infer import chain_groups, progress
from npr.infer.adaptation import found_step_size, record_try, search_finished, start_search, warmup_schedule
from npr.infer.gradient_work import compiler_options, glue_compilation, gradient_work
from npr.infer.hmc import (
    VectorPotential,
    adapt_step,
    sample_step,
    search_rng,
    searches_step_size,
    transition_or_search_try,
    with_searched_step_size,
)
from npr.infer.loop_data import prepared
from npr.infer.machine import machine_program

# Adaptation windows double in length, so 32 window ends cover any warmup that fits in memory.
MAX_WINDOWS = 32
# How often the chain program has been traced (compilation happens once per trace): tests read it.
TRACE_COUNTS = collections.Counter()


class Schedule(NamedTuple):
    """What a run does, as arrays of fixed shape (so changing it never recompiles).

    `num_warmup` adaptation iterations come first, then sampling; `num_iterations` in all, of which
    a call runs `[start, stop)`. Draws of iterations `collect_from, collect_from + 1, ...` are kept,
    the last of every `thinning`. `window_ends` lists the last iteration of each slow adaptation
    window (-1 padded); iterations in `[slow_start, slow_end)` feed the mass-matrix estimate. With
    `search_initial_step`, a reasonable step size is searched for before the first transition.
    """

    num_warmup: Any
    num_iterations: Any
    start: Any
    stop: Any
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
    num_iterations = num_warmup + num_draws * thinning
    return Schedule(
        num_warmup=np.int32(num_warmup),
        num_iterations=np.int32(num_iterations),
        start=np.int32(0),
        stop=np.int32(num_iterations),
        collect_from=np.int32(0 if collect_warmup else num_warmup),
        thinning=np.int32(1 if collect_warmup else thinning),
        slow_start=np.int32(slow[0] if slow.size else 0),
        slow_end=np.int32(slow[-1] + 1 if slow.size else 0),
        window_ends=ends,
        search_initial_step=np.bool_(search_initial_step and num_warmup > 0),
    )


def _adapt(state, t, schedule):
    """Stan's adaptation after warmup transition `t`."""
    in_slow = (t >= schedule.slow_start) & (t < schedule.slow_end)
    window_end = jnp.any(schedule.window_ends == t)
    return adapt_step(state, in_slow, window_end, t == schedule.num_warmup - 1)


def _keep(buffer, t, state, schedule, fields, unravel):
    """`buffer` with iteration `t`'s draw written to its slot (`unravel`: the sites of a flat point)."""
    if buffer is None:
        return None
    num_kept = jax.tree_util.tree_leaves(buffer)[0].shape[0]
    # Before collect_from the index is clipped to 0; that slot is overwritten by the first kept draw.
    index = jnp.clip((t - schedule.collect_from) // schedule.thinning, 0, num_kept - 1)
    kept = unravel(state.z), {name: getattr(state, name) for name in fields}
    return jax.tree_util.tree_map(lambda b, x: jax.lax.dynamic_update_index_in_dim(b, x, index, 0), buffer, kept)


def _count(t, schedule):
    # The mean acceptance probability is that of the current phase of this run.
    return jnp.where(t < schedule.num_warmup, t, t - schedule.num_warmup) + 1


def chain_program(potential, state, buffer, schedule, fields, potential_args):
    """Run one chain through iterations `[schedule.start, schedule.stop)`.

    Returns its last state and `buffer` (or None) with the kept draws written in: `z` and the
    state fields named in `fields`, along the leading axis.
    """
    TRACE_COUNTS["chain"] += 1
    potential, potential_args = prepared(potential, state.z, potential_args)
    # The loop carries the chain's point and gradient as one vector each: as a tree of sites they
    # cost a compiled kernel per site and iteration to split and as many to join again.
    potential = VectorPotential(potential, state.z)
    unravel = potential.unravel
    state = state._replace(z=ravel_pytree(state.z)[0], z_grad=ravel_pytree(state.z_grad)[0])
    if searches_step_size(state.settings):
        state, buffer = _searching_program(potential, state, buffer, schedule, fields, potential_args, unravel)
    else:

        def body(t, carry):
            state, buffer = carry
            state = sample_step(potential, state, potential_args, _count(t, schedule))
            state = jax.lax.cond(t < schedule.num_warmup, lambda s: _adapt(s, t, schedule), lambda s: s, state)
            return state, _keep(buffer, t, state, schedule, fields, unravel)

        state, buffer = jax.lax.fori_loop(schedule.start, schedule.stop, body, (state, buffer))
    return state._replace(z=unravel(state.z), z_grad=unravel(state.z_grad)), buffer


def _searching_program(potential, state, buffer, schedule, fields, potential_args, unravel):
    """`chain_program` with Stan's step-size searches before the first warmup transition and after
    each slow window. A search's tries run through the loop's own transition (one forward leapfrog
    step each, see `transition_or_search_try`), so the model's gradient is compiled once: a search
    loop of its own compiled it a second time (0.2-0.35 s more compilation on small models). The
    search's bookkeeping sits in the warmup branch, out of the sampling iterations' way."""

    def due(t, after):
        # A search comes before iteration t of warmup: the first, and the one after each slow window.
        first = (t == 0) & schedule.search_initial_step
        return (t < schedule.num_warmup) & (first | jnp.any(schedule.window_ends == after))

    def arm(state):
        return start_search(state.adapt_state.step_size, search_rng(state.rng))

    def body(carry):
        t, trying, search, state, buffer = carry
        new = transition_or_search_try(potential, state, search, trying, potential_args, _count(t, schedule))

        def after_try(old, new, search):
            # A try leaves the chain where it is (a search that ends restarts dual averaging from the
            # step size found).
            tried = record_try(search, new.step_size, new.accept_prob, new.rng)
            finished = search_finished(tried)
            kept = jax.lax.cond(finished, lambda: with_searched_step_size(old, found_step_size(tried)), lambda: old)
            return kept, tried, ~finished

        def after_transition(old, new, search):
            # A transition is adapted, and may call for a search before the next.
            adapted = _adapt(new, t, schedule)
            return adapted, arm(adapted), due(t + 1, t)

        def after_sampling(old, new, search):
            return new, search, jnp.array(False)

        # Branches rather than selects between their results: a select per field of the state cost
        # a compiled kernel each (logistic regression: 150 kernels in all, 128 with the branches).
        branch = jnp.where(t < schedule.num_warmup, jnp.where(trying, 0, 1), 2)
        state, search, searching = jax.lax.switch(
            branch, (after_try, after_transition, after_sampling), state, new, search
        )
        # A try rewrites iteration t's slot with the chain as it is; the transition overwrites it.
        buffer = _keep(buffer, t, state, schedule, fields, unravel)
        return t + jnp.where(trying, 0, 1), searching, search, state, buffer

    start = (schedule.start, due(schedule.start, schedule.start - 1), arm(state), state, buffer)
    out = jax.lax.while_loop(lambda carry: carry[0] < schedule.stop, body, start)
    return out[3], out[4]


def empty_buffer(state, num_kept, fields, num_chains=None):
    """Zeros to hold `num_kept` draws of `z` and `fields` (with a leading chain axis if `num_chains`)."""
    if num_kept == 0:
        return None
    return _zeros_for(state, num_kept, fields, num_chains)


def _zeros_for(state, num_kept, fields, num_chains):
    # On the host: as a compiled call it cost a fresh process a compilation (about 40 ms).
    kept = state.z, {name: getattr(state, name) for name in fields}
    lead = (num_kept,) if num_chains is None else (num_chains, num_kept)
    shape = lambda x: lead + np.shape(x)[0 if num_chains is None else 1 :]
    dtype = lambda x: x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    return jax.tree_util.tree_map(lambda x: np.zeros(shape(x), dtype(x)), kept)


def _vectorized_program(potential, states, buffers, schedule, fields, potential_args):
    return jax.vmap(lambda s, b: chain_program(potential, s, b, schedule, fields, potential_args))(states, buffers)


def _asynchronous_program(potential, states, buffers, schedule, fields, potential_args):
    TRACE_COUNTS["chain"] += 1
    return machine_program(potential, states, buffers, schedule, fields, potential_args)


def _one_stacked_program(potential, states, buffers, schedule, fields, potential_args):
    # One chain with its chain axis kept: indexing it out and stacking it back in inside the program
    # costs nothing, where separate calls cost a run about 0.3 ms and a first run two compilations.
    take = lambda tree: jax.tree_util.tree_map(lambda x: x[0], tree)
    out = chain_program(potential, take(states), take(buffers), schedule, fields, potential_args)
    return jax.tree_util.tree_map(lambda x: x[None], out)


_PROGRAMS = {
    "single": chain_program,
    "one": _one_stacked_program,
    # Vectorized chains in lockstep: every chain runs each whole transition.
    "vectorized": _vectorized_program,
    # Vectorized NUTS chains that each move on as soon as their own trajectory ends (npr.infer.machine).
    "asynchronous": _asynchronous_program,
}
_COMPILED = {}


def _compiled(kind, options):
    """The jitted program `kind` with XLA `options`: compiled once per model, kernel settings and shapes."""
    key = kind, tuple(sorted(options.items()))
    if key not in _COMPILED:
        extra = {"compiler_options": dict(options)} if options else {}
        _COMPILED[key] = jax.jit(_PROGRAMS[kind], static_argnums=(0, 4), **extra)
    return _COMPILED[key]


def _one_chain(z):
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), z)


# A step of the asynchronous program costs about 5 us more than a lockstep one (its per-chain event
# checks and selects), while lockstep chains waste the leapfrog steps of trajectories shorter than the
# longest: below about this many array elements computed per gradient, with no loop in it, the waste
# is the cheaper of the two. Eight schools (407 elements), 4 chains, 500 + 500: lockstep 110 ms,
# asynchronous 167 ms; kilpisjarvi (1,844 elements) and garch11 (a loop) are 1.2-1.3x faster asynchronous.
LOCKSTEP_MAX_ELEMENTS = 1000


def runs_in_lockstep(potential, states, potential_args=()):
    """Whether vectorized chains of `states` run whole transitions in lockstep (see LOCKSTEP_MAX_ELEMENTS)."""
    if states.settings.algo != "NUTS":
        return True
    work = gradient_work(potential, _one_chain(states.z), potential_args)
    return not work.loops and work.elements <= LOCKSTEP_MAX_ELEMENTS


_PARALLEL = {}


def _parallel_program(potential, fields):
    """One device per chain; cached so that later runs reuse the compiled program."""
    if (potential, fields) not in _PARALLEL:
        _PARALLEL[potential, fields] = jax.pmap(
            lambda s, b, schedule, args: chain_program(potential, s, b, schedule, fields, args),
            in_axes=(0, 0, None, None),
        )
    return _PARALLEL[potential, fields]


@functools.cache
def _glue(function):
    """`function` jitted for compilation speed: it only moves data between a run's programs."""
    return jax.jit(function, compiler_options=glue_compilation())


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _index(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def merge_chains(tree):
    """`merge_chain_axis` for use inside a traced function."""
    return jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)


def _split_chain_axis(tree, num_chains):
    return jax.tree_util.tree_map(lambda x: x.reshape((num_chains, -1) + x.shape[1:]), tree)


def merge_chain_axis(tree):
    """Leaves of shape (chain, draw, ...) reshaped to (chain * draw, ...), in one compiled call.

    Example:
      >>> merge_chain_axis({"x": jnp.zeros((2, 3, 4))})["x"].shape
      (6, 4)
    """
    return _glue(merge_chains)(tree)


def split_chain_axis(tree, num_chains):
    """Leaves of shape (chain * draw, ...) reshaped to (chain, draw, ...), in one compiled call.

    Example:
      >>> split_chain_axis({"x": jnp.zeros((6, 4))}, 2)["x"].shape
      (2, 3, 4)
    """
    return split_chain_axis_program(num_chains)(tree)


@functools.cache
def split_chain_axis_program(num_chains):
    """The jitted program of `split_chain_axis` for `num_chains` chains."""
    return jax.jit(functools.partial(_split_chain_axis, num_chains=num_chains), compiler_options=glue_compilation())


def tree_stack(trees):
    """Trees of the same structure stacked leaf by leaf along a new leading axis, in one compiled call.

    Example:
      >>> tree_stack([{"x": jnp.zeros(2)}, {"x": jnp.ones(2)}])["x"].shape
      (2, 2)
    """
    return _glue(_stack)(trees)


def tree_index(tree, i):
    """Entry `i` along the leading axis of every leaf, in one compiled call.

    Example:
      >>> float(tree_index({"x": jnp.arange(3.0)}, 1)["x"])
      1.0
    """
    return _glue(_index)(tree, i)


def _describe(schedule):
    """What a chain bar shows of a carry `(state, buffer)` at iteration `stop`."""

    def describe(carry, stop):
        return progress.hmc_progress(carry[0]), progress.hmc_postfix, stop > int(schedule.num_warmup)

    return describe


def _in_chunks(program, state, buffer, schedule, bar_id, speed_key=None, offset=0):
    """Call `program` on successive chunks of the schedule, moving bar `bar_id` (which counts
    iterations from `offset`) after each."""

    def call(start, stop, carry):
        return program(*carry, schedule._replace(start=np.int32(start), stop=np.int32(stop)))

    start, stop = int(schedule.start), int(schedule.stop)
    describe = _describe(schedule)
    return progress.run_in_chunks(call, (state, buffer), start, stop, bar_id, describe, speed_key, offset)


def run_chains(
    potential, states, schedule, num_kept, fields, method, progress_bar, potential_args=(), finish_later=None
):
    """Run stacked chain `states` (leading axis: chain) through `schedule`.

    `method` is 'sequential' (one compiled call per chain, one bar each), 'vectorized' (all chains
    in one program, one bar; in lockstep or asynchronous, see `runs_in_lockstep`) or 'parallel'
    (one device per chain).
    Returns the stacked last states and kept draws (chain, draw, ...), or None when `num_kept` is 0.
    Given a list `finish_later`, a bar whose run is one call is left to be completed by the functions
    appended to it, so that the caller can dispatch its own work on the results first (a run of a
    small model is then not followed by host work that it would otherwise have overlapped).
    """
    _await_compilations()
    num_chains = jax.tree_util.tree_leaves(states)[0].shape[0]
    total = int(schedule.num_iterations)
    show = bool(progress_bar) and total > 0
    fields = tuple(fields)

    def run(program, state, buffer, label, kind, queued=None):
        """`program` run through the schedule with a bar; `queued`: its result, already dispatched."""
        if not show:
            return program(state, buffer, schedule)
        open_bar = lambda short=False: progress.open_bar(
            total, label, phases=True, sampling=int(schedule.num_warmup) == 0, short=short
        )
        speed_key = (potential, fields, kind, num_chains)
        start, stop = int(schedule.start), int(schedule.stop)
        one_call = progress.expects_one_call(speed_key, start, stop)
        if queued is None and finish_later is not None and one_call:
            # Expected to take under `progress.UPDATE_SECONDS`: a bar drawn once, when completed (a
            # tqdm bar cost 0.6-1.2 ms on eight schools' 23 ms of 4 chains run by two threads).
            expected = progress.expected_seconds(speed_key, start, stop)
            bar_id = open_bar(short=True)
            out = program(state, buffer, schedule)

            finish_later.append(lambda: progress.complete_bar(bar_id, out, stop, _describe(schedule), expected))
            return out
        bar_id = open_bar()
        if queued is None:
            out = _in_chunks(program, state, buffer, schedule, bar_id, speed_key)
        else:
            out = progress.fill_bar(bar_id, queued, int(schedule.stop), _describe(schedule))
        # Only the fields the bar shows come to the host (the whole state took ~0.5 ms on a small model).
        progress.close_bar(bar_id, progress.hmc_progress(out[0]), progress.hmc_postfix)
        return out

    plan = _plan(potential, states, method, potential_args)
    compiled = _compiled(plan.kind, dict(plan.options)) if plan.kind != "parallel" else None
    if plan.kind == "one":
        program = lambda s, b, sched: compiled(potential, s, b, sched, fields, potential_args)
        return run(program, states, empty_buffer(states, num_kept, fields, num_chains), "1 chain", "one")
    if method == "sequential":
        program = lambda s, b, sched: compiled(potential, s, b, sched, fields, potential_args)
        chains = [tree_index(states, chain) for chain in range(num_chains)]
        buffers = [empty_buffer(state, num_kept, fields) for state in chains]
        labels = [f"chain {chain}" for chain in range(num_chains)]
        start, stop = int(schedule.start), int(schedule.stop)
        if show and progress.expects_one_call((potential, fields, "single", num_chains), start, stop):
            # Each chain is one call: queue them all, so that waiting for one chain's bar never keeps
            # the next chain from starting, then fill each bar as its chain finishes (in one step:
            # a chain's wait, which includes the chains before it, is no measure of its speed).
            queued = [program(state, buffer, schedule) for state, buffer in zip(chains, buffers)]
        else:
            queued = [None] * num_chains
        results = [run(program, *args, "single", out) for *args, out in zip(chains, buffers, labels, queued)]
        last = tree_stack([r[0] for r in results])
        return last, (tree_stack([r[1] for r in results]) if num_kept else None)
    if plan.kind == "parallel":
        parallel = _parallel_program(potential, fields)
        program = lambda s, b, sched: parallel(s, b, sched, potential_args)
    elif plan.groups > 1:
        key = plan.kind, plan.options, potential, fields, chain_groups.signature(potential_args)
        lower = lambda s, b, sched: compiled.lower(potential, s, b, sched, fields, potential_args)
        # On the device here: the groups' threads would convert host data with their own settings.
        device_args = jax.device_put(potential_args)
        call = lambda executable, s, b, sched: executable(s, b, sched, device_args)
        program = lambda s, b, sched: chain_groups.run_grouped(
            lower, call, plan.groups, key, s, b, sched, plan.one_chain
        )
    else:
        program = lambda s, b, sched: compiled(potential, s, b, sched, fields, potential_args)
    label = f"{num_chains} chain{'s' if num_chains > 1 else ''}"
    buffer = empty_buffer(states, num_kept, fields, num_chains)
    return run(program, states, buffer, label, plan.kind)


class _Plan(NamedTuple):
    """How `run_chains` runs chains: program `kind` compiled with XLA `options`, called on `groups`
    groups of chains at once by host threads (1: one call for all, or one per chain in turn when
    sequential), each group one chain without its chain axis with `one_chain`."""

    kind: str
    options: tuple
    groups: int = 1
    one_chain: bool = False


def _plan(potential, states, method, potential_args):
    num_chains = jax.tree_util.tree_leaves(states)[0].shape[0]
    work = gradient_work(potential, _one_chain(states.z), potential_args)
    options = tuple(sorted(compiler_options(work).items()))
    if num_chains == 1:
        return _Plan("one", options)
    if method in ("sequential", "parallel"):
        return _Plan("single" if method == "sequential" else "parallel", options)
    platform = jax.default_backend()
    if chain_groups.one_chain_per_call(num_chains, work.elements, platform):
        return _Plan("single", options, num_chains, True)
    kind = "vectorized" if runs_in_lockstep(potential, states, potential_args) else "asynchronous"
    return _Plan(kind, options, chain_groups.group_count(num_chains, work.elements, platform))


# Compilations started by `compile_ahead`, awaited by the next `run_chains`: one at a time, since
# XLA already spreads one compilation over the cores.
_AHEAD = []
_COMPILER = concurrent.futures.ThreadPoolExecutor(1, "npr-compile")
_STARTED = {}


def compile_ahead(potential, states, schedule, num_kept, fields, method, potential_args=()):
    """Start compiling the program that `run_chains` will run on chain states shaped as `states`
    (a tree of `jax.ShapeDtypeStruct`), so that XLA compiles it while the caller finds the states.

    The program is traced and lowered in the caller's thread (under its JAX settings) and compiled on
    a worker thread; `run_chains` waits for it, then finds it in JAX's caches. A fresh process, eight
    schools, 4 chains, 500 + 500 on a 2-core CPU: the initial-state search (0.34 s) then runs while
    the chain program compiles.

    Example:
      >>> from npr.infer.hmc import initial_state
      >>> potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
      >>> state = initial_state(potential, {"x": jnp.zeros(2)}, num_warmup=10)
      >>> states = jax.tree_util.tree_map(lambda x: x[None], state)  # one chain
      >>> shapes = jax.eval_shape(lambda: states)
      >>> schedule = make_schedule(10, 5)
      >>> compile_ahead(potential, shapes, schedule, 5, (), "vectorized")
      >>> last, (z, _) = run_chains(potential, states, schedule, 5, (), "vectorized", progress_bar=False)
      >>> z["x"].shape
      (1, 5, 2)
    """
    fields = tuple(fields)
    plan = _plan(potential, states, method, potential_args)
    signature = chain_groups.signature((states, potential_args))
    key = plan, potential, fields, num_kept, signature, chain_groups.thread_settings()
    if plan.kind == "parallel" or key in _STARTED:  # started before: JAX has it, or compiles it anew
        return
    if len(_STARTED) >= 256:  # the keys hold models' potentials: keep the latest
        del _STARTED[next(iter(_STARTED))]
    _STARTED[key] = True
    num_chains = jax.tree_util.tree_leaves(states)[0].shape[0]
    abstract = lambda lead, weak: jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(lead + x.shape[1:], x.dtype, weak_type=weak and x.weak_type), states
    )
    if plan.kind == "one" or (plan.groups == 1 and plan.kind != "single"):
        call_state, chains = states, num_chains
    elif plan.groups == 1:  # sequential: each chain indexed out on the device
        call_state, chains = abstract((), True), None
    else:  # groups split on the host (NumPy: no weak types)
        size = num_chains // plan.groups
        chains = None if plan.one_chain else size
        call_state = abstract(() if plan.one_chain else (size,), False)
    buffer = empty_buffer(call_state, num_kept, fields, chains)
    compiled = _compiled(plan.kind, dict(plan.options))
    lowered = compiled.trace(potential, call_state, buffer, schedule, fields, potential_args).lower()
    _AHEAD.append(_COMPILER.submit(lowered.compile))


_BACKGROUND = []


def compile_in_background(*lowered):
    """Compile `lowered` programs on the compilation worker without making the next run wait for them:
    programs a run calls after its chains (see `npr.infer.driver.MCMC`), compiled while they sample.
    Their caller awaits them (`await_background_compilations`) before calling them, so a run too
    short to hide them does not compile them a second time.

    Example:
      >>> lowered = jax.jit(lambda x: x + 1).trace(jnp.zeros(2)).lower()
      >>> compile_in_background(lowered)
      >>> await_background_compilations()
    """
    _BACKGROUND.extend(_COMPILER.submit(program.compile) for program in lowered)


def await_background_compilations():
    # A compilation that failed here fails again, with its error, where the program is called.
    concurrent.futures.wait(_BACKGROUND)
    _BACKGROUND.clear()


def _await_compilations():
    # A compilation that failed here fails again, with its error, where the program is called.
    concurrent.futures.wait(_AHEAD)
    _AHEAD.clear()


def warmup(potential_fn, state, num_warmup, progbar=True, desc="warmup"):
    """Run `num_warmup` adaptation iterations of one chain in the compiled chain program.

    A step size is searched for first when the kernel adapts it with the heuristic.
    """
    schedule = make_schedule(num_warmup, 0)
    single = _compiled("single", compiler_options(gradient_work(potential_fn, state.z)))
    program = lambda s, b, sched: single(potential_fn, s, b, sched, (), ())
    if not progbar:
        return program(state, None, schedule)[0]
    bar_id = progress.open_bar(num_warmup, desc)
    state, _ = _in_chunks(program, state, None, schedule, bar_id)
    progress.close_bar(bar_id, progress.hmc_progress(state), progress.hmc_postfix)
    return state


def warmup_and_sample(potential_fn, state, num_warmup, num_samples, progbar=True):
    """`num_warmup` adaptation iterations of one chain, then `num_samples` draws, in one compiled
    chain program (one compilation of the model's gradient), with a bar for each phase.

    Returns the last state and the draws of `z` (leading axis: draw).
    """
    schedule = make_schedule(num_warmup, num_samples)
    single = _compiled("single", compiler_options(gradient_work(potential_fn, state.z)))
    program = lambda s, b, sched: single(potential_fn, s, b, sched, (), ())
    carry = state, empty_buffer(state, num_samples, ())
    if not progbar:
        carry = program(*carry, schedule)
    else:
        for desc, start, stop in (("warmup", 0, num_warmup), ("sample", num_warmup, num_warmup + num_samples)):
            if stop == start:
                continue
            bar_id = progress.open_bar(stop - start, desc)
            phase = schedule._replace(start=np.int32(start), stop=np.int32(stop))
            carry = _in_chunks(program, *carry, phase, bar_id, offset=start)
            progress.close_bar(bar_id, progress.hmc_progress(carry[0]), progress.hmc_postfix)
    last, (z, _) = carry
    return last, z
