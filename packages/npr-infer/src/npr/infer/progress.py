"""tqdm progress bars fed from inside compiled loops through host callbacks.

A compiled loop cannot hold a Python object, so bars live in a registry and the loop carries only
the bar's integer id. Callbacks fire every `every` iterations; a disabled bar adds no callback.
"""

import itertools
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm.auto import tqdm

_BARS = {}
_IDS = itertools.count()


def open_bar(total, desc, phases=False):
    """A bar of `total` iterations; with `phases`, its label says "warmup" or "sample" as the loop goes."""
    bar_id = next(_IDS)
    label = f"warmup {desc}" if phases else desc
    _BARS[bar_id] = (tqdm(total=total, desc=label, leave=True), desc if phases else None)
    return bar_id


def close_bar(bar_id, state=None, formatter=None):
    bar, _ = _BARS.pop(bar_id, (None, None))
    if bar is None:
        return
    bar.n = bar.total
    if state is not None and formatter is not None:
        bar.set_postfix_str(formatter(jax.tree_util.tree_map(np.asarray, state)), refresh=False)
    bar.refresh()
    bar.close()


def _host_update(bar_id, iteration, state, formatter, sampling=None):
    entry = _BARS.get(int(np.ravel(bar_id)[0]))
    if entry is None:
        return
    bar, phase_desc = entry
    if phase_desc is not None and sampling is not None:
        label = f"{'sample' if np.all(sampling) else 'warmup'} {phase_desc}"
        if bar.desc != label:
            bar.set_description_str(label, refresh=False)
    if formatter is not None:
        bar.set_postfix_str(formatter(state), refresh=False)
    # update() redraws at most every `mininterval` seconds: cheap however often it is called.
    bar.update(max(0, int(np.max(iteration)) + 1 - bar.n))


def report(bar_id, iteration, total, state, formatter=None, every=None):
    """Inside a compiled loop: update bar `bar_id` every `every` iterations (about 20 updates a run).

    Only `state` crosses to the host, so callers pass the few scalars the postfix shows.
    """
    every = every or max(1, total // 20)

    def callback(bar_id, iteration, state):
        _host_update(bar_id, iteration, state, formatter)

    def update():
        jax.debug.callback(callback, bar_id, iteration, state)

    jax.lax.cond((iteration + 1) % every == 0, update, lambda: None)


def update_bar(bar_id, iteration, sampling, state):
    """From the host, between compiled chunks: move bar `bar_id` to `iteration` with the HMC postfix."""
    _host_update(bar_id, iteration - 1, jax.tree_util.tree_map(np.asarray, state), hmc_postfix, sampling)


class HMCProgress(NamedTuple):
    num_steps: Any
    step_size: Any
    mean_accept_prob: Any


def hmc_progress(state):
    """The fields of an HMC state that its progress bar shows."""
    return HMCProgress(state.num_steps, state.step_size, state.mean_accept_prob)


def hmc_postfix(state):
    """The seed's postfix: steps of the last trajectory, step size, mean acceptance probability."""
    num_steps = np.ravel(np.asarray(state.num_steps))
    step_size = np.ravel(np.asarray(state.step_size))
    accept = np.ravel(np.asarray(state.mean_accept_prob))
    if num_steps.size == 1:
        return f"{int(num_steps[0])} steps of size {float(step_size[0]):.2e}. acc. prob={float(accept[0]):.2f}"
    steps = ",".join(str(int(s)) for s in num_steps)
    accepts = ",".join(f"{a:.2f}" for a in accept)
    return f"steps {steps} | acc. prob {accepts}"
