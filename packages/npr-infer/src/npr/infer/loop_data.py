"""Model data prepared once per chain program, before its loop, for the potential evaluated in it.

The potential is traced once; every value in it that depends on the model's data alone (arguments
and closed-over constants) is the same at every gradient evaluation of the loop. Three kinds of
them are computed before the loop instead:

- Tall data matrices in matrix-vector products. A regression's `data @ coefs`, data (N, K) with
  N > K, contracts the short trailing axis of every row, and its gradient, `data.T @ g`, sums the
  long axis across rows: XLA's CPU code for both runs at a fraction of the speed of the same
  products on the data stored (K, N). Value-and-grad of a least-squares potential in a compiled
  loop on a 2-core CPU, microseconds per gradient, (N, K) as stored -> transposed, 1 chain; 4
  vmapped chains: (3000, 3) 13.5 -> 3.4; 18.6 -> 8.0. (1000, 100) 12.9 -> 8.6; 59.0 -> 34.8.
  (20000, 5) 110 -> 17.5; 193 -> 117. (5000, 24) 16.3 -> 12.5; 57.2 -> 58.5. Wide data is slower
  transposed ((100, 1000): 8.0 -> 12.7) and so are some products with a matrix ((1000, 100) times
  (100, 10): 126 -> 144): both stay as they are.
- Triangular solves with a data matrix, as a multivariate normal's `scale_tril`: solved by
  multiplying with the triangle's inverse, computed before the loop. Value-and-grad of
  `|L^-1 x|^2 / 2`, microseconds per gradient, solve -> product: m = 3: 0.42 -> 0.03; 10: 0.53 ->
  0.08; 100: 5.48 -> 0.91; 1000: 514 -> 127. Rounding: for x = L z with z standard normal, the
  largest relative error of the solution over 50 draws, float32, cond(L) = 10: 3.1e-7 (solve) vs
  5.4e-7; cond(L) = 1000: 1.9e-5 vs 3.7e-5 (float64 reference). The chain programs check such
  models' U-turns one block per loop iteration (see `npr.infer.gradient_work.rows_in_loop`).
- Values computed from data alone by reductions, products and factorizations that the potential
  reads at each evaluation, such as the Cholesky factor of a covariance matrix given as data, the
  inverse of a data matrix or the log-determinant of a scale: stored when no larger than the
  largest data array.

Measured on CPUs only: on other backends, as for models with nothing to prepare, the potential is
left as it is.
"""

import math

import jax
import jax.numpy as jnp
from jax.extend import core as jax_core

# Primitives of nested jitted functions (`jnp.einsum`, a user's `jax.jit`), inlined so that the
# equations inside them see which of their operands are data.
_INLINED = ("jit", "pjit")
# Data-only values computed by these are stored before the loop: each does much more work than the
# size of its result (elementwise functions of data XLA fuses into the loop's kernels, where they
# cost about what reading a stored copy would).
_STORED_PRODUCERS = frozenset(
    "reduce_sum reduce_max reduce_min reduce_prod argmax argmin dot_general cholesky triangular_solve lu qr "
    "eigh svd custom_linear_solve cumsum cumlogsumexp cumprod cummax cummin".split()
)


def _bind(eqn, operands):
    bound = eqn.primitive.get_bind_params(eqn.params)
    # Older JAX versions return (subfunctions, parameters), newer ones the parameters alone.
    subfuns, params = bound if isinstance(bound, tuple) else ((), bound)
    with eqn.ctx.manager:
        outputs = eqn.primitive.bind(*subfuns, *operands, **params)
    return outputs if eqn.primitive.multiple_results else [outputs]


def _inlined(jaxpr, consts, inputs):
    """`jaxpr` evaluated on `inputs`, nested jitted functions evaluated equation by equation."""
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, inputs))
    read = lambda v: v.val if isinstance(v, jax_core.Literal) else env[v]
    for eqn in jaxpr.eqns:
        operands = [read(v) for v in eqn.invars]
        if eqn.primitive.name in _INLINED:
            inner = eqn.params["jaxpr"]
            outputs = _inlined(inner.jaxpr, inner.consts, operands)
        else:
            outputs = _bind(eqn, operands)
        env.update((v, x) for v, x in zip(eqn.outvars, outputs) if not isinstance(v, jax_core.DropVar))
    return [read(v) for v in jaxpr.outvars]


def _is_var(v):
    return isinstance(v, jax_core.Var) and not isinstance(v, jax_core.DropVar)


def _among(v, values):
    return isinstance(v, jax_core.Var) and v in values


def _tall_operand(eqn, data):
    """Which operand (0: lhs, 1: rhs) of dot_general `eqn` is a tall data matrix whose trailing axis
    is contracted with a vector that is not data, or None."""
    (contracting, batch) = eqn.params["dimension_numbers"]
    if any(len(b) for b in batch):
        return None
    for side in (0, 1):
        var, other = eqn.invars[side], eqn.invars[1 - side]
        if not _among(var, data) or not isinstance(other, jax_core.Var) or other in data:
            continue
        shape = var.aval.shape
        # A matrix times a vector: times a matrix, the transposed copy was as often slower as faster.
        vector = len(contracting[1 - side]) == len(other.aval.shape)
        if vector and len(shape) == 2 and tuple(contracting[side]) == (1,) and shape[0] > shape[1]:
            return side
    return None


def _solves_with_data(eqn, data):
    a, b = eqn.invars
    return _among(a, data) and not _among(b, data) and jnp.issubdtype(a.aval.dtype, jnp.floating)


def _plan(jaxpr, sources):
    """For the flat `jaxpr` whose data inputs are `sources`: the equations to rewrite ({index:
    ("transposed", side) | ("inverse",)}), the data-only values to store ([var]) and the indices of
    the equations the loop evaluates."""
    data = set(sources)  # values of data alone, constants included
    of_data = set(sources)  # of those, the ones that depend on some data
    producer = {}
    for index, eqn in enumerate(jaxpr.eqns):
        producer.update((v, index) for v in eqn.outvars)
        if not eqn.effects and all(isinstance(v, jax_core.Literal) or _among(v, data) for v in eqn.invars):
            data.update(eqn.outvars)
            if any(_among(v, of_data) for v in eqn.invars):
                of_data.update(eqn.outvars)
    rewrites, loop_eqns, wanted = {}, set(), []
    for index, eqn in enumerate(jaxpr.eqns):
        if all(v in data for v in eqn.outvars):
            continue
        loop_eqns.add(index)
        replaced = None
        if eqn.primitive.name == "dot_general" and (side := _tall_operand(eqn, of_data)) is not None:
            rewrites[index], replaced = ("transposed", side), eqn.invars[side]
        elif eqn.primitive.name == "triangular_solve" and _solves_with_data(eqn, of_data):
            rewrites[index], replaced = ("inverse",), eqn.invars[0]
        wanted += [v for v in eqn.invars if v is not replaced]
    wanted += jaxpr.outvars
    largest = max(math.prod(v.aval.shape) for v in sources)
    stored, seen = [], set()
    while wanted:
        v = wanted.pop()
        if not _is_var(v) or v in seen or v not in producer:
            continue
        seen.add(v)
        eqn = jaxpr.eqns[producer[v]]
        storable = v in of_data and eqn.primitive.name in _STORED_PRODUCERS and math.prod(v.aval.shape) <= largest
        if storable and len(eqn.outvars) == 1:
            stored.append(v)
        elif producer[v] not in loop_eqns:
            loop_eqns.add(producer[v])
            wanted += eqn.invars
    return rewrites, stored, loop_eqns


def _triangular_inverse(a, eqn):
    """The inverse of the triangle of `a` that `eqn` (a triangular_solve) solves with."""
    eye = jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)
    params = {**eqn.params, "left_side": True, "transpose_a": False, "conjugate_a": False}
    return eqn.primitive.bind(a, eye, **params)


def _solve_by_inverse(eqn, inverse, b):
    """`eqn`'s solution op(a)^-1 b (or b op(a)^-1) as a product with `inverse` = a^-1."""
    batch = tuple(range(inverse.ndim - 2))
    row, col = inverse.ndim - 2, inverse.ndim - 1
    if eqn.params["left_side"]:
        # x[i, j] = sum_k op(inv)[i, k] b[k, j]; op(inv)[i, k] = inv[k, i] when transposed.
        contract = ((row if eqn.params["transpose_a"] else col,), (b.ndim - 2,))
        return jax.lax.dot_general(inverse, b, (contract, (batch, batch)))
    # x[i, j] = sum_k b[i, k] op(inv)[k, j]
    contract = ((b.ndim - 1,), (col if eqn.params["transpose_a"] else row,))
    return jax.lax.dot_general(b, inverse, (contract, (batch, batch)))


def _transposed_dot(eqn, side, operands, transposed):
    (contracting, batch) = eqn.params["dimension_numbers"]
    contracting = list(contracting)
    contracting[side] = (0,)
    operands = list(operands)
    operands[side] = transposed
    # The output keeps its order: each operand's free axes come in the order they had.
    return eqn.primitive.bind(*operands, **{**eqn.params, "dimension_numbers": (tuple(contracting), batch)})


class PreparedDataPotential:
    """A potential `(z, args, prepared)` of the sites `z` and the model data `args`, evaluated with
    the `prepared` arrays that `prepare` computed from the data (see the module's docstring)."""

    def __init__(self, flat, consts, out_tree, plan):
        self.flat = flat  # the potential's jaxpr, nested jits inlined: inputs (consts, z, args)
        self.consts = consts
        self.out_tree = out_tree
        self.rewrites, self.stored, self.loop_eqns = plan

    @property
    def solves_by_inverse(self):
        """Whether the potential solves a triangular system of its data by a product with the inverse."""
        return any(rewrite[0] == "inverse" for rewrite in self.rewrites.values())

    def prepare(self, args):
        """The arrays computed from the data `args` before the loop: one per rewrite, then one per
        stored value."""
        jaxpr = self.flat.jaxpr
        num_sites = len(jaxpr.invars) - len(self.consts) - len(jax.tree_util.tree_leaves(args))
        data_vars = jaxpr.invars[: len(self.consts)] + jaxpr.invars[len(self.consts) + num_sites :]
        env = dict(zip(jaxpr.constvars, self.flat.consts))
        env.update(zip(data_vars, list(self.consts) + jax.tree_util.tree_leaves(args)))
        read = lambda v: v.val if isinstance(v, jax_core.Literal) else env[v]
        for eqn in jaxpr.eqns:
            if all(isinstance(v, jax_core.Literal) or v in env for v in eqn.invars) and not eqn.effects:
                env.update(zip(eqn.outvars, _bind(eqn, [read(v) for v in eqn.invars])))
        prepared = []
        for index, rewrite in sorted(self.rewrites.items()):
            eqn = jaxpr.eqns[index]
            if rewrite[0] == "transposed":
                prepared.append(jnp.transpose(env[eqn.invars[rewrite[1]]]))
            else:
                prepared.append(_triangular_inverse(env[eqn.invars[0]], eqn))
        return tuple(prepared) + tuple(env[v] for v in self.stored)

    def __call__(self, z, args, prepared):
        jaxpr = self.flat.jaxpr
        env = dict(zip(jaxpr.constvars, self.flat.consts))
        env.update(zip(jaxpr.invars, list(self.consts) + jax.tree_util.tree_leaves((z, args))))
        from_rewrites = dict(zip(sorted(self.rewrites), prepared))
        env.update(zip(self.stored, prepared[len(self.rewrites) :]))
        read = lambda v: v.val if isinstance(v, jax_core.Literal) else env[v]
        for index, eqn in enumerate(jaxpr.eqns):
            if index not in self.loop_eqns:
                continue
            rewrite = self.rewrites.get(index)
            # A rewritten equation's data operand is not evaluated in the loop: its copy replaces it.
            replaced = None if rewrite is None else eqn.invars[rewrite[1] if rewrite[0] == "transposed" else 0]
            operands = [None if v is replaced else read(v) for v in eqn.invars]
            if rewrite is None:
                outputs = _bind(eqn, operands)
            elif rewrite[0] == "transposed":
                outputs = [_transposed_dot(eqn, rewrite[1], operands, from_rewrites[index])]
            else:
                outputs = [_solve_by_inverse(eqn, from_rewrites[index], operands[1])]
            env.update((v, x) for v, x in zip(eqn.outvars, outputs) if not isinstance(v, jax_core.DropVar))
        return jax.tree_util.tree_unflatten(self.out_tree, [read(v) for v in jaxpr.outvars])


def prepared(potential, z, potential_args=()):
    """`(potential, potential_args)` for a chain program's loop: unchanged, or where the potential
    has values of its data to prepare (see the module's docstring), a `PreparedDataPotential` and
    the arguments it takes, the prepared arrays computed here, before the loop.

    Example:
      >>> data = jnp.arange(12.0).reshape(6, 2)
      >>> potential = lambda z, x: jnp.sum((x @ z["w"]) ** 2)
      >>> new_potential, new_args = prepared(potential, {"w": jnp.ones(2)}, (data,))
      >>> new_args[1][0].shape  # the data, transposed
      (2, 6)
      >>> float(new_potential({"w": jnp.ones(2)}, *new_args)) == float(potential({"w": jnp.ones(2)}, data))
      True
    """
    if jax.default_backend() != "cpu":
        return potential, potential_args
    closed, out_shape = jax.make_jaxpr(lambda z, args: potential(z, *args), return_shape=True)(z, potential_args)
    flat = jax.make_jaxpr(lambda consts, inputs: _inlined(closed.jaxpr, consts, inputs))(
        closed.consts, jax.tree_util.tree_leaves((z, potential_args))
    )
    jaxpr = flat.jaxpr
    num_consts, num_sites = len(closed.consts), len(jax.tree_util.tree_leaves(z))
    sources = jaxpr.invars[:num_consts] + jaxpr.invars[num_consts + num_sites :] + list(jaxpr.constvars)
    if not sources:
        return potential, potential_args
    plan = _plan(jaxpr, sources)
    if not plan[0] and not plan[1]:
        return potential, potential_args
    out_tree = jax.tree_util.tree_structure(out_shape)
    new_potential = PreparedDataPotential(flat, closed.consts, out_tree, plan)
    return new_potential, (potential_args, new_potential.prepare(potential_args))
