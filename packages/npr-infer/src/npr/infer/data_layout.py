"""Tall data matrices read transposed by the model's matrix-vector products in the chain programs.

A regression's `data @ coefs`, data of shape (N, K) with N > K, contracts the short trailing axis
of every row, and its gradient, `data.T @ g`, sums the long axis across rows: XLA's CPU code for
both runs at a fraction of the speed of the same products on the data stored (K, N), where each
reads long contiguous rows. The chain programs transpose such data once per call, before their
loop, and evaluate the model's potential with those products reading the transposed copy.
Value-and-grad of a least-squares potential in a compiled loop on a 2-core CPU, microseconds per
gradient, (N, K) as stored -> transposed, 1 chain; 4 vmapped chains:
(3000, 3) 13.5 -> 3.4; 18.6 -> 8.0. (1000, 100) 12.9 -> 8.6; 59.0 -> 34.8. (20000, 5) 110 -> 17.5;
193 -> 117. (5000, 24) 16.3 -> 12.5; 57.2 -> 58.5. Wide data is slower transposed ((100, 1000):
8.0 -> 12.7) and so are some products with a matrix ((1000, 100) times (100, 10): 126 -> 144):
both stay as they are. Measured on CPUs only: on other backends, as for models with no such
product, the potential is left as it is.
"""

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core

# Primitives of nested jitted functions (`jnp.einsum`, a user's `jax.jit`), evaluated inline so that
# the dots inside them see which of their operands are data.
_INLINED = ("jit", "pjit")


def _tall_operand(eqn, sources):
    """Which operand (0: lhs, 1: rhs) of dot_general `eqn` is a tall data matrix whose trailing axis
    is contracted with a vector, by its source among `sources` (var -> source), or None."""
    if eqn.primitive.name != "dot_general":
        return None
    (contracting, batch) = eqn.params["dimension_numbers"]
    if any(len(b) for b in batch):
        return None
    for side in (0, 1):
        var, other = eqn.invars[side], eqn.invars[1 - side]
        if not isinstance(var, jax_core.Var) or var not in sources:
            continue
        shape = var.aval.shape
        # A matrix times a vector: times a matrix, the transposed copy was as often slower as faster.
        vector = len(contracting[1 - side]) == len(other.aval.shape)
        if vector and len(shape) == 2 and tuple(contracting[side]) == (1,) and shape[0] > shape[1]:
            return side
    return None


def _inner_sources(eqn, sources):
    inner = eqn.params["jaxpr"].jaxpr
    return {v: sources[o] for v, o in zip(inner.invars, eqn.invars) if isinstance(o, jax_core.Var) and o in sources}


def _tall_sources(jaxpr, sources):
    """The sources of the data matrices that dots in `jaxpr` (and the jitted functions it calls) read tall."""
    found = set()
    for eqn in jaxpr.eqns:
        side = _tall_operand(eqn, sources)
        if side is not None:
            found.add(sources[eqn.invars[side]])
        elif eqn.primitive.name in _INLINED:
            found |= _tall_sources(eqn.params["jaxpr"].jaxpr, _inner_sources(eqn, sources))
    return found


def _transposed_dot(eqn, side, operands, transposed):
    (contracting, batch) = eqn.params["dimension_numbers"]
    contracting = list(contracting)
    contracting[side] = (0,)
    operands = list(operands)
    operands[side] = transposed
    # The output keeps its order: each operand's free axes come in the order they had.
    return eqn.primitive.bind(*operands, **{**eqn.params, "dimension_numbers": (tuple(contracting), batch)})


def _bind(eqn, operands):
    bound = eqn.primitive.get_bind_params(eqn.params)
    # Older JAX versions return (subfunctions, parameters), newer ones the parameters alone.
    subfuns, params = bound if isinstance(bound, tuple) else ((), bound)
    with eqn.ctx.manager:
        outputs = eqn.primitive.bind(*subfuns, *operands, **params)
    return outputs if eqn.primitive.multiple_results else [outputs]


def _evaluate(jaxpr, consts, inputs, sources, transposed):
    """`jaxpr` evaluated on `inputs`, its dots reading the `transposed` copies (by source) of tall data."""
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, inputs))
    read = lambda v: v.val if isinstance(v, jax_core.Literal) else env[v]
    for eqn in jaxpr.eqns:
        operands = [read(v) for v in eqn.invars]
        side = _tall_operand(eqn, sources)
        if side is not None and sources[eqn.invars[side]] in transposed:
            outputs = [_transposed_dot(eqn, side, operands, transposed[sources[eqn.invars[side]]])]
        elif eqn.primitive.name in _INLINED and _tall_sources(eqn.params["jaxpr"].jaxpr, _inner_sources(eqn, sources)):
            inner = eqn.params["jaxpr"]
            outputs = _evaluate(inner.jaxpr, inner.consts, operands, _inner_sources(eqn, sources), transposed)
        else:
            outputs = _bind(eqn, operands)
        env.update((v, x) for v, x in zip(eqn.outvars, outputs) if not isinstance(v, jax_core.DropVar))
    return [read(v) for v in jaxpr.outvars]


class TransposedDataPotential:
    """A potential `(z, args, transposed)` of the sites `z` and the model data `args`, its dots
    reading tall data matrices from `transposed` (see `laid_out`)."""

    def __init__(self, closed, out_tree, sources, keys):
        self.closed = closed
        self.out_tree = out_tree
        self.sources = sources
        self.keys = keys  # the sources whose transposed copies `transposed` holds, in its order

    def __call__(self, z, args, transposed):
        inputs = jax.tree_util.tree_leaves((z, args))
        copies = dict(zip(self.keys, transposed))
        outputs = _evaluate(self.closed.jaxpr, self.closed.consts, inputs, self.sources, copies)
        return jax.tree_util.tree_unflatten(self.out_tree, outputs)


def laid_out(potential, z, potential_args=()):
    """`(potential, potential_args)` for a chain program's loop: unchanged, or where the model's dots
    read tall data matrices (see the module's docstring), a `TransposedDataPotential` and the
    arguments it takes, the transposed copies made here, before the loop.

    Example:
      >>> data = jnp.arange(12.0).reshape(6, 2)
      >>> potential = lambda z, x: jnp.sum((x @ z["w"]) ** 2)
      >>> new_potential, new_args = laid_out(potential, {"w": jnp.ones(2)}, (data,))
      >>> new_args[1][0].shape  # the data, transposed
      (2, 6)
      >>> float(new_potential({"w": jnp.ones(2)}, *new_args)) == float(potential({"w": jnp.ones(2)}, data))
      True
    """
    if jax.default_backend() != "cpu":
        return potential, potential_args
    closed, out_shape = jax.make_jaxpr(lambda z, args: potential(z, *args), return_shape=True)(z, potential_args)
    jaxpr = closed.jaxpr
    num_sites = len(jax.tree_util.tree_leaves(z))
    sources = {v: ("input", i) for i, v in enumerate(jaxpr.invars[num_sites:])}
    sources.update({v: ("const", i) for i, v in enumerate(jaxpr.constvars)})
    keys = sorted(_tall_sources(jaxpr, sources))
    if not keys:
        return potential, potential_args
    data = jax.tree_util.tree_leaves(potential_args)
    value_of = lambda key: data[key[1]] if key[0] == "input" else closed.consts[key[1]]
    transposed = tuple(jnp.transpose(value_of(key)) for key in keys)
    out_tree = jax.tree_util.tree_structure(out_shape)
    return TransposedDataPotential(closed, out_tree, sources, keys), (potential_args, transposed)
