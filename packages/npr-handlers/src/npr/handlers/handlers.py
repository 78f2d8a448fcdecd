"""Effect handlers: composable interpreters of the primitives.

Every handler wraps a callable (`trace(model)`) or works as a context manager (`with trace() as tr`).
Handlers nest freely; the innermost one sees each site first.
"""

import functools
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np

from npr.handlers.primitives import Messenger, _is_concrete

__all__ = [
    "block",
    "condition",
    "do",
    "infer_config",
    "lift",
    "mask",
    "replay",
    "scale",
    "seed",
    "substitute",
    "trace",
]


def _expected_shape(msg):
    fn = msg["fn"]
    if fn is None or not hasattr(fn, "batch_shape"):
        return None
    return tuple(msg["kwargs"].get("sample_shape", ())) + tuple(fn.batch_shape) + tuple(fn.event_shape)


def _check_value_shape(handler, msg, value):
    expected = _expected_shape(msg) if msg["type"] == "sample" else np.shape(msg["args"][0]) if msg["args"] else None
    if expected is None:
        return
    shape = np.shape(value)
    try:
        joint = jnp.broadcast_shapes(shape, expected)
    except ValueError:
        joint = None
    if joint != tuple(expected):
        raise ValueError(
            f"site '{msg['name']}': {handler} was given a value of shape {shape}, but the site has shape {expected}"
        )


class trace(Messenger):
    """Record every site into an OrderedDict of messages.

    Example:
      >>> from npr.handlers.primitives import deterministic
      >>> tr = trace(lambda: deterministic("x", 1)).get_trace()
      >>> list(tr), tr["x"]["value"]
      (['x'], 1)
    """

    def __enter__(self):
        super().__enter__()
        self.trace = OrderedDict()
        self._plate_sizes = {}
        return self.trace

    def postprocess_message(self, msg):
        name = msg["name"]
        if msg["type"] == "prng_key":
            return
        if msg["type"] == "plate":
            size = msg["args"]
            if self._plate_sizes.setdefault(name, size) != size:
                raise ValueError(
                    f"plate '{name}' is used with size {size[0]} (subsample {size[1]}) after size "
                    f"{self._plate_sizes[name][0]} (subsample {self._plate_sizes[name][1]})"
                )
            # Recorded once (with its subsample indices) so that replay can reuse the same mini-batch.
            self.trace.setdefault(name, msg.copy())
            return
        if name in self.trace:
            raise ValueError(f"site '{name}' appears twice in one run of the model: site names must be unique")
        self.trace[name] = msg.copy()

    def get_trace(self, *args, **kwargs):
        """Run the wrapped function and return its trace."""
        self(*args, **kwargs)
        return self.trace


class replay(Messenger):
    """Give latent sample sites the values recorded in `guide_trace` (and plates its subsamples).

    Example:
      >>> import jax
      >>> from npr.handlers.primitives import sample
      >>> class Flat:
      ...     batch_shape, event_shape = (), ()
      ...     def sample(self, key, sample_shape=()):
      ...         return jax.random.normal(key, sample_shape)
      >>> tr = trace(seed(lambda: sample("z", Flat()), 0)).get_trace()
      >>> bool(replay(lambda: sample("z", Flat()), tr)() == tr["z"]["value"])
      True
    """

    def __init__(self, fn=None, guide_trace=None, trace=None):
        super().__init__(fn)
        self.guide_trace = guide_trace if guide_trace is not None else trace
        if self.guide_trace is None:
            raise ValueError("replay needs a guide_trace to replay")

    def process_message(self, msg):
        if msg["type"] == "plate" and msg["name"] in self.guide_trace:
            if self.guide_trace[msg["name"]]["type"] == "plate":
                msg["value"] = self.guide_trace[msg["name"]]["value"]
            return
        if msg["type"] != "sample" or msg["is_observed"] or msg["name"] not in self.guide_trace:
            return
        site = self.guide_trace[msg["name"]]
        if site["type"] != "sample":
            raise ValueError(f"site '{msg['name']}': replayed from a {site['type']} site, expected a sample site")
        msg["value"] = site["value"]


class block(Messenger):
    """Hide sites from the handlers outside: those named in `hide`, not in `expose`, or where `hide_fn`.

    With no arguments every site is hidden.

    Example:
      >>> from npr.handlers.primitives import deterministic
      >>> def model():
      ...     deterministic("a", 1)
      ...     deterministic("b", 2)
      >>> list(trace(block(model, hide=["a"])).get_trace())
      ['b']
    """

    def __init__(self, fn=None, hide_fn=None, hide=None, expose=None):
        super().__init__(fn)
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif hide is not None:
            hidden = set(hide)
            self.hide_fn = lambda msg: msg["name"] in hidden
        elif expose is not None:
            exposed = set(expose)
            self.hide_fn = lambda msg: msg["name"] not in exposed
        else:
            self.hide_fn = lambda msg: True

    def process_message(self, msg):
        if self.hide_fn(msg):
            msg["stop"] = True


@functools.cache
def _key_data_shape(default_prng_impl):
    """Shape of the default PRNG's raw key data: (2,) for threefry, (4,) for rbg (cached per PRNG)."""
    return jax.eval_shape(lambda: jax.random.PRNGKey(0)).shape


def _as_key(rng_seed):
    if isinstance(rng_seed, (int, np.integer)):
        return jax.random.PRNGKey(int(rng_seed))
    key = jnp.asarray(rng_seed) if not isinstance(rng_seed, jax.Array) else rng_seed
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    data_shape = _key_data_shape(jax.config.jax_default_prng_impl)
    if key.dtype != jnp.uint32 or key.shape[key.ndim - len(data_shape) :] != data_shape:
        raise ValueError(
            f"seed expects an int, a PRNGKey (uint32 of shape {data_shape}) or a jax.random.key, got dtype "
            f"{key.dtype} and shape {key.shape}"
        )
    return key


class seed(Messenger):
    """Supply a fresh PRNG key to every latent sample site (and `prng_key()`/subsampling plates).

    The key is split afresh for each site; every call of the seeded function starts again from
    `rng_seed`, so a seeded model is a pure function of its key.

    Args:
      fn: the model.
      rng_seed: an int, a legacy `jax.random.PRNGKey` or a typed `jax.random.key`.
    Example:
      >>> import jax
      >>> from npr.handlers.primitives import prng_key
      >>> seed(prng_key, 0)().shape
      (2,)
    """

    def __init__(self, fn=None, rng_seed=None, rng=None):
        super().__init__(fn)
        rng_seed = rng_seed if rng_seed is not None else rng
        if rng_seed is None:
            raise ValueError("seed needs rng_seed: an int or a PRNG key")
        self._initial_key = _as_key(rng_seed)
        self.rng_key = self._initial_key

    def __enter__(self):
        self.rng_key = self._initial_key
        return super().__enter__()

    def process_message(self, msg):
        wants_key = (msg["type"] == "sample" and not msg["is_observed"] and msg["value"] is None) or msg["type"] in (
            "prng_key",
            "plate",
        )
        if wants_key and msg["kwargs"].get("rng_key") is None:
            self.rng_key, site_key = jax.random.split(self.rng_key)
            msg["kwargs"]["rng_key"] = site_key


class substitute(Messenger):
    """Replace the values of sample, param and deterministic sites by those in `param_map` (or `data`),
    or by `substitute_fn(msg)` when it returns something other than None.

    Example:
      >>> from npr.handlers.primitives import param
      >>> float(substitute(lambda: param("w", 0.5), {"w": 2.0})())
      2.0
    """

    def __init__(self, fn=None, param_map=None, substitute_fn=None, data=None):
        super().__init__(fn)
        self.param_map = param_map if param_map is not None else data
        self.substitute_fn = substitute_fn
        if self.param_map is None and substitute_fn is None:
            raise ValueError("substitute needs param_map (or data) or substitute_fn")

    def process_message(self, msg):
        if msg["type"] not in ("sample", "param", "deterministic") or msg["is_observed"]:
            return
        if self.substitute_fn is not None:
            value = self.substitute_fn(msg)
        else:
            value = self.param_map.get(msg["name"])
        if value is not None:
            _check_value_shape("substitute", msg, value)
            msg["value"] = value


class condition(Messenger):
    """Observe sample sites at the values in `data` (or `condition_fn(msg)`).

    Example:
      >>> from npr.handlers.primitives import sample
      >>> tr = trace(condition(lambda: sample("x", None), {"x": 1.0})).get_trace()
      >>> tr["x"]["is_observed"], tr["x"]["value"]
      (True, 1.0)
    """

    def __init__(self, fn=None, data=None, condition_fn=None):
        super().__init__(fn)
        self.data, self.condition_fn = data, condition_fn
        if data is None and condition_fn is None:
            raise ValueError("condition needs data or condition_fn")

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        value = self.condition_fn(msg) if self.condition_fn is not None else self.data.get(msg["name"])
        if value is not None:
            _check_value_shape("condition", msg, value)
            msg["value"] = value
            msg["is_observed"] = True


class do(Messenger):
    """Intervene: the sites in `data` take the given values and add nothing to the log density.

    Unlike `condition`, an intervened site is not evidence about its parents.

    Example:
      >>> from npr.handlers.primitives import sample
      >>> tr = trace(do(lambda: sample("x", None), {"x": 3.0})).get_trace()
      >>> tr["x"]["value"], tr["x"]["mask"], tr["x"]["is_observed"]
      (3.0, False, False)
    """

    def __init__(self, fn=None, data=None):
        super().__init__(fn)
        if data is None:
            raise ValueError("do needs data: a dict of site values")
        self.data = data

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["name"] not in self.data:
            return
        msg["value"] = self.data[msg["name"]]
        msg["mask"] = False
        msg["is_observed"] = False
        msg["infer"] = {**msg["infer"], "intervened": True}


class scale(Messenger):
    """Multiply the log density of the sites inside by `scale` (a positive number or array).

    Example:
      >>> from npr.handlers.primitives import sample
      >>> trace(scale(lambda: sample("x", None, obs=1.0), 2.0)).get_trace()["x"]["scale"]
      2.0
    """

    def __init__(self, fn=None, scale=1.0):
        super().__init__(fn)
        if _is_concrete(scale) and not np.all(np.asarray(scale) > 0):
            raise ValueError(f"scale must be positive, got {scale}")
        self.scale = scale

    def process_message(self, msg):
        if msg["type"] == "sample":
            msg["scale"] = self.scale if msg["scale"] is None else self.scale * msg["scale"]


class mask(Messenger):
    """Drop the log density of the sites inside where `mask` is False.

    Example:
      >>> from npr.handlers.primitives import sample
      >>> trace(mask(lambda: sample("x", None, obs=1.0), False)).get_trace()["x"]["mask"]
      False
    """

    def __init__(self, fn=None, mask=True):
        super().__init__(fn)
        self.mask = mask

    def process_message(self, msg):
        if msg["type"] == "sample":
            msg["mask"] = self.mask if msg["mask"] is None else msg["mask"] & self.mask


class lift(Messenger):
    """Turn param sites into sample sites drawn from `prior` (a distribution, or a dict of them).

    Example:
      >>> import jax
      >>> from npr.handlers.primitives import param
      >>> class Flat:
      ...     batch_shape, event_shape = (), ()
      ...     def sample(self, key, sample_shape=()):
      ...         return jax.random.normal(key, sample_shape)
      >>> tr = trace(seed(lift(lambda: param("w", 0.5), Flat()), 0)).get_trace()
      >>> tr["w"]["type"]
      'sample'
    """

    def __init__(self, fn=None, prior=None):
        super().__init__(fn)
        if prior is None:
            raise ValueError("lift needs a prior: a distribution or a dict of distributions")
        self.prior = prior

    def process_message(self, msg):
        if msg["type"] != "param":
            return
        prior = self.prior.get(msg["name"]) if isinstance(self.prior, dict) else self.prior
        if prior is None:
            return
        msg["type"] = "sample"
        msg["fn"] = prior
        msg["args"] = ()
        msg["kwargs"] = {"rng_key": None, "sample_shape": ()}
        msg["is_observed"] = False


class infer_config(Messenger):
    """Add `config_fn(msg)` (a dict) to the `infer` hints of each sample site.

    Example:
      >>> from npr.handlers.primitives import sample
      >>> tr = trace(infer_config(lambda: sample("x", None, obs=0.0), lambda m: {"enumerate": "parallel"})).get_trace()
      >>> tr["x"]["infer"]
      {'enumerate': 'parallel'}
    """

    def __init__(self, fn=None, config_fn=None):
        super().__init__(fn)
        if config_fn is None:
            raise ValueError("infer_config needs config_fn")
        self.config_fn = config_fn

    def process_message(self, msg):
        if msg["type"] == "sample":
            msg["infer"] = {**msg["infer"], **self.config_fn(msg)}
