"""Vectorized NUTS chains that do not wait for each other.

Vectorizing whole NUTS transitions (`vmap` of a transition) runs every chain in lockstep: each
iteration lasts as long as the longest trajectory among the chains, and on models whose tree depth
varies the other chains idle for most of it (on kidiq, 4 chains did 3.7 times the useful leapfrog
steps). Here the loop's unit is one leapfrog step of every chain: a chain whose subtree or
trajectory ends merges it, finishes its transition (adaptation, kept draw) and starts the next one
while the others go on. The bookkeeping of those events runs under a `cond` taken only when some
chain needs it, so a step costs one vectorized leapfrog and a few comparisons.

Each chain follows exactly the algorithm, keys and schedule of `npr.infer.chain` (same draws up to
floating-point rounding).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from npr.infer.gradient_work import rows_in_place
from npr.infer.hmc import (
    adapt_step,
    flat_potential,
    search_step_size,
    searches_step_size,
    state_after,
    transition_keys,
)
from npr.infer.integrator import IntegratorState, draw_momentum, kinetic_energy
from npr.infer.loop_data import prepared
from npr.infer.nuts import (
    Doubling,
    Subtree,
    Trajectory,
    add_leaf,
    init_trajectory,
    merge_subtree,
    start_doubling,
    subtree_done,
    trajectory_done,
    transition_info,
)


class _Machine(NamedTuple):
    state: Any  # HMCState before the current transition (its key already advanced)
    traj: Trajectory
    doubling: Doubling
    subtree: Subtree
    energy0: Any
    t: Any  # the iteration of the current transition


def _where(mask, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(mask, a, b), new, old)


def _where_batched(mask, new, old):
    def pick(a, b):
        m = mask.reshape(mask.shape + (1,) * (jnp.ndim(a) - 1))
        return jnp.where(m, a, b)

    return jax.tree_util.tree_map(pick, new, old)


def machine_program(potential, states, buffers, schedule, fields, potential_args):
    """Run stacked chains (leading axis: chain) through iterations `[schedule.start, schedule.stop)`.

    Same inputs and outputs as the vmapped `chain_program`.
    """
    settings = states.settings
    one_z = jax.tree_util.tree_map(lambda x: x[0], states.z)
    potential, potential_args = prepared(potential, one_z, potential_args)
    _, unravel = ravel_pytree(one_z)
    potential_and_grad = flat_potential(potential, unravel, potential_args)
    in_place = not settings.dense_mass and rows_in_place(potential, one_z, potential_args)
    max_depth, max_delta = settings.max_tree_depth, settings.max_delta_energy
    stop = schedule.stop

    def adapting(t):
        return t < schedule.num_warmup

    def search_due(t):
        first = (t == 0) & schedule.search_initial_step
        after_window = jnp.any(schedule.window_ends == t[..., None] - 1, axis=-1)
        return adapting(t) & (first | after_window)

    def new_trajectory(state):
        x, _ = ravel_pytree(state.z)
        grad, _ = ravel_pytree(state.z_grad)
        key, key_momentum, key_transition = transition_keys(state.rng)
        adapt = state.adapt_state
        r = draw_momentum(key_momentum, adapt.mass_matrix_sqrt, x)
        energy0 = state.potential_energy + kinetic_energy(adapt.inverse_mass_matrix, r)
        traj = init_trajectory(IntegratorState(x, r, state.potential_energy, grad), energy0, key_transition)
        return state._replace(rng=key), traj, energy0

    def begin(state, t, checkpoints=None):
        state, traj, energy0 = new_trajectory(state)
        traj, doubling, subtree = start_doubling(traj, energy0, max_depth, checkpoints)
        return _Machine(state, traj, doubling, subtree, energy0, t)

    def leaf(m):
        adapt = m.state.adapt_state
        step = m.doubling.direction * adapt.step_size
        return add_leaf(
            potential_and_grad,
            adapt.inverse_mass_matrix,
            m.subtree,
            step,
            m.energy0,
            max_depth,
            max_delta,
            rows_in_place=in_place,
        )

    def merge(m, done_subtree):
        imm = m.state.adapt_state.inverse_mass_matrix
        return m._replace(traj=merge_subtree(m.traj, m.doubling, m.subtree, imm, merging=done_subtree))

    def next_doubling(m):
        traj, doubling, subtree = start_doubling(m.traj, m.energy0, max_depth, m.subtree.checkpoints)
        return m._replace(traj=traj, doubling=doubling, subtree=subtree)

    def finish(m):
        t = m.t
        count = jnp.where(adapting(t), t, t - schedule.num_warmup) + 1
        state = state_after(m.state, transition_info(m.traj), unravel, m.state.adapt_state.step_size, count)
        in_slow = (t >= schedule.slow_start) & (t < schedule.slow_end)
        window_end = jnp.any(schedule.window_ends == t)
        adapted = adapt_step(state, in_slow, window_end, t == schedule.num_warmup - 1)
        return m._replace(state=_where(adapting(t), adapted, state), t=t + 1)

    def keep(buffer, state, t, done):
        # Only the finishing chains' slots change: a select over whole buffers would cost O(draws).
        num_kept = jax.tree_util.tree_leaves(buffer)[0].shape[0]
        index = jnp.clip((t - schedule.collect_from) // schedule.thinning, 0, num_kept - 1)
        kept = state.z, {name: getattr(state, name) for name in fields}
        return jax.tree_util.tree_map(
            lambda b, x: jax.lax.dynamic_update_index_in_dim(b, jnp.where(done, x, b[index]), index, 0), buffer, kept
        )

    def finish_some(carry, done):
        m, buffers = carry
        finished = vmap(finish)(m)
        if buffers is not None:
            buffers = vmap(keep)(buffers, finished.state, m.t, done)
        return _where_batched(done, finished, m), buffers

    def search(state, rng):
        # `rng`: the key the chain's state had before its transition began (see `events`).
        searched = search_step_size(potential, state._replace(rng=rng), potential_args)
        return searched.adapt_state, searched.step_size

    def search_some(m, due, rng):
        # Only the step size and the adaptation state change: a select over the whole machine would
        # add a fusion per field to the program (logistic regression, 2 chains: 0.13 s of compilation).
        adapt, step_size = _where_batched(due, vmap(search)(m.state, rng), (m.state.adapt_state, m.state.step_size))
        return m._replace(state=m.state._replace(adapt_state=adapt, step_size=step_size))

    def without_checkpoints(subtree):
        return subtree._replace(checkpoints=None)

    def begin_some(m, again):
        # A new transition leaves the chain's state but its key as it is: select only what changes.
        # Its first doubling is started with those of continuing trajectories (see `events`).
        started, traj, energy0 = vmap(new_trajectory)(m.state)
        rng, traj, energy0 = _where_batched(again, (started.rng, traj, energy0), (m.state.rng, m.traj, m.energy0))
        return m._replace(state=m.state._replace(rng=rng), traj=traj, energy0=energy0)

    vmap = jax.vmap
    num_chains = jax.tree_util.tree_leaves(states)[0].shape[0]
    t0 = jnp.full((num_chains,), schedule.start)
    # A transition's start does not depend on the step size, so every chain begins at once; a chain
    # whose first transition needs a step-size search has it made in the loop's first `events`
    # (the search's one copy in the program, its gradient included, serves every search).
    machine = vmap(begin)(states, t0)
    pending = search_due(t0) if searches_step_size(settings) else jnp.zeros(num_chains, bool)

    def events(carry, done_subtree, pending):
        # Runs only when some chain's subtree ended or its first search is pending: merges, then
        # finishes and restarts transitions.
        m, buffers = carry
        m = vmap(merge)(m, done_subtree)
        done = done_subtree & vmap(lambda traj: trajectory_done(traj, max_depth))(m.traj)
        m, buffers = jax.lax.cond(jnp.any(done), finish_some, lambda c, _: c, (m, buffers), done)
        again = done & (m.t < stop)
        if searches_step_size(settings):
            # A chain that has just begun searches from the key its state had before beginning.
            rng = _where_batched(pending, states.rng, m.state.rng)
            due = (again & search_due(m.t)) | pending
            m = jax.lax.cond(jnp.any(due), search_some, lambda m, *_: m, m, due, rng)
        m = jax.lax.cond(jnp.any(again), begin_some, lambda m, _: m, m, again)
        # A doubling changes only the trajectory's key, the direction and the subtree (whose
        # checkpoint rows are rewritten before they are read): select just those.
        doubling = (done_subtree & ~done) | again
        doubled = vmap(next_doubling)(m)
        fresh = _where_batched(
            doubling,
            (doubled.traj.key, doubled.doubling, without_checkpoints(doubled.subtree)),
            (m.traj.key, m.doubling, without_checkpoints(m.subtree)),
        )
        subtree = fresh[2]._replace(checkpoints=m.subtree.checkpoints)
        return m._replace(traj=m.traj._replace(key=fresh[0]), doubling=fresh[1], subtree=subtree), buffers

    def body(carry):
        m, buffers, done_subtree, pending = carry
        m, buffers = jax.lax.cond(
            jnp.any(done_subtree | pending), events, lambda c, *_: c, (m, buffers), done_subtree, pending
        )
        # Chains already at `stop` step on unused: they trigger no event and their result is dropped.
        active = m.t < stop
        m = m._replace(subtree=vmap(leaf)(m))
        done_subtree = active & vmap(subtree_done)(m.subtree, m.traj.depth)
        return m, buffers, done_subtree, jnp.zeros_like(pending)

    def unfinished(carry):
        m, _, done_subtree, _ = carry
        return jnp.any(m.t < stop) | jnp.any(done_subtree)

    carry = machine, buffers, jnp.zeros(num_chains, bool), pending & (t0 < stop)
    machine, buffers, _, _ = jax.lax.while_loop(unfinished, body, carry)
    # Every chain began a transition on entry (drawing from its key): a call of no iterations must
    # leave the chains as they were.
    ran = schedule.start < stop
    return jax.tree_util.tree_map(lambda new, old: jnp.where(ran, new, old), machine.state, states), buffers
