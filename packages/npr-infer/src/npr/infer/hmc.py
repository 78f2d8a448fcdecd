"""The functional core of HMC and NUTS: `hmc()` returns `(init_kernel, sample_kernel)`.

The kernel state is an immutable `HMCState` pytree. Settings fixed at `init_kernel` time travel in
the state as a static `KernelSettings` (part of the pytree structure, not a leaf), so
`sample_kernel(state)` needs nothing else and compiled loops are cached per settings.
"""

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from npr.infer.adaptation import (
    AdaptState,
    dual_averaging_update,
    find_reasonable_step_size,
    init_adapt_state,
    next_try,
    reset_welford,
    restart_dual_averaging,
    welford_estimate,
    welford_update,
)
from npr.infer.gradient_work import rows_in_loop, rows_in_place
from npr.infer.integrator import IntegratorState, draw_momentum, kinetic_energy, mass_matrix_sqrt
from npr.infer.nuts import hmc_transition, nuts_transition
from npr.infer.rng import STRAIGHT_THREEFRY


@dataclass(frozen=True)
class KernelSettings:
    """Static settings of a kernel (hashable; carried in the state's pytree structure)."""

    algo: str = "NUTS"
    max_tree_depth: int = 10
    target_accept_prob: float = 0.8
    trajectory_length: float = 2 * math.pi
    adapt_step_size: bool = True
    adapt_mass_matrix: bool = True
    dense_mass: bool = False
    heuristic_step_size: bool = True
    max_delta_energy: float = 1000.0
    max_num_steps: int = 1024

    @classmethod
    def checked(
        cls,
        algo="NUTS",
        max_tree_depth=10,
        target_accept_prob=0.8,
        trajectory_length=2 * math.pi,
        adapt_step_size=True,
        adapt_mass_matrix=True,
        dense_mass=False,
        heuristic_step_size=True,
        step_size=1.0,
        num_warmup=0,
    ):
        """Validated settings (clear errors for bad values), coerced to hashable Python scalars."""
        check_settings(num_warmup, step_size, target_accept_prob, max_tree_depth, trajectory_length, algo)
        return cls(
            algo=algo,
            max_tree_depth=int(max_tree_depth),
            target_accept_prob=float(target_accept_prob),
            trajectory_length=float(trajectory_length),
            adapt_step_size=bool(adapt_step_size),
            adapt_mass_matrix=bool(adapt_mass_matrix),
            dense_mass=bool(dense_mass),
            heuristic_step_size=bool(heuristic_step_size),
        )


jax.tree_util.register_pytree_node(KernelSettings, lambda s: ((), s), lambda s, _: s)


class HMCState(NamedTuple):
    """State of an HMC/NUTS chain (a pytree of arrays; `settings` is static).

    `i` counts transitions; `z` and `z_grad` are unconstrained values and the potential's gradient;
    `energy` is the Hamiltonian of the chosen point; `rng` holds raw uint32 key data.
    """

    i: Any
    z: Any
    z_grad: Any
    potential_energy: Any
    energy: Any
    num_steps: Any
    accept_prob: Any
    mean_accept_prob: Any
    diverging: Any
    tree_depth: Any
    step_size: Any
    inverse_mass_matrix: Any
    adapt_state: AdaptState
    rng: Any
    settings: KernelSettings


def key_data(key):
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def transition_keys(rng):
    """The chain's next key data, the momentum key and the trajectory's raw key data of one transition.

    The chain's key is stored as raw key data; a transition's keys come from the loop-free hash of
    `npr.infer.rng`, which takes two-word key data as JAX's default PRNG stores it (other default
    PRNGs advance their own key and hand it two fresh words).
    """
    if rng.shape == (2,) and rng.dtype == jnp.uint32:
        key, key_momentum, key_transition = jax.random.split(jax.random.wrap_key_data(rng, impl=STRAIGHT_THREEFRY), 3)
        return jax.random.key_data(key), key_momentum, jax.random.key_data(key_transition)
    rng, key_local = jax.random.split(rng)
    local = jax.random.wrap_key_data(jax.random.bits(key_local, (2,), jnp.uint32), impl=STRAIGHT_THREEFRY)
    key_momentum, key_transition = jax.random.split(local)
    return rng, key_momentum, jax.random.key_data(key_transition)


def _search_key(rng):
    """The step-size search's key: of the loop-free hash where the chain's key allows (as in
    `transition_keys`), so that the search, like the transitions, runs no five-iteration threefry
    loop (see `npr.infer.rng`)."""
    if rng.shape == (2,) and rng.dtype == jnp.uint32:
        return jax.random.fold_in(jax.random.wrap_key_data(rng, impl=STRAIGHT_THREEFRY), 2)
    return jax.random.fold_in(rng, 2)


class VectorPotential:
    """`potential` as a function of the flat vector of its sites, shaped as `z`'s: the chain programs'
    loops carry a chain's point and gradient as one vector each (see `npr.infer.chain.chain_program`).

    Example:
      >>> potential = VectorPotential(lambda z: jnp.sum(z["a"]) + z["b"], {"a": jnp.zeros(2), "b": jnp.zeros(())})
      >>> float(potential(jnp.array([1.0, 2.0, 3.0]))), potential.unravel(jnp.arange(3.0))["a"].tolist()
      (6.0, [0.0, 1.0])
    """

    def __init__(self, potential, z):
        self.potential = potential
        _, self.unravel = ravel_pytree(z)

    def __call__(self, x, *args):
        return self.potential(self.unravel(x), *args)

    def on_sites(self, x):
        """The potential of the sites and the sites of the vector `x` (read by `gradient_work`)."""
        return self.potential, self.unravel(x)


def flat_potential(potential_fn, unravel, potential_args=()):
    """Flat x -> (potential, gradient); `potential_args` are traced extra inputs (model data)."""
    return lambda x: jax.value_and_grad(lambda y: potential_fn(unravel(y), *potential_args))(x)


def _transition(potential_fn, state, step_size, adapt_state, potential_args=(), count=None, trying=None, rng=None):
    """One transition of size `step_size`; with a traced `trying`, where it is True, one forward
    leapfrog step instead, with the momentum of key data `rng`: a `StepSizeSearch` try, whose
    acceptance probability and next key data are the returned state's `accept_prob` and `rng`
    (`transition_or_search_try`). The chain's loop then compiles the model's gradient once."""
    settings = state.settings
    x, unravel = ravel_pytree(state.z)
    grad, _ = ravel_pytree(state.z_grad)
    potential_and_grad = flat_potential(potential_fn, unravel, potential_args)
    source = state.rng if trying is None else jnp.where(trying, rng, state.rng)
    key, key_momentum, key_transition = transition_keys(source)
    imm = adapt_state.inverse_mass_matrix
    r = draw_momentum(key_momentum, adapt_state.mass_matrix_sqrt, x)
    start = IntegratorState(x, r, state.potential_energy, grad)
    energy0 = state.potential_energy + kinetic_energy(imm, r)
    if settings.algo == "NUTS":
        info = nuts_transition(
            potential_and_grad,
            imm,
            start,
            energy0,
            step_size,
            key_transition,
            settings.max_tree_depth,
            settings.max_delta_energy,
            not settings.dense_mass and rows_in_loop(potential_fn, state.z, potential_args),
            not settings.dense_mass and rows_in_place(potential_fn, state.z, potential_args),
            depth_limit=None if trying is None else jnp.where(trying, 1, settings.max_tree_depth),
            force_forward=trying,
        )
    else:
        num_steps = jnp.clip(jnp.ceil(settings.trajectory_length / step_size), 1, settings.max_num_steps).astype(int)
        num_steps = num_steps if trying is None else jnp.where(trying, 1, num_steps)
        info = hmc_transition(
            potential_and_grad, imm, start, energy0, step_size, key_transition, num_steps, settings.max_delta_energy
        )
    return state_after(state._replace(rng=key), info, unravel, step_size, count)


def state_after(state, info, unravel, step_size, count=None):
    """The chain's state once a transition (`TransitionInfo`) from `state` has ended.

    `mean_accept_prob` averages over the last `count` transitions (default: all, `state.i + 1`).
    """
    count = state.i + 1 if count is None else count
    mean_accept = state.mean_accept_prob + (info.accept_prob - state.mean_accept_prob) / count
    return state._replace(
        i=state.i + 1,
        z=unravel(info.state.x),
        z_grad=unravel(info.state.grad),
        potential_energy=info.state.potential_energy,
        energy=info.energy,
        num_steps=info.num_steps,
        accept_prob=info.accept_prob,
        mean_accept_prob=mean_accept,
        diverging=info.diverging,
        tree_depth=info.tree_depth,
        step_size=step_size,
    )


def sample_step(potential_fn, state, potential_args=(), count=None):
    """One transition with the step size and mass matrix held fixed.

    `mean_accept_prob` averages over the last `count` transitions (default: all, `state.i + 1`).
    """
    return _transition(potential_fn, state, state.adapt_state.step_size, state.adapt_state, potential_args, count)


def search_step_size(potential_fn, state, potential_args=()):
    """Stan's heuristic: a step size whose single leapfrog step is accepted with probability ~0.8,
    searched at the current point; dual averaging restarts from it."""
    x, unravel = ravel_pytree(state.z)
    grad, _ = ravel_pytree(state.z_grad)
    adapt = state.adapt_state
    step_size = find_reasonable_step_size(
        flat_potential(potential_fn, unravel, potential_args),
        adapt.inverse_mass_matrix,
        adapt.mass_matrix_sqrt,
        x,
        state.potential_energy,
        grad,
        search_rng(state.rng),
        adapt.step_size,
        momentum_key=lambda rng: transition_keys(rng)[:2],
    )
    return with_searched_step_size(state, step_size)


def transition_or_search_try(potential_fn, state, search, trying, potential_args=(), count=None):
    """`sample_step` where the traced `trying` is False, else a try of the step-size `search` at the
    chain's point, through the same compiled transition (see `_transition`): the returned state's
    `step_size`, `accept_prob` and `rng` are then the try's (`adaptation.record_try`)."""
    step_size = jnp.where(trying, next_try(search), state.adapt_state.step_size)
    return _transition(potential_fn, state, step_size, state.adapt_state, potential_args, count, trying, search.rng)


def search_rng(rng):
    """The key data a step-size search at a chain of key data `rng` draws its momenta from (as a
    transition's, through `transition_keys`)."""
    return key_data(_search_key(rng))


def with_searched_step_size(state, step_size):
    """`state` with the step size a search found: dual averaging restarts from it."""
    return state._replace(adapt_state=restart_dual_averaging(state.adapt_state, step_size), step_size=step_size)


def adapt_step(state, in_slow, window_end, is_last):
    """Stan's adaptation updates after a warmup transition (all decisions are traced booleans).

    At the end of a slow window the mass matrix is re-estimated; with `heuristic_step_size` the
    step-size search that follows runs before the next transition (in the chain program's loop, see
    `npr.infer.chain.chain_program`; in the asynchronous program, `npr.infer.machine`; here, `warmup_step`'s
    `search_first`).
    """
    adapt = state.adapt_state
    settings = state.settings
    if settings.adapt_step_size:
        adapt = dual_averaging_update(adapt, state.accept_prob, settings.target_accept_prob)
    if settings.adapt_mass_matrix:
        x, _ = ravel_pytree(state.z)
        adapt = jax.lax.cond(in_slow, lambda a: welford_update(a, x), lambda a: a, adapt)

        def end_window(a):
            imm = welford_estimate(a)
            a = reset_welford(a._replace(inverse_mass_matrix=imm, mass_matrix_sqrt=mass_matrix_sqrt(imm)))
            if settings.adapt_step_size and not settings.heuristic_step_size:
                a = restart_dual_averaging(a, a.step_size)
            return a

        adapt = jax.lax.cond(window_end, end_window, lambda a: a, adapt)
    if settings.adapt_step_size:
        final = jnp.exp(adapt.log_step_size_avg)
        adapt = adapt._replace(
            step_size=jnp.where(is_last, jnp.where(jnp.isfinite(final), final, adapt.step_size), adapt.step_size)
        )
    return state._replace(adapt_state=adapt, inverse_mass_matrix=adapt.inverse_mass_matrix, step_size=adapt.step_size)


def searches_step_size(settings):
    return settings.adapt_step_size and settings.heuristic_step_size


def warmup_step(potential_fn, state, in_slow, window_end, is_last, search_first=False, potential_args=(), count=None):
    """One warmup iteration: an optional step-size search (`search_first`, traced), a transition,
    then the adaptation updates of `adapt_step`."""
    if searches_step_size(state.settings):
        state = jax.lax.cond(
            search_first, lambda s: search_step_size(potential_fn, s, potential_args), lambda s: s, state
        )
    state = sample_step(potential_fn, state, potential_args, count)
    return adapt_step(state, in_slow, window_end, is_last)


def init_state(
    potential_fn, init_params, rng_key, settings, step_size=1.0, inverse_mass_matrix=None, potential_args=()
):
    """The state at `init_params` (unconstrained), before any warmup.

    Made in one compiled call: run operation by operation, a first call compiled each operation of
    the potential and its gradient on its own (logistic regression: about 70 programs, 1.7 s).
    """
    arguments = init_params, key_data(rng_key), step_size, inverse_mass_matrix, potential_args
    return _compiled_init_state(potential_fn, settings, *arguments)


def _init_state(potential_fn, settings, init_params, rng_key, step_size, inverse_mass_matrix, potential_args):
    init_params = as_sampler_float(init_params)
    x, unravel = ravel_pytree(init_params)
    potential_energy, grad = flat_potential(potential_fn, unravel, potential_args)(x)
    return state_at(init_params, potential_energy, unravel(grad), rng_key, settings, step_size, inverse_mass_matrix)


_compiled_init_state = jax.jit(_init_state, static_argnums=(0, 1))


def as_sampler_float(tree):
    """Cast to the configured float (float32, or float64 with `jax_enable_x64`): the sampler's one
    dtype, whatever the dtypes of initial values and data, so its loops never mix precisions."""
    dtype = jnp.result_type(float)
    return jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), tree)


def state_at(params, potential_energy, grad, rng_key, settings, step_size=1.0, inverse_mass_matrix=None):
    """The state at unconstrained `params` whose potential energy and gradient are already known."""
    params, potential_energy, grad = as_sampler_float((params, potential_energy, grad))
    x, _ = ravel_pytree(params)
    dim = x.shape[0]
    if inverse_mass_matrix is None:
        inverse_mass_matrix = jnp.eye(dim, dtype=x.dtype) if settings.dense_mass else jnp.ones(dim, dtype=x.dtype)
    inverse_mass_matrix = jnp.asarray(inverse_mass_matrix, dtype=x.dtype)
    adapt = init_adapt_state(step_size, inverse_mass_matrix)
    zero_float = jnp.zeros((), x.dtype)
    return HMCState(
        i=jnp.array(0),
        z=params,
        z_grad=grad,
        potential_energy=potential_energy,
        energy=potential_energy,
        num_steps=jnp.array(0),
        accept_prob=zero_float,
        mean_accept_prob=zero_float,
        diverging=jnp.array(False),
        tree_depth=jnp.array(0),
        step_size=adapt.step_size,
        inverse_mass_matrix=inverse_mass_matrix,
        adapt_state=adapt,
        rng=key_data(rng_key),
        settings=settings,
    )


heuristic_initial_step = jax.jit(search_step_size, static_argnums=0)


def check_settings(
    num_warmup=0, step_size=1.0, target_accept_prob=0.8, max_tree_depth=10, trajectory_length=1.0, algo="NUTS"
):
    if algo not in ("NUTS", "HMC"):
        raise ValueError(f"algo must be 'NUTS' or 'HMC', got {algo!r}")
    if int(num_warmup) < 0:
        raise ValueError(f"num_warmup must be >= 0, got {num_warmup}")
    if not float(step_size) > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if not 0 < float(target_accept_prob) < 1:
        raise ValueError(f"target_accept_prob must lie in (0, 1), got {target_accept_prob}")
    if int(max_tree_depth) < 1:
        raise ValueError(f"max_tree_depth must be >= 1, got {max_tree_depth}")
    if not float(trajectory_length) > 0:
        raise ValueError(f"trajectory_length must be positive, got {trajectory_length}")


def initial_state(
    potential_fn,
    init_params,
    num_warmup,
    algo="NUTS",
    step_size=1.0,
    adapt_step_size=True,
    adapt_mass_matrix=True,
    dense_mass=False,
    target_accept_prob=0.8,
    trajectory_length=2 * math.pi,
    max_tree_depth=10,
    heuristic_step_size=True,
    rng=None,
    rng_key=None,
    inverse_mass_matrix=None,
):
    """The state `init_kernel` starts from (same arguments): settings checked, the potential and its
    gradient at `init_params`; no warmup and no step-size search yet.

    Example:
      >>> state = initial_state(lambda z: 0.5 * jnp.sum(z["x"] ** 2), {"x": jnp.ones(2)}, num_warmup=10)
      >>> float(state.potential_energy), state.settings.algo
      (1.0, 'NUTS')
    """
    settings = KernelSettings.checked(
        algo,
        max_tree_depth,
        target_accept_prob,
        trajectory_length,
        adapt_step_size,
        adapt_mass_matrix,
        dense_mass,
        heuristic_step_size,
        step_size,
        num_warmup,
    )
    rng = rng if rng is not None else rng_key if rng_key is not None else jax.random.PRNGKey(0)
    return init_state(potential_fn, init_params, rng, settings, step_size, inverse_mass_matrix)


def hmc(potential_fn, kinetic_fn=None, algo="NUTS"):
    """HMC or NUTS over a potential energy on unconstrained space.

    Args:
      potential_fn: dict (or any pytree) of unconstrained values -> scalar potential energy.
      kinetic_fn: must be None: the Euclidean kinetic energy 0.5 r^T M^-1 r is used.
      algo: 'NUTS' (no-U-turn, multinomial) or 'HMC' (fixed trajectory length).
    Returns:
      `(init_kernel, sample_kernel)`: `init_kernel(init_params, num_warmup, ...)` runs warmup and
      returns an `HMCState`; `sample_kernel(state)` returns the next state.
    Example:
      >>> import jax, jax.numpy as jnp
      >>> init_kernel, sample_kernel = hmc(lambda z: 0.5 * jnp.sum(z["x"] ** 2))
      >>> state = init_kernel({"x": jnp.zeros(2)}, num_warmup=50, progbar=False, rng=jax.random.PRNGKey(0))
      >>> sample_kernel(state).z["x"].shape
      (2,)
    """
    if kinetic_fn is not None:
        raise NotImplementedError("hmc supports the Euclidean kinetic energy only: pass kinetic_fn=None")
    check_settings(algo=algo)

    def init_kernel(
        init_params,
        num_warmup,
        step_size=1.0,
        adapt_step_size=True,
        adapt_mass_matrix=True,
        dense_mass=False,
        target_accept_prob=0.8,
        trajectory_length=2 * math.pi,
        max_tree_depth=10,
        run_warmup=True,
        progbar=True,
        heuristic_step_size=True,
        rng=None,
        rng_key=None,
        inverse_mass_matrix=None,
    ):
        state = initial_state(
            potential_fn,
            init_params,
            num_warmup,
            algo,
            step_size,
            adapt_step_size,
            adapt_mass_matrix,
            dense_mass,
            target_accept_prob,
            trajectory_length,
            max_tree_depth,
            heuristic_step_size,
            rng,
            rng_key,
            inverse_mass_matrix,
        )
        if run_warmup and num_warmup > 0:
            # Imported here: the chain program is built on this module's steps.
            from npr.infer.chain import warmup

            state = warmup(potential_fn, state, num_warmup, progbar=progbar)
        elif searches_step_size(state.settings):
            state = heuristic_initial_step(potential_fn, state)
        return state

    def sample_kernel(state):
        return compiled_sample_step(potential_fn, state)

    return init_kernel, sample_kernel


compiled_sample_step = jax.jit(sample_step, static_argnums=0)
