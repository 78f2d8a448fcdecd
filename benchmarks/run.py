"""Side-by-side NUTS benchmarks: npr against NumPyro (and BlackJAX when installed), one process.

Usage: python benchmarks/run.py [--models a,b] [--warmup N] [--samples N] [--chains C] [--out FILE]
Writes a Markdown table (ratios first) to benchmarks/RESULTS.md by default.
"""

import argparse
import pathlib
import platform
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from models import MODELS

import npr.distributions as npr_dist
from npr.diagnostics import ess_bulk
from npr.handlers import factor as npr_factor
from npr.handlers import plate as npr_plate
from npr.handlers import sample as npr_sample
from npr.infer import MCMC, NUTS, compile_small_loops_as_one_kernel, initialize_model
from npr.infer.chain_groups import host_cores


def _min_ess(samples, num_chains):
    """Minimum bulk ESS over all components; a component stuck within a chain counts as ESS 0."""
    values = []
    for value in samples.values():
        value = np.asarray(value)
        value = value.reshape((num_chains, -1) + value.shape[1:])
        if np.any(np.ptp(value, axis=1) == 0):
            return 0.0
        values.append(np.min(np.atleast_1d(ess_bulk(value))))
    return float(min(values))


KEYS = {"value": 4}


def _seeds():
    """Seeds of the warmups whose sampling phases give ESS: 1 (the *second* run) and then 100, 101, ..."""
    return [1] + [100 + k for k in range(KEYS["value"] - 1)]


BAR_PAIRS = 200
BAR_SECONDS = 6.0


def bar_pairs(seconds):
    """Pairs of runs (bar on, bar off) that measure the bar's cost on runs of `seconds`."""
    return min(BAR_PAIRS, max(5, int(BAR_SECONDS / seconds)))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - start, out


def _best_of(repeats, fn):
    """The fastest of `repeats` calls of `fn`, which computes the same thing each time (same key)."""
    runs = [_timed(fn) for _ in range(repeats)]
    return min(seconds for seconds, _ in runs), runs[-1][1]


def _mean_over_keys(per_key):
    """Mean (min bulk ESS, gradient count, seconds) of the sampling phases, one per key: the ESS, the
    gradients and the seconds of a key all come from the same draws."""
    ess, grads, seconds = np.mean(per_key, axis=0)
    return {"ess": float(ess), "grads": float(grads), "sampling": float(seconds)}


CHAIN_METHOD = {"value": "vectorized"}


def bench_npr(model, args, warmup, samples, chains):
    mcmc = MCMC(
        NUTS(model),
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        chain_method=CHAIN_METHOD["value"],
        progress_bar=False,
    )

    def run(seed):
        mcmc.post_warmup_state = None
        mcmc.run(jax.random.PRNGKey(seed), *args)
        return mcmc.get_samples()

    first, _ = _timed(lambda: run(0))
    second, _ = _timed(lambda: run(1))
    per_key = []
    for seed in _seeds():
        if seed != 1:
            run(seed)
        warmed = mcmc.last_state
        key = jax.random.PRNGKey(seed + 1000)  # made outside the timing, as NumPyro's state and BlackJAX's key

        def continued(key=key, warmed=warmed):
            # Sampling only, from the warmed-up state, with the compiled program of the full runs.
            mcmc.post_warmup_state = warmed
            mcmc.run(key, *args, extra_fields=("num_steps",))
            return mcmc.get_samples()

        seconds, draws = _best_of(3, continued)  # this machine is noisy; every repeat draws the same
        steps = int(np.sum(np.asarray(mcmc.get_extra_fields()["num_steps"])))
        per_key.append((_min_ess(draws, chains), steps, seconds))
    # Progress bar cost: the same continued sampling with the bar on and off, in pairs (which goes first
    # alternates): the median of the pairs' differences over the median time without the bar. Runs of a
    # few milliseconds swing by a tenth here: up to BAR_PAIRS pairs, as many as fit BAR_SECONDS.
    mcmc.progress_bar = True
    continued()  # the bar learns how fast this loop runs
    times = {True: [], False: []}
    for repeat in range(bar_pairs(seconds)):
        for bar in (True, False) if repeat % 2 == 0 else (False, True):
            mcmc.progress_bar = bar
            times[bar].append(_timed(lambda: continued())[0])
    mcmc.progress_bar = False
    with_bar, without_bar = np.array(times[True]), np.array(times[False])
    return {
        "first": first,
        "second": second,
        **_mean_over_keys(per_key),
        "bar_cost": float(np.median(with_bar - without_bar) / np.median(without_bar)),
        "bar_base": float(np.median(without_bar)),
    }


def bench_numpyro(model, args, warmup, samples, chains):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC as NMCMC
    from numpyro.infer import NUTS as NNUTS

    api = (dist, numpyro.sample, numpyro.plate, numpyro.factor)
    nmodel = model(api)[0]

    def make(num_samples):
        return NMCMC(
            NNUTS(nmodel),
            num_warmup=warmup,
            num_samples=num_samples,
            num_chains=chains,
            chain_method=CHAIN_METHOD["value"],
            progress_bar=False,
        )

    mcmc = make(samples)

    def run(seed, sampler=mcmc):
        sampler.run(jax.random.PRNGKey(seed), *args, extra_fields=("num_steps",))
        return sampler.get_samples(group_by_chain=True), sampler.get_extra_fields(group_by_chain=True)["num_steps"]

    first, _ = _timed(lambda: run(0))
    second, _ = _timed(lambda: run(1))
    # NumPyro compiles on every run, and on small models its compilation time varies by seconds from
    # run to run, far more than sampling takes. Sampling alone: NumPyro's own transition (the kernel
    # its MCMC loops over) from the warmed-up state, in a loop compiled once here, the best of 3.
    per_key = []
    for seed in _seeds():
        # A fresh MCMC each time: NumPyro's vectorized kernel vmaps its transition once more on every init.
        warmer = make(samples)
        run(seed, warmer)
        draw = _numpyro_sampling(warmer, samples, chains)
        seconds, (z, steps) = _best_of(3, partial(draw, warmer.last_state, args))
        constrain = jax.jit(jax.vmap(warmer.sampler.postprocess_fn(args, {})))
        flat_z = jax.tree_util.tree_map(lambda v: v.reshape((-1,) + v.shape[2:]), z)
        per_key.append((_min_ess(constrain(flat_z), chains), int(np.sum(steps)), seconds))
        # Each NumPyro run leaves compiled programs behind; dozens of them exhaust the process's memory maps.
        jax.clear_caches()
    return {"first": first, "second": second, **_mean_over_keys(per_key)}


def _numpyro_sampling(warmed_mcmc, samples, chains):
    """A function (state, model args) -> (z, leapfrog steps) of `samples` transitions of
    `warmed_mcmc`'s kernel per chain (leading axes: chain, draw) in a compiled loop, chains vectorized
    or sequential as `CHAIN_METHOD` says, as NumPyro's MCMC runs them."""
    kernel = warmed_mcmc.sampler

    def one_chain(state, args):
        def step(state, _):
            state = kernel.sample(state, args, {})
            return state, (state.z, state.num_steps)

        return jax.lax.scan(step, state, None, length=samples)[1]

    single = jax.jit(one_chain)
    if chains == 1:
        return lambda state, args: jax.tree_util.tree_map(lambda v: v[None], single(state, args))
    if CHAIN_METHOD["value"] == "vectorized":  # a vectorized MCMC leaves its kernel's transition vmapped
        return lambda state, args: jax.tree_util.tree_map(lambda v: jnp.swapaxes(v, 0, 1), single(state, args))

    def sequential(state, args):
        runs = [single(jax.tree_util.tree_map(lambda v, c=c: v[c], state), args) for c in range(chains)]
        return jax.tree_util.tree_map(lambda *v: jnp.stack(v), *runs)

    return sequential


def bench_blackjax(model, args, warmup, samples, chains):
    import blackjax

    init_params, potential_fn, _ = initialize_model(jax.random.PRNGKey(0), model, *args)
    logdensity = lambda z: -potential_fn(z)
    warm = jax.jit(lambda key: _blackjax_warmup(blackjax, logdensity, init_params, key, warmup, chains))
    draw = jax.jit(lambda states, params, key: _blackjax_sampling(blackjax, logdensity, states, params, key, samples))

    def run(seed):
        return draw(*warm(jax.random.PRNGKey(seed)), jax.random.PRNGKey(seed + 1000))

    first, _ = _timed(lambda: run(0))
    second, _ = _timed(lambda: run(1))
    per_key = []
    for seed in _seeds():
        states, params = jax.block_until_ready(warm(jax.random.PRNGKey(seed)))
        seconds, (positions, steps) = _best_of(3, partial(draw, states, params, jax.random.PRNGKey(seed + 1000)))
        flat = {k: np.asarray(v).reshape((-1,) + np.asarray(v).shape[2:]) for k, v in positions.items()}
        per_key.append((_min_ess(flat, chains), int(np.sum(steps)), seconds))
    return {"first": first, "second": second, **_mean_over_keys(per_key)}


def _blackjax_warmup(blackjax, logdensity, init_params, key, warmup, chains):
    """Chains' states and tuned parameters after `window_adaptation` (leading axis: chain)."""

    def one_chain(key):
        adaptation = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=0.8)
        (state, params), _ = adaptation.run(key, init_params, num_steps=warmup)
        return state, params

    return jax.vmap(one_chain)(jax.random.split(key, chains))


def _blackjax_sampling(blackjax, logdensity, states, params, key, samples):
    """(positions, leapfrog steps) of `samples` NUTS transitions per chain (leading axes: chain, draw)."""

    def one_chain(state, params, key):
        kernel = blackjax.nuts(logdensity, **params).step

        def step(state, k):
            state, info = kernel(k, state)
            return state, (state.position, info.num_integration_steps)

        return jax.lax.scan(step, state, jax.random.split(key, samples))[1]

    chains = jax.tree_util.tree_leaves(states)[0].shape[0]
    return jax.vmap(one_chain)(states, params, jax.random.split(key, chains))


def _blackjax_chains(blackjax, logdensity, init_params, key, warmup, samples, chains):
    key_warm, key_sample = jax.random.split(key)
    states, params = _blackjax_warmup(blackjax, logdensity, init_params, key_warm, warmup, chains)
    return _blackjax_sampling(blackjax, logdensity, states, params, key_sample, samples)


def gradient_seconds(model, args):
    """Seconds of one value-and-grad of the potential, from a compiled loop of 2000 evaluations."""
    init_params, potential_fn, _ = initialize_model(jax.random.PRNGKey(0), model, *args)
    grad = jax.value_and_grad(potential_fn)

    @jax.jit
    def loop(params):
        def body(_, carry):
            value, g = grad(jax.tree_util.tree_map(lambda p, c: p + 1e-9 * c, params, carry))
            return g

        return jax.lax.fori_loop(0, 2000, body, params)

    loop(init_params)
    seconds, _ = _timed(lambda: loop(init_params))
    return seconds / 2000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="logistic_seed,eight_schools,correlated_gaussian_100,kidiq_interaction")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "RESULTS.md"))
    parser.add_argument("--append", action="store_true", help="append a section to --out instead of replacing it")
    parser.add_argument("--chain-method", default="vectorized", choices=["vectorized", "sequential"])
    parser.add_argument(
        "--keys", type=int, default=4, help="runs (keys) whose min bulk ESS and gradient counts are averaged"
    )
    parser.add_argument(
        "--small-loops",
        action="store_true",
        help="call npr.infer.compile_small_loops_as_one_kernel() first (every sampler in the process gets it)",
    )
    options = parser.parse_args()
    if options.small_loops:
        compile_small_loops_as_one_kernel()
    CHAIN_METHOD["value"] = options.chain_method
    KEYS["value"] = max(1, options.keys)
    peers = {"npr": bench_npr, "numpyro": bench_numpyro}
    try:
        import blackjax  # noqa: F401

        peers["blackjax"] = bench_blackjax
    except ImportError:
        pass
    rows = []
    for name in options.models.split(","):
        build = MODELS[name]
        model, args = build((npr_dist, npr_sample, npr_plate, npr_factor))
        args = tuple(jnp.asarray(a) for a in args)
        t_grad = gradient_seconds(model, args)
        results = {}
        for peer, bench in peers.items():
            target = build if peer == "numpyro" else model
            results[peer] = bench(target, args, options.warmup, options.samples, options.chains)
            r = results[peer]
            print(
                f"{name:>24} {peer:>9}: first {r['first']:.2f}s second {r['second']:.2f}s "
                f"sampling {r['sampling']:.3f}s min ESS {r['ess']:.0f} grads {r['grads']:.0f}",
                flush=True,
            )
        rows.append((name, t_grad, results))
    write(rows, options, peers)
    costs = ", ".join(
        f"{name} {100 * results['npr']['bar_cost']:+.1f}% of {1000 * results['npr']['bar_base']:.0f} ms"
        for name, _, results in rows
    )
    how = (
        f"continued runs in pairs, alternating which goes first; median of the pairs' differences over the "
        f"median run without the bar; {BAR_SECONDS:.0f} s of runs per model, 5 to {BAR_PAIRS} pairs"
    )
    note = f"\nnpr progress bar cost (sampling with the bar on vs off, {how}): {costs}\n"
    print(note)
    with open(options.out, "a") as handle:
        handle.write(note)


def write(rows, options, peers):
    lines = [
        "# Benchmark results"
        if not options.append
        else f"\n## NUTS, {options.chains} chains ({options.chain_method})"
        + (", small loops as one kernel" if options.small_loops else ""),
        "",
        f"Command: `python benchmarks/run.py --models {options.models} --warmup {options.warmup} "
        f"--samples {options.samples} --chains {options.chains} --chain-method {options.chain_method} "
        f"--keys {options.keys}{' --small-loops' if options.small_loops else ''}` "
        "(run by `nox -s bench`).",
        f"Machine: {platform.machine()}, {jax.device_count()} JAX device(s) ({jax.devices()[0].platform}), "
        f"jax {jax.__version__}; float32; npr and NumPyro chains {options.chain_method} (BlackJAX: vmapped); "
        "all samplers in one process."
        + (
            f" {host_cores()} CPU cores: npr's vectorized chains run on them at once, up to two chains per "
            "core as one-chain programs, more as equal groups of the same vectorized program "
            "(`npr.infer.chain_groups`); NumPyro's and BlackJAX's vectorized chains are one call."
            if options.chains > 1 and options.chain_method == "vectorized"
            else ""
        )
        + (
            " `compile_small_loops_as_one_kernel()` was called first, so XLA compiles every sampler's small "
            "loops as one function."
            if options.small_loops
            else ""
        ),
        "",
        "Columns: *first*: the first run in this process, warmup + sampling with compilation (npr runs "
        "first on each model and alone pays JAX's start-up on the first one; the fresh-process tables "
        "below give time to first draws); *second*: the same run again with another key (npr and BlackJAX "
        "reuse their compiled programs; NumPyro recompiles). The next columns are means over "
        f"{options.keys} key(s), each a warmup followed by a sampling phase alone, net of compilation, "
        "whose seconds, draws and gradient count are those of the same sampling run (npr and BlackJAX: "
        "a compiled sampling run continued from the warmed-up state, the best of 3 identical repeats; "
        "NumPyro, whose MCMC compiles on every run: its kernel's transition from the warmed-up state of "
        "its MCMC, in a sampling loop compiled once by the benchmark, vmapped over chains when vectorized, "
        "the best of 3): *sampling* (s); min bulk ESS: the minimum "
        "bulk ESS over all parameters (one key's figure swings by a factor of 2-4 on some models); "
        "ESS/s: mean ESS / mean *sampling*; grads: leapfrog steps of a sampling phase; "
        "overhead: *sampling* / (grads x one compiled value-and-grad).",
        "",
        "| model | sampler | first (s) | second (s) | sampling (s) | min bulk ESS | ESS/s | ESS/s vs NumPyro | "
        "grads/s | ESS per 1000 grads | overhead x |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t_grad, results in rows:
        base = results["numpyro"]["ess"] / results["numpyro"]["sampling"]
        for peer in peers:
            r = results[peer]
            ess_s = r["ess"] / r["sampling"]
            lines.append(
                f"| {name} | {peer} | {r['first']:.2f} | {r['second']:.2f} | {r['sampling']:.3f} | {r['ess']:.0f} | "
                f"{ess_s:.0f} | {ess_s / base:.2f} | {r['grads'] / r['sampling']:.0f} | "
                f"{1000 * r['ess'] / r['grads']:.1f} | {r['sampling'] / (r['grads'] * t_grad):.1f} |"
            )
    if options.append:
        with open(options.out, "a") as handle:
            handle.write("\n".join(lines) + "\n")
    else:
        pathlib.Path(options.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
