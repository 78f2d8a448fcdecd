"""Sample/param primitives and composable effect handlers for probabilistic programs."""

from npr.handlers._version import __version__
from npr.handlers.handlers import (
    block,
    condition,
    do,
    infer_config,
    lift,
    mask,
    replay,
    scale,
    seed,
    substitute,
    trace,
)
from npr.handlers.primitives import (
    CondIndepStackFrame,
    Messenger,
    apply_stack,
    deterministic,
    factor,
    param,
    plate,
    prng_key,
    sample,
    subsample,
)

__all__ = [
    "CondIndepStackFrame",
    "Messenger",
    "__version__",
    "apply_stack",
    "block",
    "condition",
    "deterministic",
    "do",
    "factor",
    "infer_config",
    "lift",
    "mask",
    "param",
    "plate",
    "prng_key",
    "replay",
    "sample",
    "scale",
    "seed",
    "subsample",
    "substitute",
    "trace",
]
