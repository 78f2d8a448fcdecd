"""Threefry draws for the many small choices inside a transition, with a straight-line hash.

XLA on CPU receives JAX's threefry hash as a loop of five iterations (JAX lowers it that way on CPU
to keep compilation short), and its runtime dispatches each iteration of such a loop separately.
A NUTS leaf draws twice around a gradient that can cost a tenth of a microsecond, so those loops
were a large part of a leaf on small models. The same Threefry-2x32 hash written as plain array
operations fuses into the surrounding kernels. JAX's Philox keys are also loop-free, but do not
compile inside `shard_map`/`pmap` (jax 0.10), which the 'parallel' chain method uses.

Keys of `STRAIGHT_THREEFRY` work with every `jax.random` sampler (the momentum draws). The tree's
coin flips and uniforms come straight from `words(key, stream, counter)` on raw key data, one hash
per leaf or doubling, which keeps the compiled program small. All of it derives from the chain's
own key, so a run stays reproducible from the user's key.
"""

import math

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import define_prng_impl

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
# Counter high words that keep split, fold_in and random_bits streams apart (`words` callers use
# streams from 3 on).
_SPLIT, _FOLD_IN, _BITS = 0, 1, 2
# The stream of `normal` (`npr.infer.nuts` uses streams 3 to 5 of its own keys).
_NORMAL = 6


def threefry2x32(key, x0, x1):
    """The Threefry-2x32 hash (20 rounds, Salmon et al. 2011) of counters (x0, x1) under a key pair.

    Bit for bit the hash of `jax.extend.random.threefry_2x32`, without a loop.

    Example:
      >>> import jax
      >>> key = jnp.array([3, 7], jnp.uint32)
      >>> count = jnp.arange(4, dtype=jnp.uint32)
      >>> ours = jnp.concatenate(threefry2x32(key, count[:2], count[2:]))
      >>> bool(jnp.all(ours == jax.extend.random.threefry_2x32(key, count)))
      True
    """
    k0, k1 = key[0], key[1]
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for block in range(5):
        for rotation in _ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = (x1 << np.uint32(rotation)) | (x1 >> np.uint32(32 - rotation))
            x1 = x0 ^ x1
        x0 = x0 + ks[(block + 1) % 3]
        x1 = x1 + ks[(block + 2) % 3] + np.uint32(block + 1)
    return x0, x1


def words(key, stream, counter):
    """Two fresh 32-bit words (arrays shaped like `counter`) for `counter` in `stream` under raw key data.

    Example:
      >>> w0, w1 = words(jnp.array([0, 1], jnp.uint32), 3, jnp.arange(2))
      >>> w0.shape, w0.dtype
      ((2,), dtype('uint32'))
    """
    counter = jnp.asarray(counter).astype(jnp.uint32)
    return threefry2x32(key, jnp.full(counter.shape, stream, jnp.uint32), counter)


def uniform(word, dtype):
    """A uniform draw on [0, 1) from a 32-bit word (23 random mantissa bits, as `jax.random.uniform`).

    Example:
      >>> float(uniform(jnp.uint32(0), jnp.float32)), float(uniform(jnp.uint32(2**32 - 1), jnp.float32)) < 1
      (0.0, True)
    """
    mantissa = (word >> np.uint32(9)) | np.uint32(0x3F800000)
    return (lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0).astype(dtype)


def normal(key, shape, dtype=jnp.float32):
    """Standard normal draws shaped `shape` from raw key data, by the Box-Muller transform of `words`.

    Momenta are drawn once per transition, and on small models XLA's inverse error function, which
    `jax.random.normal` uses, was most of a transition: 10 draws took 1.1 us in a loop compiled as one
    function (2-core CPU), 0.09 us here. Each hash gives two uniforms, each pair of uniforms two draws;
    float64 draws take 52-bit uniforms from two words each.

    Example:
      >>> z = normal(jnp.array([0, 7], jnp.uint32), (100_000,))
      >>> z.shape, abs(float(z.mean())) < 0.02, abs(float(z.std()) - 1) < 0.02
      ((100000,), True, True)
    """
    size = math.prod(shape)
    pairs = (size + 1) // 2
    if jnp.dtype(dtype).itemsize == 8:
        w0, w1 = words(key, _NORMAL, lax.iota(jnp.uint32, 2 * pairs))
        bits = (w0.astype(jnp.uint64) << np.uint64(32)) | w1.astype(jnp.uint64)
        mantissa = (bits >> np.uint64(12)) | np.uint64(0x3FF0000000000000)
        u = lax.bitcast_convert_type(mantissa, jnp.float64) - 1.0
        u0, u1 = u[:pairs], u[pairs:]
    else:
        w0, w1 = words(key, _NORMAL, lax.iota(jnp.uint32, pairs))
        u0, u1 = uniform(w0, jnp.float32), uniform(w1, jnp.float32)
    radius = jnp.sqrt(-2.0 * jnp.log(1.0 - u0))  # 1 - u0 is in (0, 1]
    cos, sin = turn(u1)
    z = jnp.concatenate([radius * cos, radius * sin])[:size]
    return z.reshape(shape).astype(dtype)


def turn(u):
    """cos(2 pi u) and sin(2 pi u) for u in [0, 1), to within a unit in the last place of u's float.

    XLA on CPU calls the C library for `jnp.cos` and `jnp.sin`, one call per element (a quarter of
    a small model's transition with Box-Muller momenta); here the turn is split exactly into whole
    quarter turns and at most an eighth of a turn either way, which a short Taylor series covers.
    Ten momenta: 0.16 -> 0.09 us in a loop compiled as one function (2-core CPU).

    Example:
      >>> cos, sin = turn(jnp.arange(8) / 8)  # eighths of a turn
      >>> [round(float(c), 6) + 0.0 for c in cos[:3]], [round(float(s), 6) + 0.0 for s in sin[:3]]
      ([1.0, 0.707107, 0.0], [0.0, 0.707107, 1.0])
    """
    quarter = jnp.floor(4.0 * u + 0.5)  # the nearest whole quarter turn, 0 to 4
    x = (2.0 * np.pi) * (u - 0.25 * quarter)  # in [-pi/4, pi/4]; u - quarter / 4 is exact
    x2 = x * x
    terms = 6 if jnp.dtype(u.dtype).itemsize <= 4 else 10  # the first term left out is under half an ulp
    cos, sin = jnp.ones_like(x), jnp.ones_like(x)
    for k in range(terms - 1, 0, -1):  # Horner: cos x = 1 - x^2 / (1 * 2) (1 - x^2 / (3 * 4) (...))
        cos = 1.0 - x2 * (1.0 / ((2 * k - 1) * (2 * k))) * cos
        sin = 1.0 - x2 * (1.0 / ((2 * k) * (2 * k + 1))) * sin
    sin = x * sin
    # A quarter turn maps (cos, sin) to (-sin, cos): swap on odd quarters, then set the signs.
    odd = (quarter == 1.0) | (quarter == 3.0)
    cos, sin = jnp.where(odd, sin, cos), jnp.where(odd, cos, sin)
    cos = jnp.where((quarter == 1.0) | (quarter == 2.0), -cos, cos)
    sin = jnp.where((quarter == 2.0) | (quarter == 3.0), -sin, sin)
    return cos, sin


def _seed(seed):
    seed = jnp.asarray(seed)
    high = (seed.astype(jnp.uint64) >> 32).astype(jnp.uint32) if seed.dtype.itemsize == 8 else jnp.zeros((), jnp.uint32)
    return jnp.stack([high, seed.astype(jnp.uint32)])


def _split(key, shape):
    w0, w1 = words(key, _SPLIT, lax.iota(jnp.uint32, math.prod(shape)))
    return jnp.stack([w0, w1], axis=-1).reshape(tuple(shape) + (2,))


def _fold_in(key, data):
    w0, w1 = words(key, _FOLD_IN, data)
    return jnp.stack([w0, w1])


def _random_bits(key, bit_width, shape):
    w0, w1 = words(key, _BITS, lax.iota(jnp.uint32, math.prod(shape)))
    if bit_width == 64:
        bits = (w0.astype(jnp.uint64) << np.uint64(32)) | w1.astype(jnp.uint64)
    else:
        bits = w0.astype(jnp.dtype(f"uint{bit_width}"))
    return bits.reshape(shape)


STRAIGHT_THREEFRY = define_prng_impl(
    key_shape=(2,),
    seed=_seed,
    split=_split,
    random_bits=_random_bits,
    fold_in=_fold_in,
    name="npr_straight_threefry",
    tag="nst",
)
