"""What a model's gradient computes, read from its jaxpr before its chains are compiled.

The chain driver uses it to pick between lockstep and asynchronous vectorized chains
(`npr.infer.chain.runs_in_lockstep`) and to pick XLA CPU options for the chain programs
(`compiler_options`).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from npr.infer.cache import small_loops_compile_as_one_function


class GradientWork(NamedTuple):
    """Array elements one value-and-grad reads or writes (a contraction counts its products), whether
    it runs a loop, whether it reduces large arrays along short or non-trailing axes, whether it
    calls a library routine (a dot, a linear solve, a scatter), which XLA never compiles into a
    loop's single function, and how many elements it computes with a transcendental function
    (exp, log, tanh, lgamma, ...)."""

    elements: int
    loops: bool
    strided_reductions: bool
    library_calls: bool
    transcendental_elements: int = 0


# A reduction over at least this many elements whose reduced axes are not the trailing ones, or
# whose trailing reduced extent is under STRIDED_MAX_EXTENT, counts as strided (see `compiler_options`).
STRIDED_MIN_ELEMENTS = 256
STRIDED_MAX_EXTENT = 16
_REDUCTIONS = ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin")
_LIBRARY_CALLS = ("dot_general", "conv_general_dilated", "triangular_solve", "cholesky", "lu", "qr", "eigh", "svd")
_CALLBACKS = ("pure_callback", "io_callback", "debug_callback")
# Square roots and divisions are single instructions; these are series or library calls.
_TRANSCENDENTAL = frozenset(
    "exp exp2 log log1p expm1 tanh logistic pow sin cos tan asin acos atan atan2 sinh cosh asinh acosh "
    "atanh lgamma digamma polygamma zeta igamma igammac igamma_grad_a random_gamma_grad erf erfc erf_inv "
    "bessel_i0e bessel_i1e regularized_incomplete_beta cbrt".split()
)


def _is_library_call(eqn):
    name = eqn.primitive.name
    return name in _LIBRARY_CALLS or name in _CALLBACKS or name.startswith("scatter")


def _size(var):
    return int(np.prod(getattr(var.aval, "shape", ())))


def _elements(eqn):
    if eqn.primitive.name == "dot_general":
        (contracting, _), _ = eqn.params["dimension_numbers"]
        lhs_shape = eqn.invars[0].aval.shape
        return _size(eqn.outvars[0]) * int(np.prod([lhs_shape[d] for d in contracting]))
    return max((_size(v) for v in (*eqn.invars, *eqn.outvars)), default=0)


def _is_strided_reduction(eqn):
    if eqn.primitive.name not in _REDUCTIONS or _size(eqn.invars[0]) < STRIDED_MIN_ELEMENTS:
        return False
    shape = eqn.invars[0].aval.shape
    axes = sorted(a % len(shape) for a in eqn.params["axes"])
    trailing = axes == list(range(len(shape) - len(axes), len(shape)))
    return not trailing or int(np.prod([shape[a] for a in axes])) < STRIDED_MAX_EXTENT


def _transcendental_elements(eqn, broadcast_from):
    # A function of a broadcast array is counted at the size before the broadcast (a distribution's
    # log(scale) broadcast over its batch), which XLA computes once per element of that.
    if eqn.primitive.name not in _TRANSCENDENTAL:
        return 0
    inputs = [broadcast_from.get(v, _size(v)) for v in eqn.invars if isinstance(v, jax_core.Var)]
    return min(max(inputs, default=0), sum(_size(v) for v in eqn.outvars))


def _walk(jaxpr):
    elements, loops, strided, library, transcendental = 0, False, False, False, 0
    broadcast_from = {}  # broadcast results: the size of what was broadcast
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "broadcast_in_dim" and isinstance(eqn.invars[0], jax_core.Var):
            broadcast_from[eqn.outvars[0]] = broadcast_from.get(eqn.invars[0], _size(eqn.invars[0]))
        loops |= eqn.primitive.name in ("while", "scan")
        for inner in jax_core.jaxprs_in_params(eqn.params):
            inner_work = _walk(inner)
            elements += inner_work.elements
            loops |= inner_work.loops
            strided |= inner_work.strided_reductions
            library |= inner_work.library_calls
            transcendental += inner_work.transcendental_elements
        elements += _elements(eqn)
        strided |= _is_strided_reduction(eqn)
        library |= _is_library_call(eqn)
        transcendental += _transcendental_elements(eqn, broadcast_from)
    return GradientWork(elements, loops, strided, library, transcendental)


_CACHE = {}


def gradient_work(potential, z, potential_args=()):
    """The `GradientWork` of one value-and-grad of `potential(z, *potential_args)`.

    Example:
      >>> gradient_work(lambda z: jnp.sum(z["x"] ** 2), {"x": jnp.zeros(3)})
      GradientWork(elements=15, loops=False, strided_reductions=False, library_calls=False, transcendental_elements=0)
      >>> gradient_work(lambda z: jnp.sum(jnp.exp(z["x"])), {"x": jnp.zeros(3)}).transcendental_elements  # one exp each
      3
      >>> mixture = lambda z: jnp.sum(jax.scipy.special.logsumexp(z["x"] * jnp.ones((500, 2)), axis=-1))
      >>> gradient_work(mixture, {"x": jnp.zeros(2)}).strided_reductions
      True
    """
    on_sites = getattr(potential, "on_sites", None)  # a potential of a flat vector of sites (see hmc.VectorPotential)
    if on_sites is not None:
        potential, z = on_sites(z)
    # Looked up on every run: the key reads arrays' shapes and dtypes (as JAX will see them), a few
    # times quicker than `jnp.result_type`; Python numbers are typed by the x64 flag.
    leaves, structure = jax.tree_util.tree_flatten((z, potential_args))
    dtype = lambda x: jax.dtypes.canonicalize_dtype(x.dtype) if hasattr(x, "dtype") else type(x)
    shapes = tuple((getattr(x, "shape", None), dtype(x)) for x in leaves)
    key = (potential, structure, shapes, jax.config.jax_enable_x64)
    if key not in _CACHE:
        if len(_CACHE) >= 256:  # the keys hold models' potentials: keep the latest ones only
            del _CACHE[next(iter(_CACHE))]
        abstract = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), (z, potential_args)
        )
        grad = jax.value_and_grad(lambda z, args: potential(z, *args))
        _CACHE[key] = _walk(jax.make_jaxpr(grad)(*abstract).jaxpr)
    return _CACHE[key]


# XLA on CPU hands dots, and since recent versions reductions, to its YNNPACK library. The library
# is fast on long rows but slow on many short or strided ones: summing (4, 1000, 2) over its last
# axis took 22 us through it and 10 us in XLA's own loops on a 2-core CPU. Keeping dots there and
# reductions out made 4 vectorized chains of a two-component mixture (1,000 points) 2.6x faster;
# for a logistic regression (rows of 3,000) it made them 1.2x slower, hence the choice per model.
_LIBRARY_OPTION = "xla_cpu_experimental_ynn_fusion_type"
_DOTS_ONLY = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"


def _cpu_options_if_known(options):
    """`options`, or {} where this XLA lacks one of them (several are experimental) or JAX does not
    compile for a CPU."""
    if jax.default_backend() != "cpu":
        return {}
    try:  # the smallest program there is: this costs a fresh process one compilation of ~15 ms
        jax.jit(lambda x: x, compiler_options=options).lower(np.float32(0)).compile()
    except Exception:  # an unknown option or value: INVALID_ARGUMENT at compilation
        return {}
    return options


@functools.cache
def _reductions_out_of_library():
    """The compiler options that keep reductions out of XLA's CPU library."""
    return _cpu_options_if_known({_LIBRARY_OPTION: _DOTS_ONLY})


# XLA spends most of a chain program's compilation generating and optimising machine code for its
# many small fusions. XLA's older loop emitters and LLVM's -O1 compile it in about half the time,
# and run it as fast, except for gradients that evaluate transcendental functions over many elements
# (the likelihood of a logistic regression or of a mixture): the older emitters' code for the large
# fusions of such gradients is slower (the functions alone are not). Measured on a 2-core CPU, 500 + 500,
# fresh process, microseconds per gradient of a continued run (1 chain; 4 vectorized chains):
#   kidiq (17,000 elements, 4 transcendental): 2.6 -> 2.4 s, 3.46 -> 3.59 us; 1.73 -> 1.75 us
#   100-dimensional Gaussian: 2.9 -> 2.3 s, 12.0 -> 11.0 us; 7.7 -> 7.4 us
#   diamonds (370,000 elements, 14 transcendental): 4.9 -> 3.9 s, 25.4 us both
#   logistic regression (6,000 transcendental): 2.1 -> 1.4 s, but 32.9 -> 38.0 us; 12.6 -> 17.4 us
#   two-component mixture (3,000 transcendental): 17.0 -> 26.5 us; 7.3 -> 10.9 us
# Gradients with a loop run slower that way too (garch11, 1 chain: 34 -> 39 ms).
QUICK_COMPILE_MAX_TRANSCENDENTAL = 1000


@functools.cache
def quick_compilation():
    """XLA CPU options that halve the compilation of chain programs (see QUICK_COMPILE_MAX_TRANSCENDENTAL)."""
    return _cpu_options_if_known({"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1})


@functools.cache
def glue_compilation():
    """XLA options for programs that run once per run (initial states, moving data between programs):
    compiled as fast as XLA can, since how fast they run hardly matters."""
    quick = quick_compilation()
    return {**quick, "xla_backend_optimization_level": 0} if quick else {}


def compiler_options(work):
    """XLA options for the chain programs of a model whose gradient does `work`.

    Example:
      >>> work = GradientWork(elements=15, loops=False, strided_reductions=False, library_calls=False)
      >>> compiler_options(work) == (quick_compilation() if jax.default_backend() == "cpu" else {})
      True
      >>> compiler_options(work._replace(transcendental_elements=10**4))
      {}
    """
    options = {}
    if work.strided_reductions:
        options.update(_reductions_out_of_library())
    if not work.loops and work.transcendental_elements <= QUICK_COMPILE_MAX_TRANSCENDENTAL:
        options.update(quick_compilation())
    return options


def rows_in_loop(potential, z, potential_args=()):
    """Whether NUTS leaves of a model check U-turns one closed block per loop iteration
    (`npr.infer.nuts.add_leaf`): where XLA compiles the trajectory's loops as one function
    (`npr.infer.compile_small_loops_as_one_kernel`, and a gradient with no library call), a loop
    iteration costs next to nothing and reading only the closed blocks' rows wins (eight schools,
    1 chain: 1.05 -> 0.65 us per gradient on a 2-core CPU); elsewhere each iteration is dispatched on
    its own and reading every row at once wins (a 100-dimensional Gaussian: 10.9 -> 13.5 us).

    Except for potentials that solve with their data by a product with its inverse (a multivariate
    normal's scale given as data, `npr.infer.loop_data`): every row at once, their leaves have more
    than 8 independent operations ready at a time, which XLA's CPU runtime hands to a second thread,
    and on a 2-core CPU most runs paid for that handover at every leaf. Microseconds per leapfrog
    step, 1 chain, median of 7 runs, every row -> one row per iteration, by dimension: 3: 2.5 (one
    row per iteration only); 10: 2.0 -> 1.6; 16: 3.8 -> 3.7; 30: 3.8 -> 3.5; 64: 9.6 -> 4.9; 100:
    11.3 -> 6.6; 150: 16.9 -> 8.2. On one core the 100-dimensional one ran 4.5 and 4.2 us.

    Example:
      >>> rows_in_loop(lambda z: jnp.sum(z["x"] ** 2), {"x": jnp.zeros(3)}) == small_loops_compile_as_one_function()
      True
    """
    on_sites = getattr(potential, "on_sites", None)
    if getattr(on_sites(z)[0] if on_sites else potential, "solves_by_inverse", False):
        return True
    return small_loops_compile_as_one_function() and not gradient_work(potential, z, potential_args).library_calls


def rows_in_place(potential, z, potential_args=()):
    """Whether NUTS leaves of a model write their checkpoint rows by an in-place update rather than
    a select over the whole (depth x dimension) array (`npr.infer.nuts.add_leaf`): where the gradient
    makes no library call. Measured on a 2-core CPU, microseconds per leapfrog step, select -> update:
    1 chain, eight schools 2.70 -> 2.30 (0.53 -> 0.43 with small loops as one function), kilpisjarvi
    0.88 -> 0.66 (0.19 -> 0.16), kidiq 1.07-1.58 s per key in the median, bimodal, -> 0.56 s
    (0.71 -> 0.67 with small loops), garch, arma and a Gaussian mixture 2-8% less; 4 vectorized
    chains: eight schools 1.32 -> 1.09, kidiq 1.60 -> 1.51, kilpisjarvi 0.44 -> 0.32. The seed's
    logistic regression, whose gradient is two dots, went 10.0 -> 15.1, hence the select there
    (arrays over 1 KiB are always updated in place; with a dense mass matrix, whose velocities are
    products, only those).

    Example:
      >>> rows_in_place(lambda z: jnp.sum(z["x"] ** 2), {"x": jnp.zeros(3)})
      True
      >>> rows_in_place(lambda z: jnp.sum(jnp.ones((50, 3)) @ z["x"]), {"x": jnp.zeros(3)})
      False
    """
    return not gradient_work(potential, z, potential_args).library_calls
