"""Vectorized chains split into groups that run at the same time, one host thread per CPU core.

XLA compiles a small model's chain program into code that runs on one core, and running it
vectorized over more chains does not use more cores. The same compiled program called from several
host threads on disjoint groups of chains does: JAX releases the interpreter lock while a program
runs. 4 vectorized chains, 500 draws, 2 cores, sampling seconds of one program over all 4 chains
against two 2-chain calls at once (`nox -s bench`, before and after): eight schools 0.040 -> 0.025,
the seed's logistic regression 0.223 -> 0.109, kidiq 0.861 -> 0.246, garch11 0.124 -> 0.074.

Groups are equal in size, so one compiled program serves every group, and each chain's draws are
those of the same chain in one program over all chains, up to floating-point rounding of the
vectorized arithmetic.

With at most two chains per core, each chain is a group of its own, run by the one-chain program
without a chain axis (`one_chain_per_call`).
"""

import concurrent.futures
import os

import jax
import numpy as np

# Above this many array elements per gradient, XLA spreads a chain's own operations over the cores
# (its intra-op thread pool), and groups running at once would compete for them.
MAX_ELEMENTS = 1_000_000
_POOL = {}
# Executables compiled for one group, by program, shapes and the caller's JAX settings.
_EXECUTABLES = {}
MAX_EXECUTABLES = 64


def host_cores():
    """CPU cores this process may run on.

    Example:
      >>> host_cores() >= 1
      True
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def group_count(num_chains, elements, platform, cores=None):
    """How many groups of equal size `num_chains` vectorized chains run as at once on `platform`:
    the largest divisor of `num_chains` not above the cores, for gradients of at most MAX_ELEMENTS
    array elements on the CPU; 1 otherwise.

    Example:
      >>> group_count(4, 400, "cpu", cores=2), group_count(3, 400, "cpu", cores=2)
      (2, 1)
    """
    cores = host_cores() if cores is None else cores
    if platform != "cpu" or elements > MAX_ELEMENTS or num_chains < 2 or cores < 2:
        return 1
    return max(g for g in range(1, min(cores, num_chains) + 1) if num_chains % g == 0)


# Up to this many chains per core, one-chain programs run on the cores' threads beat vectorized
# groups: the one-chain program neither waits for the longest trajectory of a group (lockstep) nor
# keeps per-chain bookkeeping (asynchronous), and compiles sooner. 4 chains on 2 cores, 500 + 500,
# seconds of a continued run, vectorized groups -> one-chain calls: eight schools 33.3 -> 22.8 ms,
# garch11 90 -> 83, a two-component mixture 72 -> 67, the seed's logistic regression 131 -> 134,
# kidiq 213 -> 229; a new process to its draws: 0.3-0.5 s sooner on all five. With 4 chains per
# core, vectorizing wins (8 chains: logistic 181 against 258 ms; eight schools 44 against 44).
MAX_SINGLE_CHAINS_PER_CORE = 2


def one_chain_per_call(num_chains, elements, platform, cores=None):
    """Whether `num_chains` vectorized chains run as one-chain programs, up to one per core at once:
    on a CPU of several cores, for at most MAX_SINGLE_CHAINS_PER_CORE chains per core and gradients
    of at most MAX_ELEMENTS array elements.

    Example:
      >>> one_chain_per_call(4, 400, "cpu", cores=2), one_chain_per_call(8, 400, "cpu", cores=2)
      (True, False)
    """
    cores = host_cores() if cores is None else cores
    if platform != "cpu" or elements > MAX_ELEMENTS or num_chains < 2 or cores < 2:
        return False
    return num_chains <= MAX_SINGLE_CHAINS_PER_CORE * cores


# The groups' arrays are split and merged by NumPy on the host: compiled, the two moves cost a new
# process about 0.1 s of compilation (4 chains of eight schools), for copies that take well under a
# millisecond (a continued run of those chains: 33.8 ms against 33.6 ms compiled).


def _host(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def split(tree, num_groups, one_chain=False):
    """`tree`'s leaves split along their leading (chain) axis into `num_groups` equal trees; with
    `one_chain`, into its chains, without the chain axis.

    Example:
      >>> [t["x"].tolist() for t in split({"x": np.arange(4)}, 2)]
      [[0, 1], [2, 3]]
      >>> [t["x"].tolist() for t in split({"x": np.arange(2)}, 2, one_chain=True)]
      [0, 1]
    """
    host = _host(tree)
    if one_chain:
        groups = [jax.tree_util.tree_map(lambda x, i=i: x[i], host) for i in range(num_groups)]
    else:
        size = jax.tree_util.tree_leaves(host)[0].shape[0] // num_groups
        groups = [jax.tree_util.tree_map(lambda x, i=i: x[i * size : (i + 1) * size], host) for i in range(num_groups)]
    # On the device from this thread: the groups' threads would convert host data with their own settings.
    return jax.device_put(groups)


def merge(trees, one_chain=False):
    """The inverse of `split`: trees concatenated (with `one_chain`: stacked) leaf by leaf along their
    leading axis.

    Example:
      >>> merge(split({"x": np.arange(4)}, 2))["x"].tolist()
      [0, 1, 2, 3]
      >>> merge(split({"x": np.arange(2)}, 2, one_chain=True), one_chain=True)["x"].tolist()
      [0, 1]
    """
    join = np.stack if one_chain else np.concatenate
    return jax.device_put(jax.tree_util.tree_map(lambda *xs: join(xs), *_host(trees)))


def signature(tree):
    """The structure, shapes and dtypes of `tree`: what a compiled program is specialised on.

    Example:
      >>> signature({"x": np.zeros(2, np.float32)})[1]
      (((2,), 'float32'),)
    """
    leaves, structure = jax.tree_util.tree_flatten(tree)
    return structure, tuple((getattr(x, "shape", ()), str(getattr(x, "dtype", type(x)))) for x in leaves)


def thread_settings():
    # JAX settings a caller may set for its own thread only (`with jax.enable_x64(True):`): the
    # worker threads would not see them, so the program is compiled in the caller's thread.
    return jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision, jax.config.jax_debug_nans


def run_grouped(lower, call, num_groups, program_key, state, buffer, schedule, one_chain=False):
    """A vectorized chain program run on `num_groups` equal groups of chains, as many at once as
    there are cores, one thread each, its results merged back.

    `lower(state, buffer, schedule)` lowers the program for one group (in the caller's thread, once
    per `program_key`, group shapes and JAX settings) and `call(executable, state, buffer, schedule)`
    runs it. With `one_chain`, the groups are the chains, given to a one-chain program without their
    chain axis.
    """
    states, buffers = zip(*split((state, buffer), num_groups, one_chain))
    key = program_key, signature((states[0], buffers[0], schedule)), thread_settings()
    executable = _EXECUTABLES.get(key)
    if executable is None:
        executable = lower(states[0], buffers[0], schedule).compile()
        if len(_EXECUTABLES) >= MAX_EXECUTABLES:  # keys hold models' potentials: keep the latest
            del _EXECUTABLES[next(iter(_EXECUTABLES))]
        _EXECUTABLES[key] = executable
    workers = min(num_groups, host_cores())
    if workers not in _POOL:
        _POOL[workers] = concurrent.futures.ThreadPoolExecutor(workers, "npr-chains")
    run = lambda group: jax.block_until_ready(call(executable, *group, schedule))
    return merge(list(_POOL[workers].map(run, zip(states, buffers))), one_chain)
