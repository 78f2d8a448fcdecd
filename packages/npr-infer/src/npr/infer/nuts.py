"""One NUTS transition as a single compiled loop: iterative doubling, no Python recursion.

Multinomial sampling: within a subtree every new leaf replaces the subtree's proposal with
probability proportional to its weight exp(-H); between subtrees, the new subtree's proposal is
taken with probability min(1, W_new / W_old) (biased progressive sampling). The generalised
no-U-turn criterion is checked on every balanced sub-block through checkpoints indexed by the bits
of the leaf counter, and on the whole trajectory after each doubling; as in Stan, each check of
two merged halves also covers each half extended by the other's nearest leaf.

References:
  Hoffman, Gelman (2014). The No-U-Turn Sampler. JMLR.
  Betancourt (2017). A Conceptual Introduction to Hamiltonian Monte Carlo. arXiv:1701.02434.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from npr.infer.adaptation import one_step_accept_prob
from npr.infer.integrator import IntegratorState, kinetic_energy, leapfrog, velocity
from npr.infer.rng import uniform, words

# Streams of `words` under a subtree's key (leaves) and a trajectory's key (doublings, HMC).
_LEAF, _DOUBLING, _METROPOLIS = 3, 4, 5


class TransitionInfo(NamedTuple):
    state: IntegratorState
    energy: jax.Array
    num_steps: jax.Array
    accept_prob: jax.Array
    diverging: jax.Array
    tree_depth: jax.Array


class Subtree(NamedTuple):
    end: IntegratorState
    proposal: IntegratorState
    proposal_energy: jax.Array
    log_weight: jax.Array
    rho: jax.Array
    # Leaf n writes row popcount(n) of each (see `add_leaf`): its velocity and momentum, the
    # momentum sum before it, and the velocity and momentum of the leaf before it. Separate arrays:
    # XLA's CPU runtime hands work on buffers over 512 bytes to its thread pool, which costs more
    # than it saves on a leaf's small updates.
    checkpoints: tuple
    leaf: jax.Array
    turning: jax.Array
    diverging: jax.Array
    sum_accept_prob: jax.Array
    key: jax.Array


def _turned(v_left, v_right, rho):
    """The generalised no-U-turn criterion for a stretch with end velocities v_left, v_right and
    momentum sum rho (batched over leading axes)."""
    return ~((jnp.sum(v_left * rho, axis=-1) > 0) & (jnp.sum(v_right * rho, axis=-1) > 0))


def _write_row(array, row, index, in_place=False):
    """`array` with `row` at `index`: an in-place update where `in_place` or the array is over 1 KiB
    (100 dimensions: 30% faster leaves), else a select over the whole array (see
    `npr.infer.gradient_work.rows_in_place`)."""
    if in_place or array.size * array.dtype.itemsize > 1024:
        return lax.dynamic_update_index_in_dim(array, row, index, 0)
    return jnp.where((jnp.arange(array.shape[0]) == index)[:, None], row, array)


def _trailing_zeros(n):
    """Number of trailing zero bits of n > 0."""
    return lax.population_count((n & -n) - 1)


def init_subtree(start, energy0, key, max_tree_depth, checkpoints=None):
    """An empty subtree that will grow from `start` (its first leaf is one step away).

    `checkpoints` may be those of an earlier subtree: a leaf only reads rows that leaves of its own
    subtree wrote, so old contents never matter (and reusing them saves clearing them).
    """
    dim = start.x.shape[0]
    if checkpoints is None:
        checkpoints = (jnp.zeros((max_tree_depth + 1, dim), start.x.dtype),) * 5
    return Subtree(
        end=start,
        proposal=start,
        proposal_energy=energy0,
        log_weight=jnp.array(-jnp.inf, start.x.dtype),
        rho=jnp.zeros(dim, start.x.dtype),
        checkpoints=checkpoints,
        leaf=jnp.array(0),
        turning=jnp.array(False),
        diverging=jnp.array(False),
        sum_accept_prob=jnp.zeros((), start.x.dtype),
        key=key,
    )


def _block_turned(start_v, start_rho, half_v, half_p, half_rho, half_prev_v, half_prev_p, v_right, rho):
    """Whether the blocks starting at rows `start_*` (halves at rows `half_*`) and ending at the new
    leaf turned. Block = A + B, halves of 2^(k-1) leaves. As Stan, check the whole block and also A
    with B's first leaf and B with A's last leaf, which catch U-turns the whole-block check misses."""
    turned = _turned(start_v, v_right, rho - start_rho)
    turned |= _turned(start_v, half_v, half_rho + half_p - start_rho)
    turned |= _turned(half_prev_v, v_right, rho - half_rho + half_prev_p)
    return turned


def _closed_blocks_turned_one_by_one(checkpoints, v_right, rho, first, top):
    """`_block_turned` on rows first, ..., top - 1 (on average one), one row per loop iteration,
    stopping at the first U-turn."""

    def check_row(carry):
        i, _ = carry
        start_v, _, start_rho, _, _ = (c[i] for c in checkpoints)
        return i + 1, _block_turned(start_v, start_rho, *(c[i + 1] for c in checkpoints), v_right, rho)

    return lax.while_loop(lambda carry: (carry[0] < top) & ~carry[1], check_row, (first, jnp.array(False)))[1]


def add_leaf(
    potential_and_grad,
    inverse_mass_matrix,
    tree,
    step,
    energy0,
    max_tree_depth,
    max_delta_energy,
    rows_in_loop=False,
    rows_in_place=False,
):
    """One leapfrog step of signed size `step` from the subtree's end, and the subtree's bookkeeping:
    multinomial proposal, checkpoints, U-turns on the sub-blocks the new leaf closes, divergence.

    The U-turn checks read every checkpoint row at once and mask those of open blocks, or with
    `rows_in_loop` only the rows of the blocks the leaf closes, in a loop: cheaper where XLA compiles
    the trajectory's loops as one function, dearer where it dispatches each loop iteration (see
    `npr.infer.gradient_work.rows_in_loop`). Each leaf writes one checkpoint row, in place with
    `rows_in_place` (see `_write_row`).
    """
    dtype = tree.end.x.dtype
    new = leapfrog(potential_and_grad, inverse_mass_matrix, tree.end, step)
    energy = new.potential_energy + kinetic_energy(inverse_mass_matrix, new.r)
    delta = energy - energy0
    delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)  # NaN energies diverge like huge ones
    diverging = delta > max_delta_energy
    leaf_log_weight = -delta
    log_weight = jnp.logaddexp(tree.log_weight, leaf_log_weight)
    # Leaf n's draw comes from the subtree's key and n: no key is carried from leaf to leaf.
    u = uniform(words(tree.key, _LEAF, tree.leaf)[0], dtype)
    take = jnp.log(u) < leaf_log_weight - log_weight
    proposal = jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), new, tree.proposal)
    proposal_energy = jnp.where(take, energy, tree.proposal_energy)
    rho_before = tree.rho
    rho = rho_before + new.r
    # Leaf n closes the aligned blocks of 2^k leaves for 1 <= k <= T = trailing_ones(n). Writing each
    # leaf to row popcount(n) keeps every open block's first leaf: the block of level k starts at
    # row popcount(n) - k and its second half at the row after (for k = 1, leaf n itself); rows above
    # belong to closed blocks. One row per leaf is written.
    n = tree.leaf
    top = lax.population_count(n)
    v_right = velocity(inverse_mass_matrix, new.r)
    row = (v_right, new.r, rho_before, velocity(inverse_mass_matrix, tree.end.r), tree.end.r)
    checkpoints = tuple(_write_row(c, r, top, rows_in_place) for c, r in zip(tree.checkpoints, row))
    first = top - _trailing_zeros(n + 1)
    if rows_in_loop:
        turning = _closed_blocks_turned_one_by_one(checkpoints, v_right, rho, first, top)
    else:
        rows = jnp.arange(max_tree_depth)
        start_v, _, start_rho, _, _ = (c[:-1] for c in checkpoints)
        turned = _block_turned(start_v, start_rho, *(c[1:] for c in checkpoints), v_right, rho)
        turning = jnp.any((rows >= first) & (rows < top) & turned)
    accept_prob = one_step_accept_prob(energy0, energy)  # the step-size search's measure too
    return Subtree(
        end=new,
        proposal=proposal,
        proposal_energy=proposal_energy,
        log_weight=log_weight,
        rho=rho,
        checkpoints=checkpoints,
        leaf=n + 1,
        turning=turning,
        diverging=diverging,
        sum_accept_prob=tree.sum_accept_prob + accept_prob,
        key=tree.key,
    )


def subtree_done(tree, depth):
    """A subtree of a trajectory at `depth` is complete at 2^depth leaves, or stops at a U-turn or divergence."""
    return (tree.leaf >= 2**depth) | tree.turning | tree.diverging


class Trajectory(NamedTuple):
    left: IntegratorState
    right: IntegratorState
    proposal: IntegratorState
    proposal_energy: jax.Array
    log_weight: jax.Array
    rho: jax.Array
    depth: jax.Array
    num_steps: jax.Array
    sum_accept_prob: jax.Array
    turning: jax.Array
    diverging: jax.Array
    key: jax.Array


def init_trajectory(start, energy0, key):
    """The trajectory of a single point: `start` with its momentum already drawn."""
    return Trajectory(
        left=start,
        right=start,
        proposal=start,
        proposal_energy=energy0,
        log_weight=jnp.zeros((), start.x.dtype),
        rho=start.r,
        depth=jnp.array(0),
        num_steps=jnp.array(0),
        sum_accept_prob=jnp.zeros((), start.x.dtype),
        turning=jnp.array(False),
        diverging=jnp.array(False),
        key=key,
    )


class Doubling(NamedTuple):
    """What a doubling needs besides its subtree: its direction and the uniform of the merge."""

    forward: jax.Array
    direction: jax.Array
    merge_uniform: jax.Array


def start_doubling(traj, energy0, max_tree_depth, checkpoints=None, force_forward=None):
    """Choose the direction of the next doubling (forward where `force_forward` is True); return the
    trajectory (unchanged: its depth counts the doublings), the doubling and the empty subtree that
    grows from its edge in that direction (with `checkpoints` reused, see `init_subtree`)."""
    # One hash per doubling, counted by depth: the direction bit, the merge's uniform, the subtree key.
    w0, w1 = words(traj.key, _DOUBLING, 2 * traj.depth + jnp.arange(2))
    forward = (w0[0] & 1) == 1
    forward = forward if force_forward is None else forward | force_forward
    dtype = traj.left.x.dtype
    direction = jnp.where(forward, 1.0, -1.0).astype(dtype)
    edge = jax.tree_util.tree_map(lambda a, b: jnp.where(forward, a, b), traj.right, traj.left)
    subtree = init_subtree(edge, energy0, jnp.stack([w0[1], w1[1]]), max_tree_depth, checkpoints)
    return traj, Doubling(forward, direction, uniform(w1[0], dtype)), subtree


def merge_subtree(traj, doubling, subtree, inverse_mass_matrix, merging=None):
    """Join a finished subtree to the trajectory (biased progressive sampling between them).

    With a boolean `merging`, the trajectory is returned unchanged where it is False: the choices the
    merge makes anyway carry it, so no select over the whole trajectory is needed.
    """
    keep = lambda new, old: new if merging is None else jnp.where(merging, new, old)
    added = lambda value: value if merging is None else jnp.where(merging, value, jnp.zeros_like(value))
    forward = doubling.forward
    valid = ~subtree.turning & ~subtree.diverging
    valid = valid if merging is None else valid & merging
    keep_left = forward if merging is None else forward | ~merging
    take_right = forward if merging is None else forward & merging
    left = jax.tree_util.tree_map(lambda a, b: jnp.where(keep_left, a, b), traj.left, subtree.end)
    right = jax.tree_util.tree_map(lambda a, b: jnp.where(take_right, a, b), subtree.end, traj.right)
    log_u = jnp.log(doubling.merge_uniform)
    take = valid & (log_u < subtree.log_weight - traj.log_weight)
    proposal = jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), subtree.proposal, traj.proposal)
    rho = traj.rho + added(subtree.rho)
    vel = lambda r: velocity(inverse_mass_matrix, r)
    turned = _turned(vel(left.r), vel(right.r), rho)
    # Stan's extra checks: the old trajectory with the subtree's first leaf, and the subtree with
    # the old trajectory's edge leaf.
    far = jax.tree_util.tree_map(lambda a, b: jnp.where(forward, a, b), traj.left, traj.right)
    edge = jax.tree_util.tree_map(lambda a, b: jnp.where(forward, a, b), traj.right, traj.left)
    first_v, first_p = subtree.checkpoints[0][0], subtree.checkpoints[1][0]  # leaf 0: row 0
    turned |= _turned(vel(far.r), first_v, traj.rho + first_p)
    turned |= _turned(vel(edge.r), vel(subtree.end.r), subtree.rho + edge.r)
    turning = jnp.where(valid, turned, keep(subtree.turning, traj.turning))
    return Trajectory(
        left=left,
        right=right,
        proposal=proposal,
        proposal_energy=jnp.where(take, subtree.proposal_energy, traj.proposal_energy),
        log_weight=jnp.where(valid, jnp.logaddexp(traj.log_weight, subtree.log_weight), traj.log_weight),
        rho=rho,
        depth=traj.depth + (1 if merging is None else merging.astype(traj.depth.dtype)),
        num_steps=traj.num_steps + added(subtree.leaf),
        sum_accept_prob=traj.sum_accept_prob + added(subtree.sum_accept_prob),
        turning=turning,
        diverging=keep(subtree.diverging, traj.diverging),
        key=traj.key,
    )


def trajectory_done(traj, max_tree_depth):
    return (traj.depth >= max_tree_depth) | traj.turning | traj.diverging


def transition_info(traj):
    """The chosen state and the statistics of a finished trajectory."""
    return TransitionInfo(
        state=traj.proposal,
        energy=traj.proposal_energy,
        num_steps=traj.num_steps,
        accept_prob=traj.sum_accept_prob / jnp.maximum(traj.num_steps, 1),
        diverging=traj.diverging,
        tree_depth=traj.depth,
    )


def nuts_transition(
    potential_and_grad,
    inverse_mass_matrix,
    start,
    energy0,
    step_size,
    key,
    max_tree_depth=10,
    max_delta_energy=1000.0,
    rows_in_loop=False,
    rows_in_place=False,
    depth_limit=None,
    force_forward=None,
):
    """Build a NUTS trajectory from `start` (with momentum already drawn) and pick the next state.

    Args:
      potential_and_grad: flat x -> (potential energy, gradient).
      inverse_mass_matrix: vector (diagonal) or matrix (dense).
      start: the IntegratorState at the current point and fresh momentum.
      energy0: its Hamiltonian.
      step_size: leapfrog step size.
      key: raw key data (uint32[2]) for directions and multinomial choices (`npr.infer.rng.words`).
      max_tree_depth: at most 2^max_tree_depth - 1 leapfrog steps.
      max_delta_energy: an energy error above this is a divergence.
      rows_in_loop: how a leaf checks for U-turns (see `add_leaf`); the trajectory is the same.
      rows_in_place: how a leaf writes its checkpoint row (see `add_leaf`); the trajectory is the same.
      depth_limit: traced, at most `max_tree_depth`: doublings after which the trajectory stops.
      force_forward: traced boolean: where True, every doubling goes forward.
    Returns:
      TransitionInfo with the chosen state and the transition's statistics.
    """

    def double(traj):
        traj, doubling, subtree = start_doubling(traj, energy0, max_tree_depth, force_forward=force_forward)
        subtree = lax.while_loop(
            lambda tree: ~subtree_done(tree, traj.depth),
            lambda tree: add_leaf(
                potential_and_grad,
                inverse_mass_matrix,
                tree,
                doubling.direction * step_size,
                energy0,
                max_tree_depth,
                max_delta_energy,
                rows_in_loop,
                rows_in_place,
            ),
            subtree,
        )
        return merge_subtree(traj, doubling, subtree, inverse_mass_matrix)

    limit = max_tree_depth if depth_limit is None else depth_limit
    traj = lax.while_loop(lambda traj: ~trajectory_done(traj, limit), double, init_trajectory(start, energy0, key))
    return transition_info(traj)


def hmc_transition(
    potential_and_grad, inverse_mass_matrix, start, energy0, step_size, key, num_steps, max_delta_energy=1000.0
):
    """Static HMC: `num_steps` leapfrog steps, then a Metropolis correction (NaN energies reject)."""

    def step(_, state):
        return leapfrog(potential_and_grad, inverse_mass_matrix, state, step_size)

    end = lax.fori_loop(0, num_steps, step, start)
    energy = end.potential_energy + kinetic_energy(inverse_mass_matrix, end.r)
    delta = energy - energy0
    delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
    accept_prob = jnp.minimum(1.0, jnp.exp(-delta))
    accept = uniform(words(key, _METROPOLIS, 0)[0], start.x.dtype) < accept_prob
    state = jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), end, start)
    return TransitionInfo(
        state=state,
        energy=jnp.where(accept, energy, energy0),
        num_steps=jnp.asarray(num_steps),
        accept_prob=accept_prob,
        diverging=delta > max_delta_energy,
        tree_depth=jnp.array(0),
    )
