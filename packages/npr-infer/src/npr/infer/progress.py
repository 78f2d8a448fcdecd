"""tqdm progress bars for compiled loops.

Bars live in a registry keyed by an integer id. Loops run in chunks of iterations and the bar
moves between chunks (`run_in_chunks`) rather than through a host callback inside the compiled
iteration, which cost about 0.35 ms per firing (jax 0.10, CPU): 30-80% of a short run.
"""

import itertools
import os
import sys
import time
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm.auto import tqdm

# Seconds of work between two updates of a bar fed between compiled chunks.
UPDATE_SECONDS = 0.25
_BARS = {}
_IDS = itertools.count()


class FinalLine:
    """A bar drawn once, as it closes, in tqdm's layout: the last line of a run too short to watch.

    Creating and closing a tqdm bar next to a running program cost about 0.25 ms (2-core CPU), a
    tenth of a small model's 1000 draws, and formatting its line with `tqdm.format_meter` right after
    the run 0.1 ms (the interpreter's caches cold); this line about 20 us. In a notebook, where
    tqdm draws a widget, bars stay tqdm's.

    Example:
      >>> import io
      >>> out = io.StringIO()
      >>> bar = FinalLine(10, "sample", file=out)
      >>> bar.n = 10
      >>> bar.set_postfix_str("done", refresh=False)
      >>> bar.close()
      >>> line = out.getvalue()
      >>> line.startswith("sample: 100%|██████████| 10/10 [00:00<00:00, ") and line.endswith("it/s, done]\\n")
      True
    """

    def __init__(self, total, desc, file=None):
        self.total, self.n, self.postfix = total, 0, None
        self.file = file
        self.set_description_str(desc)
        self.started = time.perf_counter()

    def set_description_str(self, desc, refresh=True):
        # The parts known before the run ends are formatted now: after a short run, every microsecond
        # of host work adds to the run's time.
        self.desc = desc
        self._full = f"{desc}: 100%|{'█' * 10}| {self.total}/{self.total} ["

    def set_postfix_str(self, postfix, refresh=True):
        self.postfix = postfix

    def update(self, n=1):
        self.n += n

    def close(self):
        elapsed = time.perf_counter() - self.started
        rate = self.n / elapsed if elapsed > 0 else 0.0
        speed = f"{rate:.2f}it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.2f}s/it"
        minutes, seconds = divmod(int(elapsed), 60)
        if self.n == self.total:
            head = self._full
        else:
            filled = 10 * self.n // max(self.total, 1)
            head = (
                f"{self.desc}: {100 * self.n // max(self.total, 1):3d}%|{'█' * filled}{' ' * (10 - filled)}| "
                f"{self.n}/{self.total} ["
            )
        postfix = f", {self.postfix}" if self.postfix else ""
        file = sys.stderr if self.file is None else self.file
        file.write(f"{head}{minutes:02d}:{seconds:02d}<00:00, {speed}{postfix}]\n")
        file.flush()


_WIDGETS = any(cls.__module__.startswith("tqdm.notebook") for cls in tqdm.__mro__)


def open_bar(total, desc, phases=False, sampling=False, short=False):
    """A bar of `total` iterations; with `phases`, its label says "warmup" or "sample" as the loop
    goes (starting with "sample" when `sampling`). A `short` run's bar is drawn once, at its end
    (`FinalLine`)."""
    bar_id = next(_IDS)
    label = f"{'sample' if sampling else 'warmup'} {desc}" if phases else desc
    bar = FinalLine(total, label) if short and not _WIDGETS else tqdm(total=total, desc=label, leave=True)
    _BARS[bar_id] = (bar, desc if phases else None)
    return bar_id


def close_bar(bar_id, state=None, formatter=None):
    bar, _ = _BARS.pop(bar_id, (None, None))
    if bar is None:
        return
    bar.n = bar.total
    if state is not None and formatter is not None:
        bar.set_postfix_str(formatter(jax.tree_util.tree_map(np.asarray, state)), refresh=False)
    bar.close()  # a bar that is left draws its final state as it closes


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


def run_in_chunks(call, carry, start, stop, bar_id, describe, speed_key=None, offset=0):
    """Run iterations `[start, stop)` as `carry = call(a, b, carry)` on successive chunks, moving bar
    `bar_id` after each; chunks are sized from measured speed to give a few updates a second.

    `describe(carry, b)` returns `(state, formatter, sampling)` for the bar's postfix and label.
    With a hashable `speed_key` naming the compiled loop, the speed its last run measured sizes the
    first chunk (a run expected to last under `UPDATE_SECONDS` is then one call), and a call of no
    iterations, once, measures what a call costs besides its iterations: chunks are made long enough
    for that to stay under 1/`CALLS_SHARE` of the run. The bar counts iterations from `offset`.

    Example:
      >>> bar = open_bar(10, "count")
      >>> run_in_chunks(lambda a, b, c: c + (b - a), 0, 0, 10, bar, lambda c, b: (c, None, None))
      10
      >>> close_bar(bar)
    """
    size = _first_chunk(speed_key, start, stop)
    while start < stop:
        end = stop if stop - start - size < size // 4 else start + size  # no short last chunk
        began = time.perf_counter()
        carry = jax.block_until_ready(call(start, end, carry))
        seconds = time.perf_counter() - began
        state, formatter, sampling = describe(carry, end)
        _host_update(bar_id, end - 1 - offset, jax.tree_util.tree_map(np.asarray, state), formatter, sampling)
        per_call = _SPEEDS[speed_key].per_call if speed_key in _SPEEDS else None
        if per_call is None and speed_key is not None and end < stop:
            # A loop that prepares large data (`npr.infer.loop_data`) pays it at every call: covtype's
            # 100,000 x 54 matrix, ~7 ms a call.
            began = time.perf_counter()
            carry = jax.block_until_ready(call(end, end, carry))
            per_call = time.perf_counter() - began
        # The first call may include compilation: its estimate is pessimistic, the next one corrects it.
        speed = Speed(max(seconds - (per_call or 0.0), 0.0) / (end - start), per_call or 0.0)
        size = _chunk(speed)
        if speed_key is not None:
            _SPEEDS.pop(speed_key, None)
            if len(_SPEEDS) >= 256:  # keys may hold models' potentials: keep the latest
                del _SPEEDS[next(iter(_SPEEDS))]
            _SPEEDS[speed_key] = speed if per_call is not None else speed._replace(per_call=None)
        start = end
    return carry


def fill_bar(bar_id, carry, stop, describe):
    """Move bar `bar_id` to iteration `stop` once `carry`, the result of a call already dispatched
    for the whole loop, is ready; `describe` as in `run_in_chunks`. Returns the ready `carry`.

    Example:
      >>> bar = open_bar(10, "count")
      >>> fill_bar(bar, 10, 10, lambda c, b: (c, None, None))
      10
      >>> close_bar(bar)
    """
    carry = jax.block_until_ready(carry)
    state, formatter, sampling = describe(carry, stop)
    _host_update(bar_id, stop - 1, jax.tree_util.tree_map(np.asarray, state), formatter, sampling)
    return carry


def complete_bar(bar_id, carry, stop, describe, expected_seconds=None):
    """Close bar `bar_id` at iteration `stop` once `carry`, the result of a call already dispatched for
    the whole loop, is ready; `describe` as in `run_in_chunks`. One redraw, as the bar closes.

    A run expected to last under `POLL_SECONDS` from the bar's opening is waited for by polling
    (`await_by_polling`).

    Example:
      >>> complete_bar(open_bar(10, "count"), 10, 10, lambda c, b: (c, None, None))
    """
    state, formatter, sampling = describe(carry, stop)
    bar, phase_desc = _BARS.pop(bar_id, (None, None))
    if bar is None:
        return
    if phase_desc is not None and sampling is not None:
        bar.set_description_str(f"{'sample' if np.all(sampling) else 'warmup'} {phase_desc}", refresh=False)
    leaves, structure = jax.tree_util.tree_flatten(state)
    if expected_seconds is not None and expected_seconds < POLL_SECONDS:
        started = getattr(bar, "started", time.perf_counter())
        await_by_polling(leaves, started + 2 * expected_seconds + POLL_SECONDS)
    # Waits for the run (if not polled for): only for these arrays, each of which costs.
    state = jax.tree_util.tree_unflatten(structure, [np.asarray(leaf) for leaf in leaves])
    bar.n = bar.total
    if formatter is not None:
        bar.set_postfix_str(formatter(state), refresh=False)
    bar.close()


# Runs expected to end within this many seconds are waited for by polling (`complete_bar`).
POLL_SECONDS = 0.02
# Seconds between two readiness checks: checking often slowed the run it checked (eight schools).
POLL_INTERVAL = 20e-6
_yield_core = getattr(os, "sched_yield", lambda: time.sleep(0))


def await_by_polling(arrays, give_up_at):
    """Wait until `arrays` are ready, or until `time.perf_counter()` reaches `give_up_at`, by polling
    them and yielding the core to any thread that wants it in between.

    A thread that blocks until a run of a few milliseconds ends resumes later and slower than one that
    polls: on a 2-core VM, after eight schools' 2.7 ms run, the final line of a bar that blocked added
    120-145 us to the run and one that polled 0-85 us (medians of 200-300 paired runs, four times).
    Yielding, the poll leaves the core to the run's own threads when they need it.

    Example:
      >>> x = jax.numpy.ones(3) + 1
      >>> await_by_polling([x], time.perf_counter() + 1.0)
      >>> x.is_ready()
      True
    """
    pending = [array for array in arrays if isinstance(array, jax.Array)]
    while pending and not all(array.is_ready() for array in pending):
        now = time.perf_counter()
        if now >= give_up_at:
            return
        until = now + POLL_INTERVAL
        while time.perf_counter() < until:
            _yield_core()


class Speed(NamedTuple):
    """A compiled loop's seconds per iteration, and per call besides (None: not measured yet)."""

    per_iteration: float
    per_call: Any = None


# The speed of each keyed loop, measured by its last chunk (see `run_in_chunks`).
_SPEEDS = {}
# Calls cost at most this fraction of a chunk's time: chunks last at least this many calls' cost.
CALLS_SHARE = 50


def _first_chunk(speed_key, start, stop):
    """Iterations in the first call of `run_in_chunks`: from the loop's last measured speed, or a
    short probe when it has none."""
    known = _known_speed(speed_key)
    return max(1, (stop - start) // 50) if known is None else _chunk(known)


def _known_speed(speed_key):
    return _SPEEDS.get(speed_key) if speed_key is not None else None


def expected_seconds(speed_key, start, stop):
    """Seconds that one call of the loop `speed_key` over iterations [start, stop) is expected to
    last, from its last measured speed (None if it has none).

    Example:
      >>> expected_seconds("a loop never run", 0, 10) is None
      True
    """
    known = _known_speed(speed_key)
    if known is None:
        return None
    return known.per_iteration * (stop - start) + (known.per_call or 0.0)


def expects_one_call(speed_key, start, stop):
    """Whether `run_in_chunks` will run iterations [start, stop) of the loop `speed_key` as one call.

    Example:
      >>> expects_one_call("a loop never run", 0, 10)
      False
    """
    return _first_chunk(speed_key, start, stop) >= stop - start


def _chunk(speed):
    """Iterations per call at `speed`: a few bar updates a second, each call's own cost a small share.

    Example:
      >>> _chunk(Speed(0.001, 0.0)), _chunk(Speed(0.001, 0.01))
      (250, 490)
    """
    seconds = max(UPDATE_SECONDS, CALLS_SHARE * (speed.per_call or 0.0))
    return max(1, int((seconds - (speed.per_call or 0.0)) / max(speed.per_iteration, 1e-9)))


class HMCProgress(NamedTuple):
    num_steps: Any
    step_size: Any
    mean_accept_prob: Any


def hmc_progress(state):
    """The fields of an HMC state that its progress bar shows."""
    return HMCProgress(state.num_steps, state.step_size, state.mean_accept_prob)


def hmc_postfix(state):
    """The seed's postfix: steps of the last trajectory, step size, mean acceptance probability."""
    num_steps, step_size, accept = (np.ravel(np.asarray(x)) for x in hmc_progress(state))
    if num_steps.size == 1:
        return "%d steps of size %.2e. acc. prob=%.2f" % (num_steps[0], step_size[0], accept[0])  # noqa: UP031 (one format call)
    steps = ",".join(str(int(s)) for s in num_steps)
    accepts = ",".join(f"{a:.2f}" for a in accept)
    return f"steps {steps} | acc. prob {accepts}"
