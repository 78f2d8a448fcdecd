"""summary() of 500 scalar parameters x 4 chains x 10,000 draws: npr.diagnostics against ArviZ."""

import time
import warnings

import numpy as np


def run(num_params=500, num_chains=4, num_draws=10_000, repeats=3):
    import arviz as az

    import npr.diagnostics as diag

    rng = np.random.default_rng(0)
    # AR(1) draws: autocorrelated like MCMC output.
    noise = rng.normal(size=(num_chains, num_draws, num_params)).astype(np.float64)
    draws = np.empty_like(noise)
    draws[:, 0] = noise[:, 0]
    for t in range(1, num_draws):
        draws[:, t] = 0.5 * draws[:, t - 1] + noise[:, t]
    samples = {"theta": draws}

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    ours = best(lambda: diag.summary(samples))
    data = az.from_dict(posterior=samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = best(lambda: az.summary(data))
    return {"npr_seconds": ours, "arviz_seconds": theirs, "speedup": theirs / ours}


if __name__ == "__main__":
    import sys

    result = run()
    lines = [
        "",
        "## Diagnostics: summary of 500 parameters x 4 chains x 10,000 draws",
        "",
        "`python benchmarks/diagnostics_summary.py` (best of 3, float64 AR(1) draws, the same array):",
        "",
        f"npr.diagnostics.summary {result['npr_seconds']:.2f} s; arviz.summary {result['arviz_seconds']:.2f} s; "
        f"npr is {result['speedup']:.2f}x as fast.",
    ]
    print("\n".join(lines))
    if len(sys.argv) > 2 and sys.argv[1] == "--append":
        with open(sys.argv[2], "a") as handle:
            handle.write("\n".join(lines) + "\n")
