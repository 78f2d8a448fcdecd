"""Shape and numerics helpers shared by the distribution families."""

import jax
import jax.numpy as jnp
import numpy as np


def sum_rightmost(x, dims):
    """Sum out the `dims` rightmost dims of `x` (nothing when dims <= 0)."""
    if dims <= 0:
        return x
    return jnp.sum(x, axis=tuple(range(-dims, 0)))


def vec_to_tril_matrix(vec, diagonal=0, size=None):
    """Fill the lower triangle (offset `diagonal`) of a square matrix row by row from `vec`."""
    rows, cols = np.tril_indices(size, diagonal)
    out = jnp.zeros(vec.shape[:-1] + (size, size), dtype=vec.dtype)
    return out.at[..., rows, cols].set(vec)


def promote_shapes(*args, shape=()):
    """Left-pad the dims of every argument to a common rank (broadcasting-ready)."""
    arrays = [jnp.asarray(a) if not isinstance(a, jax.Array) else a for a in args]
    ndim = max([len(shape)] + [a.ndim for a in arrays])
    return [a.reshape((1,) * (ndim - a.ndim) + a.shape) if a.ndim < ndim else a for a in arrays]


def as_float(x):
    """A float array of the default float dtype (float32, or float64 under jax_enable_x64)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def clamp_probs(probs):
    finfo = jnp.finfo(jnp.result_type(probs, float))
    return jnp.clip(probs, finfo.tiny, 1.0 - finfo.eps)


def probs_to_logits(probs, is_binary=False):
    probs = clamp_probs(probs)
    if is_binary:
        return jnp.log(probs) - jnp.log1p(-probs)
    return jnp.log(probs)


def logits_to_probs(logits, is_binary=False):
    if is_binary:
        return jax.nn.sigmoid(logits)
    return jax.nn.softmax(logits, axis=-1)


def broadcast_params(owner, event_dims=None, **params):
    """Convert parameters to float arrays, broadcast their batch parts, and return (arrays, batch_shape).

    `event_dims` maps a parameter name to its number of event dims (0 by default). Incompatible
    shapes raise a ValueError naming the distribution and every parameter's shape.
    """
    # Constants stay concrete inside jit, so that validation can still check them.
    with jax.ensure_compile_time_eval():
        return _broadcast_params(owner, event_dims, params)


def _broadcast_params(owner, event_dims, params):
    event_dims = event_dims or {}
    arrays = {name: as_float(value) for name, value in params.items()}
    batch_shapes = {
        name: a.shape[: a.ndim - event_dims.get(name, 0)] if event_dims.get(name, 0) else a.shape
        for name, a in arrays.items()
    }
    try:
        batch_shape = jnp.broadcast_shapes(*batch_shapes.values())
    except ValueError:
        described = ", ".join(f"{name} {shape}" for name, shape in batch_shapes.items())
        raise ValueError(f"{owner}: parameter shapes do not broadcast: {described}") from None
    out = {}
    for name, a in arrays.items():
        k = event_dims.get(name, 0)
        out[name] = jnp.broadcast_to(a, batch_shape + (a.shape[a.ndim - k :] if k else ()))
    return out, batch_shape
