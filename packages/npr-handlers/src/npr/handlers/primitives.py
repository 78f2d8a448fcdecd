"""The primitives of a probabilistic program and the handler stack that interprets them.

A primitive builds a message (a dict describing the site), passes it down the stack of active
handlers (innermost first) with `apply_stack`, and returns the message's final value. Distributions
are used only through their protocol: `sample(key, sample_shape)`, `log_prob(value)`,
`batch_shape`, `event_shape` and `expand(batch_shape)`.
"""

import threading
from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np


class _ThreadState(threading.local):
    """The only module-level mutable state of npr: the stack of active handlers, one per thread, so
    that models run in several threads at once never see each other's handlers."""

    def __init__(self):
        self.handlers = []


_THREAD = _ThreadState()

CondIndepStackFrame = namedtuple("CondIndepStackFrame", ["name", "dim", "size"])


class Messenger:
    """Base class of effect handlers: a callable wrapper and a context manager.

    Subclasses override `process_message` (before the value is computed, innermost handler first)
    and `postprocess_message` (after, outermost handler last).

    Example:
      >>> class Doubler(Messenger):
      ...     def postprocess_message(self, msg):
      ...         if msg["type"] == "deterministic":
      ...             msg["value"] = 2 * msg["value"]
      >>> Doubler(lambda: deterministic("x", 3))()
      6
    """

    def __init__(self, fn=None):
        if fn is not None and not callable(fn):
            raise ValueError(f"{type(self).__name__} expects a callable to wrap, got {type(fn).__name__}")
        self.fn = fn

    def __enter__(self):
        _THREAD.handlers.append(self)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        # Restore the stack below this handler even when an exception escapes from deeper handlers.
        if self in _THREAD.handlers:
            position = len(_THREAD.handlers) - 1 - _THREAD.handlers[::-1].index(self)
            del _THREAD.handlers[position:]

    def process_message(self, msg):
        pass

    def postprocess_message(self, msg):
        pass

    def __call__(self, *args, **kwargs):
        if self.fn is None:
            raise ValueError(f"{type(self).__name__} has no function to call: pass one, or use it as a context manager")
        with self:
            return self.fn(*args, **kwargs)


def _default_process(msg):
    if msg["type"] == "sample":
        key = msg["kwargs"].get("rng_key")
        if key is None:
            raise ValueError(
                f"site '{msg['name']}': a latent sample needs a PRNG key; run the model under "
                "seed(model, rng_seed=0) or pass rng_key= to sample()"
            )
        return msg["fn"].sample(key, msg["kwargs"].get("sample_shape", ()))
    if msg["type"] == "param":
        return msg["args"][0]
    if msg["type"] == "prng_key":
        return msg["kwargs"].get("rng_key")
    if msg["type"] == "plate":
        size, subsample_size = msg["args"]
        key = msg["kwargs"].get("rng_key")
        if key is None:
            raise ValueError(f"plate '{msg['name']}': subsampling needs a PRNG key; run the model under seed(...)")
        return jax.random.choice(key, size, (subsample_size,), replace=False)
    return msg["value"]


def apply_stack(msg):
    """Send `msg` through the active handlers and compute its value if none of them did.

    Handlers see the message innermost first; a handler that sets `msg["stop"]` hides it from the
    handlers outside. Postprocessing runs in the reverse order over the handlers that saw it.
    """
    seen = 0
    for handler in reversed(_THREAD.handlers):
        seen += 1
        handler.process_message(msg)
        if msg.get("stop"):
            break
    if msg["value"] is None:
        msg["value"] = _default_process(msg)
    for handler in _THREAD.handlers[len(_THREAD.handlers) - seen :]:
        handler.postprocess_message(msg)
    return msg


def _message(kind, name, **fields):
    msg = {
        "type": kind,
        "name": name,
        "fn": None,
        "args": (),
        "kwargs": {},
        "value": None,
        "scale": None,
        "mask": None,
        "is_observed": False,
        "cond_indep_stack": [],
        "infer": {},
        "stop": False,
    }
    msg.update(fields)
    return msg


def _is_concrete(x):
    return not isinstance(x, jax.core.Tracer)


def _check_observation(name, fn, obs):
    shape = np.shape(obs)
    if _is_concrete(obs):
        array = np.asarray(obs)
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
            raise ValueError(
                f"site '{name}': observed data contains {array[first]} at index {first}; remove it, or "
                "mask it out with handlers.mask / Distribution.mask"
            )
    batch_shape = tuple(getattr(fn, "batch_shape", ()))
    event_shape = tuple(getattr(fn, "event_shape", ()))
    if event_shape and shape[len(shape) - len(event_shape) :] != event_shape:
        raise ValueError(
            f"site '{name}': observed data of shape {shape} does not end in the event shape {event_shape} "
            f"of {type(fn).__name__} (batch shape {batch_shape})"
        )
    obs_batch = shape[: len(shape) - len(event_shape)]
    try:
        joint = jnp.broadcast_shapes(obs_batch, batch_shape)
    except ValueError:
        joint = None
    padded_obs = (1,) * (len(joint or ()) - len(obs_batch)) + obs_batch
    if joint is None or (joint != padded_obs and joint != batch_shape):
        raise ValueError(
            f"site '{name}': observed data of shape {shape} would broadcast against the batch shape "
            f"{batch_shape} + event shape {event_shape} of {type(fn).__name__} into {joint}; reshape the data "
            "(a trailing dim of size 1 is the usual cause)"
        )


def sample(name, fn, obs=None, rng_key=None, sample_shape=(), infer=None):
    """Draw from distribution `fn` at site `name`, or return `obs` when the site is observed.

    Args:
      name: the site's name, unique within one run of the model.
      fn: a distribution (anything with `sample(key, sample_shape)` and `log_prob(value)`).
      obs: observed value, or None for a latent site.
      rng_key: a PRNG key for a draw outside any `seed` handler.
      sample_shape: extra leading dims of the draw.
      infer: a dict of inference hints for this site.
    Returns:
      The site's value.
    Example:
      >>> import jax
      >>> class Coin:
      ...     batch_shape, event_shape = (), ()
      ...     def sample(self, key, sample_shape=()):
      ...         return jax.random.bernoulli(key, 0.5, sample_shape).astype(int)
      >>> int(sample("flip", Coin(), obs=1))
      1
    """
    if obs is not None:
        _check_observation(name, fn, obs)
    if not _THREAD.handlers:
        if obs is not None:
            return obs
        return _default_process(
            _message("sample", name, fn=fn, kwargs={"rng_key": rng_key, "sample_shape": sample_shape})
        )
    msg = _message(
        "sample",
        name,
        fn=fn,
        kwargs={"rng_key": rng_key, "sample_shape": tuple(sample_shape)},
        value=obs,
        is_observed=obs is not None,
        infer=dict(infer or {}),
    )
    return apply_stack(msg)["value"]


def param(name, init_value=None, constraint=None, event_dim=None):
    """An optimisable parameter: `init_value` unless a handler substitutes another value.

    Args:
      name: the site's name.
      init_value: the initial (constrained) value.
      constraint: an object with `__call__(x) -> bool array` recorded for inference (`biject_to`).
      event_dim: number of rightmost dims that belong to one parameter value.
    Returns:
      The parameter's value.
    Example:
      >>> float(param("w", 0.5))
      0.5
    """
    if constraint is not None and init_value is not None and _is_concrete(init_value):
        with jax.ensure_compile_time_eval():
            ok = constraint(jnp.asarray(init_value))
        if _is_concrete(ok) and not np.all(np.asarray(ok)):
            raise ValueError(
                f"site '{name}': the initial value of shape {np.shape(init_value)} violates its constraint "
                f"{constraint!r}"
            )
    if not _THREAD.handlers:
        return init_value
    msg = _message("param", name, args=(init_value,), kwargs={"constraint": constraint, "event_dim": event_dim})
    return apply_stack(msg)["value"]


def deterministic(name, value):
    """Record `value` as a deterministic site `name` and return it.

    Example:
      >>> deterministic("total", 3)
      3
    """
    if not _THREAD.handlers:
        return value
    return apply_stack(_message("deterministic", name, value=value))["value"]


class _UnitLogDensity:
    """A pseudo-distribution whose log density is a fixed array (used by `factor`)."""

    event_shape = ()

    def __init__(self, log_factor):
        self.log_factor = jnp.asarray(log_factor)
        self.batch_shape = tuple(self.log_factor.shape)

    def log_prob(self, value):
        return self.log_factor

    def expand(self, batch_shape):
        return _UnitLogDensity(jnp.broadcast_to(self.log_factor, batch_shape))

    def sample(self, key, sample_shape=()):
        return jnp.zeros(tuple(sample_shape) + self.batch_shape)


def factor(name, log_factor):
    """Add `log_factor` to the model's log density, as an observed site `name`.

    Example:
      >>> factor("penalty", -1.0) is None
      True
    """
    unit = _UnitLogDensity(log_factor)
    sample(name, unit, obs=jnp.zeros(unit.batch_shape))
    return None


def prng_key():
    """A fresh PRNG key from the enclosing `seed` handler (None outside one).

    Example:
      >>> prng_key() is None
      True
    """
    if not _THREAD.handlers:
        return None
    return apply_stack(_message("prng_key", None))["value"]


def _active_plates():
    return [handler for handler in _THREAD.handlers if isinstance(handler, plate)]


class plate(Messenger):
    """Conditionally independent copies of the sites inside: their batch shapes are broadcast so that
    dim `dim` has size `subsample_size or size`.

    Dims are allocated right to left for nested plates unless `dim` is given (a negative int). With
    `subsample_size`, a random subset of indices is drawn (entering the plate returns them) and log
    densities inside are scaled by `size / subsample_size`.

    Example:
      >>> with plate("data", 10) as idx:
      ...     pass
      >>> idx.shape
      (10,)
    """

    def __init__(self, name, size, subsample_size=None, dim=None):
        if int(size) < 0:
            raise ValueError(f"plate '{name}': size must be non-negative, got {size}")
        if subsample_size is not None and not 0 < int(subsample_size) <= int(size):
            raise ValueError(f"plate '{name}': subsample_size must be in 1..size={size}, got {subsample_size}")
        if dim is not None and dim >= 0:
            raise ValueError(f"plate '{name}': dim must be a negative integer, got {dim}")
        self.name, self.size = name, int(size)
        self.subsample_size = self.size if subsample_size is None else int(subsample_size)
        self._user_dim = dim
        self.dim = dim
        self._indices = None
        super().__init__()

    def __enter__(self):
        used = {p.dim for p in _active_plates()}
        if self._user_dim is None:
            dim = -1
            while dim in used:
                dim -= 1
            self.dim = dim
        elif self._user_dim in used:
            raise ValueError(f"plate '{self.name}': dim {self._user_dim} is already used by an enclosing plate")
        super().__enter__()
        try:
            indices = self._draw_indices()
        except BaseException:
            self.__exit__(None, None, None)  # __exit__ does not run when __enter__ raises
            raise
        self._indices = indices
        return indices

    def _draw_indices(self):
        msg = _message("plate", self.name, args=(self.size, self.subsample_size), kwargs={"rng_key": None})
        msg["value"] = None if self.subsample_size < self.size else jnp.arange(self.size)
        # Only the handlers outside this plate see its message.
        _THREAD.handlers.pop()
        try:
            if _THREAD.handlers:
                msg = apply_stack(msg)
            elif msg["value"] is None:
                msg["value"] = _default_process(msg)
        finally:
            _THREAD.handlers.append(self)
        return msg["value"]

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        frame = CondIndepStackFrame(self.name, self.dim, self.subsample_size)
        msg["cond_indep_stack"] = [frame] + list(msg["cond_indep_stack"])
        fn = msg["fn"]
        batch_shape = tuple(fn.batch_shape)
        ndim = max(len(batch_shape), -self.dim)
        padded = (1,) * (ndim - len(batch_shape)) + batch_shape
        current = padded[self.dim]
        if current not in (1, self.subsample_size):
            raise ValueError(
                f"site '{msg['name']}': batch shape {batch_shape} has size {current} at dim {self.dim}, "
                f"which conflicts with plate '{self.name}' of size {self.subsample_size}"
            )
        target = list(padded)
        target[self.dim] = self.subsample_size
        target = tuple(target)
        if target != batch_shape:
            msg["fn"] = fn.expand(target)
        if self.subsample_size < self.size:
            ratio = self.size / self.subsample_size
            msg["scale"] = ratio if msg["scale"] is None else msg["scale"] * ratio


def subsample(data, event_dim):
    """Index `data` by the subsample of every enclosing plate (a no-op for full plates).

    Args:
      data: array whose batch dims line up with the plates' dims.
      event_dim: number of rightmost dims of `data` that are not batch dims.
    Returns:
      The subsampled data.
    Example:
      >>> import jax.numpy as jnp
      >>> subsample(jnp.arange(3.0), event_dim=0).shape
      (3,)
    """
    data = jnp.asarray(data)
    for frame in _active_plates():
        if frame.subsample_size == frame.size:
            continue
        axis = data.ndim - event_dim + frame.dim
        if 0 <= axis < data.ndim and data.shape[axis] == frame.size:
            data = jnp.take(data, frame._indices, axis=axis)
    return data
