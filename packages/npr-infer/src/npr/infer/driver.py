"""`MCMC`: chains, warmup, continuation and extra fields over the functional core in `npr.infer.hmc`.

Compile once: the model's data enter the compiled loops as arguments, and loops are keyed on a
potential object cached per model and site structure, so repeated runs with new keys, new data of
the same shapes, or a continued state reuse the compiled programs.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from npr.diagnostics import e_bfmi, format_summary
from npr.infer.chain import (
    await_background_compilations,
    compile_ahead,
    compile_in_background,
    make_schedule,
    merge_chain_axis,
    merge_chains,
    run_chains,
    split_chain_axis,
    split_chain_axis_program,
    tree_index,
)
from npr.infer.gradient_work import glue_compilation
from npr.infer.hmc import KernelSettings, as_sampler_float, key_data, state_at
from npr.infer.util import (
    ModelPotential,
    check_init_strategy,
    model_structure,
    raise_not_found,
    search_initial_params,
    split_static_arguments,
)

CHAIN_METHODS = ("sequential", "vectorized", "parallel")
EXTRA_FIELDS = (
    "num_steps",
    "diverging",
    "accept_prob",
    "mean_accept_prob",
    "step_size",
    "potential_energy",
    "energy",
    "tree_depth",
    "inverse_mass_matrix",
    "adapt_state",
)


class _PlainPotential:
    """A user's potential over unconstrained values, with no model arguments."""

    def __init__(self, potential_fn):
        self.potential_fn = potential_fn
        self.value_and_grad = jax.jit(lambda params, *_: jax.value_and_grad(potential_fn)(params))

    def __call__(self, params, *_):
        return self.potential_fn(params)


_compiled_constrain = {}


def _constrain_program(potential):
    """The compiled map from a run's unconstrained draws (chain, draw, ...) to the model's sites, with
    the chains' draws merged (chain * draw, ...): the layout `get_samples` returns by default, so that
    it dispatches nothing after a run (0.05-0.1 ms a call on a small model)."""
    if potential not in _compiled_constrain:
        by_chain = jax.vmap(jax.vmap(potential._constrain, in_axes=(0, None, None)), in_axes=(0, None, None))

        def constrained_draws(z, *args):
            return merge_chains(by_chain(z, *args))

        _compiled_constrain[potential] = jax.jit(constrained_draws, compiler_options=glue_compilation())
    return _compiled_constrain[potential]


def _same_immutable(current, previous):
    """Whether `current` holds the very objects of `previous`, all of them immutable (JAX arrays, Python
    scalars, strings, None): then the model sees exactly the same data (NumPy arrays may have changed)."""
    leaves, structure = jax.tree_util.tree_flatten(current, is_leaf=lambda x: x is None)
    old_leaves, old_structure = jax.tree_util.tree_flatten(previous, is_leaf=lambda x: x is None)
    return structure == old_structure and all(
        a is b and (isinstance(a, jax.Array) or a is None or isinstance(a, (bool, int, float, str)))
        for a, b in zip(leaves, old_leaves)
    )


# Attempts at finding initial values where the potential and its gradient are finite.
MAX_INIT_TRIES = 100


# The initial states of all chains come from one compiled call: run eagerly, their random draws,
# gradients and stacking compiled a dozen small programs (about 0.4 s on a 2-core CPU).
def _proposals(potential, kind, shapes, values, args):
    """`propose(key)`: unconstrained initial values as `kind` says: 'uniform' on (-2, 2) as Stan,
    'prior' one joint prior draw, 'median' the median of 15, 'values' the given constrained `values`."""
    if kind == "values":
        unconstrained = potential.unconstrain(values, *args)
        return lambda key: unconstrained
    if kind == "uniform":
        return lambda key: {
            name: jax.random.uniform(jax.random.fold_in(key, index), shape, minval=-2.0, maxval=2.0)
            for index, (name, shape) in enumerate(shapes)
        }
    if kind == "prior":
        return lambda key: potential.unconstrain(potential.prior_draw(key, *args), *args)

    def median(key):
        draws = jax.vmap(lambda k: potential.prior_draw(k, *args))(jax.random.split(key, 15))
        return potential.unconstrain(jax.tree_util.tree_map(lambda d: jnp.median(d, axis=0), draws), *args)

    return median


def _search_initial_states(potential, settings, num_chains, shapes, kind, max_tries, key, values, args, step_size):
    """Chain states at initial values proposed as `kind` says (`_proposals`; `shapes`: unconstrained),
    retried until the potential and its gradient are finite; with whether each chain found such values."""
    propose = _proposals(potential, kind, shapes, values, args)

    def chain(chain_key):
        key_init, key_state = jax.random.split(chain_key)
        value_and_grad = lambda params: jax.value_and_grad(potential)(params, *args)
        search = search_initial_params(value_and_grad, lambda i: propose(jax.random.fold_in(key_init, i)), max_tries)
        params, value, grad, found = search
        return state_at(params, value, grad, key_state, settings, step_size), found

    return jax.vmap(chain)(jax.random.split(key, num_chains))


def _state_shapes(settings, num_chains, shapes, key, step_size):
    """The shapes of the states `_search_initial_states` finds, without tracing the model."""

    def states(key, step_size):
        def chain(chain_key):
            params = {name: jnp.zeros(shape, jnp.result_type(float)) for name, shape in shapes}
            value = jnp.zeros((), jnp.result_type(float))
            return state_at(params, value, params, jax.random.split(chain_key)[1], settings, step_size)

        return jax.vmap(chain)(jax.random.split(key, num_chains))

    return jax.eval_shape(states, key, step_size)


def _avals(tree):
    leaves, structure = jax.tree_util.tree_flatten(tree)
    return structure, [(x.shape, x.dtype, getattr(x, "weak_type", False)) for x in leaves]


@functools.cache
def _compiled_search():
    return jax.jit(
        _search_initial_states,
        static_argnums=tuple(range(6)),
        compiler_options=glue_compilation(),
    )


def initial_states(
    key,
    potential,
    latents,
    strategy,
    num_chains,
    settings,
    step_size,
    potential_args,
    max_tries=MAX_INIT_TRIES,
    before_search=None,
):
    """States of `num_chains` chains at initial values found as `strategy` says (see `_proposals`), in
    one compiled search; an error naming the sites to blame where a chain found none.
    `before_search(states)` is given the states' shapes (`jax.ShapeDtypeStruct` leaves) before the
    search runs."""
    check_init_strategy(strategy, latents, potential, *potential_args)
    kind = "values" if isinstance(strategy, dict) else strategy
    shapes = tuple((name, info.unconstrained_shape) for name, info in latents.items())
    values = strategy if kind == "values" else None
    max_tries = 1 if kind == "values" else max_tries
    search = _compiled_search()
    arguments = potential, settings, num_chains, shapes, kind, max_tries, key, values, potential_args, step_size
    if before_search is not None:
        # The states' shapes follow from the latent sites' alone: the chain program starts compiling
        # before the search is traced (logistic regression: 0.14 s sooner). The search's own shapes
        # are checked, should a model's differ.
        guess = _state_shapes(settings, num_chains, shapes, key, step_size)
        before_search(guess)
        found_shapes = search.trace(*arguments).out_info[0]  # the call below reuses this trace
        if _avals(found_shapes) != _avals(guess):
            before_search(found_shapes)
    states, found = search(*arguments)
    found = np.asarray(found)  # on the host: np.all of a device array compiles a reduction
    if not found.all():
        chain = int(np.flatnonzero(~found)[0])
        at = tree_index((states.z, states.z_grad), chain)
        raise_not_found(potential, strategy, *potential_args, *at, max_tries=max_tries)
    return states


def initial_values(key, potential, latents, strategy, max_tries, potential_args):
    """Unconstrained initial values of one chain, as `initialize_model` returns them."""
    settings = KernelSettings.checked()
    states = initial_states(key, potential, latents, strategy, 1, settings, 1.0, potential_args, max_tries)
    return tree_index(states.z, 0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _states_at_params(potential, settings, num_chains, key, params, args, step_size):
    """Chain states at the given unconstrained `params` (leading axis: chain)."""

    def chain(chain_key, params):
        params = as_sampler_float(params)
        value, grad = jax.value_and_grad(potential)(params, *args)
        return state_at(params, value, grad, jax.random.split(chain_key)[1], settings, step_size)

    return jax.vmap(chain)(jax.random.split(key, num_chains), params)


class MCMC:
    """Run `num_chains` chains of `kernel` (`NUTS` or `HMC`): warmup, then `num_samples` kept draws.

    Args:
      kernel: a `NUTS` or `HMC` object.
      num_warmup: adaptation iterations.
      num_samples: kept draws per chain.
      num_chains: number of chains.
      thinning: keep every `thinning`-th draw.
      chain_method: 'sequential', 'vectorized' (all chains in one compiled program; on a CPU with
        several cores, equal groups of chains run that program at once, one thread each) or
        'parallel' (one device per chain; falls back to 'vectorized', with a warning, on too few
        devices).
      progress_bar: show tqdm bars fed from inside the compiled loops.
      postprocess_fn: unconstrained dict -> what `get_samples` returns (default: constrained values
        and deterministic sites).
    Example:
      >>> import jax, jax.numpy as jnp
      >>> from npr.infer import NUTS
      >>> mcmc = MCMC(NUTS(potential_fn=lambda z: 0.5 * jnp.sum(z["x"] ** 2)), num_warmup=100, num_samples=100,
      ...             num_chains=2, chain_method="vectorized", progress_bar=False)
      >>> mcmc.run(jax.random.PRNGKey(0), init_params={"x": jnp.zeros((2, 3))})
      >>> mcmc.get_samples()["x"].shape, mcmc.get_samples(group_by_chain=True)["x"].shape
      ((200, 3), (2, 100, 3))
    """

    def __init__(
        self,
        kernel,
        num_warmup,
        num_samples,
        num_chains=1,
        thinning=1,
        chain_method="sequential",
        progress_bar=True,
        postprocess_fn=None,
    ):
        if int(num_warmup) < 0:
            raise ValueError(f"num_warmup must be >= 0, got {num_warmup}")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(num_chains) < 1:
            raise ValueError(f"num_chains must be >= 1, got {num_chains}")
        if int(thinning) < 1 or int(thinning) > int(num_samples) * int(thinning):
            raise ValueError(f"thinning must be a positive integer, got {thinning}")
        if chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
        self.kernel = kernel
        self.num_warmup, self.num_samples = int(num_warmup), int(num_samples)
        self.num_chains, self.thinning = int(num_chains), int(thinning)
        self.chain_method = chain_method
        self.progress_bar = progress_bar
        self.postprocess_fn = postprocess_fn
        self.post_warmup_state = None
        self.last_state = None
        self._potentials = {}
        self._structure = None
        self._signature = None
        self._samples = None
        self._extra = None
        self._stored_chains = None
        self._model_args = ((), {})

    # ---------------------------------------------------------------- setup
    def _potential(self, key, args, kwargs):
        if self.kernel.model is None:
            potential = self._potentials.setdefault("potential_fn", _PlainPotential(self.kernel.potential_fn))
            return potential, None, ("potential_fn",), ()
        # Given the very same immutable arguments as the last run, tracing the model again has nothing new
        # to check or learn (it costs milliseconds, and compiles any lax.scan in the model again).
        if (
            self._structure is not None
            and self._structure[0] is self.kernel.model
            and _same_immutable((args, kwargs), self._structure[1])
        ):
            return self._structure[2]
        latents, signature = model_structure(key, self.kernel.model, args, kwargs)
        dynamic_args, dynamic_kwargs, static = split_static_arguments(args, kwargs)
        signature = (signature, static)
        if signature not in self._potentials:
            self._potentials[signature] = ModelPotential(self.kernel.model, latents, static)
        result = self._potentials[signature], latents, signature, (dynamic_args, dynamic_kwargs)
        self._structure = (self.kernel.model, (args, kwargs), result)
        return result

    def _method(self):
        if self.chain_method == "parallel":
            if jax.local_device_count() >= self.num_chains:
                return "parallel"
            warnings.warn(
                f"chain_method='parallel' needs {self.num_chains} devices but {jax.local_device_count()} are "
                "available: running the chains vectorized instead",
                UserWarning,
                stacklevel=3,
            )
            return "vectorized"
        return self.chain_method

    def _initial_states(self, key, potential, latents, init_params, potential_args, before_search=None):
        settings, step_size = self.kernel.settings, self.kernel.step_size
        if init_params is not None:
            leaves = jax.tree_util.tree_leaves(init_params)
            if self.num_chains > 1 and any(jnp.shape(leaf)[:1] != (self.num_chains,) for leaf in leaves):
                raise ValueError(
                    f"init_params must have a leading dim of num_chains={self.num_chains}, got shapes "
                    f"{[jnp.shape(leaf) for leaf in leaves]}"
                )
            if latents is not None and set(init_params) != set(latents):
                raise ValueError(f"init_params must name the latent sites {sorted(latents)}, got {sorted(init_params)}")
            if self.num_chains == 1:
                init_params = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], init_params)
            return _states_at_params(potential, settings, self.num_chains, key, init_params, potential_args, step_size)
        strategy = self.kernel.init_strategy
        return initial_states(
            key,
            potential,
            latents,
            strategy,
            self.num_chains,
            settings,
            step_size,
            potential_args,
            before_search=before_search,
        )

    def _compile_ahead(self, potential, schedule, num_kept, fields, potential_args):
        """`before_search` for `_initial_states`: the chain program compiles while the states are searched."""
        with warnings.catch_warnings():  # a parallel run short of devices is warned about once, by the run
            warnings.simplefilter("ignore")
            method = self._method()

        def ahead(states):
            try:
                compile_ahead(potential, states, schedule, num_kept, fields, method, potential_args)
                self._compile_draws_ahead(potential, states, num_kept, potential_args)
            except Exception:  # only a head start: the run traces the program again and reports its error
                pass

        return ahead

    def _compile_draws_ahead(self, potential, states, num_kept, potential_args):
        """Lower the programs that constrain a run's draws and split them by chain, and compile them
        while the chains sample: a fresh process otherwise waited for their compilation after sampling
        (eight schools, 4 chains: 25 ms)."""
        if self.postprocess_fn is not None or not isinstance(potential, ModelPotential) or num_kept == 0:
            return
        num_chains = jax.tree_util.tree_leaves(states)[0].shape[0]
        z = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct((num_chains, num_kept) + x.shape[1:], x.dtype), states.z
        )
        constrain = _constrain_program(potential).trace(z, *potential_args)
        sites = jax.tree_util.tree_map(lambda out: jax.ShapeDtypeStruct(out.shape, out.dtype), constrain.out_info)
        compile_in_background(constrain.lower(), split_chain_axis_program(num_chains).trace(sites).lower())

    # ---------------------------------------------------------------- loops
    def _run(self, potential, states, schedule, num_kept, fields, potential_args, finish_later=None):
        return run_chains(
            potential,
            states,
            schedule,
            num_kept,
            fields,
            self._method(),
            self.progress_bar,
            potential_args,
            finish_later,
        )

    @staticmethod
    def _check_extra_fields(extra_fields):
        unknown = [f for f in extra_fields if f not in EXTRA_FIELDS]
        if unknown:
            raise ValueError(f"unknown extra_fields {unknown}; known fields are {list(EXTRA_FIELDS)}")
        return tuple(dict.fromkeys(tuple(extra_fields) + ("diverging", "energy", "tree_depth", "num_steps")))

    # ---------------------------------------------------------------- public
    def _prepare(self, rng_key, args, kwargs, extra_fields):
        fields = self._check_extra_fields(extra_fields)
        # The chains' keys are split inside their compiled programs (split here, the key compiled a
        # program of its own); the model's structure uses none of the draws of its trace.
        key = key_data(rng_key)
        return (fields, key) + self._potential(key, args, kwargs)

    def warmup(self, rng_key, *args, extra_fields=(), collect_warmup=False, init_params=None, **kwargs):
        """Run warmup only; its end state becomes `post_warmup_state`, the start of the next `run`."""
        fields, key_chains, potential, latents, signature, potential_args = self._prepare(
            rng_key, args, kwargs, extra_fields
        )
        # Without collected draws this is the program `run` uses, so warmup() then run() compiles once.
        num_kept = self.num_warmup if collect_warmup else self.num_samples
        schedule = make_schedule(self.num_warmup, 0, collect_warmup=collect_warmup)
        ahead = self._compile_ahead(potential, schedule, num_kept, fields, potential_args)
        states = self._initial_states(key_chains, potential, latents, init_params, potential_args, ahead)
        last, collected = self._run(potential, states, schedule, num_kept, fields, potential_args)
        self._signature, self._model_args = signature, (args, kwargs)
        self.post_warmup_state = last
        self.last_state = last
        if collect_warmup:
            self._store(potential, collected, potential_args)

    def run(self, rng_key, *args, extra_fields=(), init_params=None, **kwargs):
        """Warmup (unless continuing from `post_warmup_state`) and `num_samples` draws per chain."""
        fields, key_chains, potential, latents, signature, potential_args = self._prepare(
            rng_key, args, kwargs, extra_fields
        )
        if self.post_warmup_state is not None:
            states = self.post_warmup_state
            if self._signature is not None and signature != self._signature:
                raise ValueError(
                    "cannot continue from post_warmup_state: the model's sites or data shapes differ from the "
                    f"run that produced it ({self._signature} != {signature})"
                )
            schedule = make_schedule(0, self.num_samples, self.thinning)
        else:
            schedule = make_schedule(self.num_warmup, self.num_samples, self.thinning)
            ahead = self._compile_ahead(potential, schedule, self.num_samples, fields, potential_args)
            states = self._initial_states(key_chains, potential, latents, init_params, potential_args, ahead)
        bars = []  # completed once the draws' postprocessing is dispatched too
        try:
            last, collected = self._run(potential, states, schedule, self.num_samples, fields, potential_args, bars)
            self._signature, self._model_args = signature, (args, kwargs)
            self.last_state = last
            self._store(potential, collected, potential_args)
        finally:
            for finish in bars:
                finish()

    def _store(self, potential, collected, potential_args):
        """Keep a run's draws with the chains merged (see `_constrain_program`), its extra fields by chain."""
        z, extra = collected
        if self.postprocess_fn is not None:
            samples = merge_chain_axis(jax.vmap(jax.vmap(self.postprocess_fn))(z))
        elif isinstance(potential, ModelPotential):
            await_background_compilations()  # the constrain program (`_compile_draws_ahead`)
            samples = _constrain_program(potential)(z, *potential_args)
        else:
            samples = merge_chain_axis(z)
        self._samples, self._extra = samples, extra
        self._stored_chains = jax.tree_util.tree_leaves(extra)[0].shape[0]

    def get_samples(self, group_by_chain=False):
        """Draws as a dict: (num_chains * num_samples, ...) or, grouped, (num_chains, num_samples, ...)."""
        if self._samples is None:
            raise ValueError("no samples yet: call run() first")
        if group_by_chain:
            return split_chain_axis(self._samples, self._stored_chains)
        return self._samples

    def get_extra_fields(self, group_by_chain=False):
        """Per-draw sampler statistics requested through `extra_fields` (diverging, energy... always)."""
        if self._extra is None:
            raise ValueError("no extra fields yet: call run() first")
        if group_by_chain:
            return self._extra
        return merge_chain_axis(self._extra)

    def _deterministic_sites(self):
        if self.kernel.model is None:
            return set()
        from npr.handlers import seed, trace

        args, kwargs = self._model_args
        model_trace = trace(seed(self.kernel.model, 0)).get_trace(*args, **kwargs)
        return {name for name, site in model_trace.items() if site["type"] == "deterministic"}

    def format_summary(self, prob=0.9, exclude_deterministic=True, columns="seed"):
        samples = self.get_samples()
        if exclude_deterministic:
            hidden = self._deterministic_sites()
            samples = {k: v for k, v in samples.items() if k not in hidden}
        # Split by chain on the host: no program to compile for a table.
        by_chain = jax.tree_util.tree_map(
            lambda x: np.asarray(x).reshape((self._stored_chains, -1) + x.shape[1:]), samples
        )
        table = format_summary(by_chain, prob=prob, columns=columns)
        extra = self.get_extra_fields(group_by_chain=True)
        lines = [table, ""]
        divergences = int(np.sum(np.asarray(extra["diverging"])))
        lines.append(f"Number of divergences: {divergences}")
        if divergences:
            lines.append(
                f"Warning: {divergences} of {self.num_chains * self.num_samples} transitions diverged; "
                "increase target_accept_prob or reparameterise the model."
            )
        depth = np.asarray(extra["tree_depth"])
        saturated = int(np.sum(depth >= self.kernel.settings.max_tree_depth)) if self.kernel.algo == "NUTS" else 0
        if saturated:
            lines.append(
                f"Warning: {saturated} transitions hit the maximum tree depth of "
                f"{self.kernel.settings.max_tree_depth}; increase max_tree_depth."
            )
        bfmi = e_bfmi(np.asarray(extra["energy"]))
        for chain, value in enumerate(bfmi):
            if value < 0.3:
                lines.append(
                    f"Warning: E-BFMI of chain {chain} is {value:.2f} < 0.3: the posterior may be poorly explored."
                )
        return "\n".join(lines)

    def print_summary(self, prob=0.9, exclude_deterministic=True, columns="seed"):
        """Print the diagnostics table, then divergences, tree-depth saturation and E-BFMI warnings."""
        print(self.format_summary(prob=prob, exclude_deterministic=exclude_deterministic, columns=columns))
