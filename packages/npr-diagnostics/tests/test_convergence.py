import subprocess
import sys
import warnings

import arviz as az
import numpy as np
import pytest

import npr.diagnostics as diag

warnings.filterwarnings("ignore", category=FutureWarning)
RTOL = 1e-8

SHAPES = [(4, 1000), (2, 57), (3, 8), (1, 300)]


def draws_for(kind, rng, shape, ar1):
    if kind == "iid":
        return rng.normal(size=shape)
    if kind == "ar1":
        return ar1(rng, 0.9, shape)
    if kind == "ties":  # rejections in MCMC repeat draws exactly; ranks must share ties
        return np.round(ar1(rng, 0.5, shape), 1)
    return rng.standard_cauchy(size=shape)


KINDS = ["iid", "ar1", "ties", "cauchy"]

ARVIZ_PAIRS = [
    ("ess_identity", diag.effective_sample_size, lambda x: az.ess(x, method="identity"), 1),
    ("ess_bulk", diag.ess_bulk, lambda x: az.ess(x, method="bulk"), 1),
    ("ess_tail", diag.ess_tail, lambda x: az.ess(x, method="tail"), 1),
    ("rhat_identity", diag.gelman_rubin, lambda x: az.rhat(x, method="identity"), 2),
    ("rhat_split", diag.split_gelman_rubin, lambda x: az.rhat(x, method="split"), 2),
    ("rhat_rank", diag.rank_rhat, lambda x: az.rhat(x, method="rank"), 2),
    ("mcse_mean", diag.mcse_mean, lambda x: az.mcse(x, method="mean"), 1),
    ("mcse_sd", diag.mcse_sd, lambda x: az.mcse(x, method="sd"), 1),
]


# Unsplit R-hat needs two chains: single-chain shapes are left out of those pairs (TestBadInput covers them).
CROSS_CHECKS = [
    pytest.param(ours, theirs, kind, shape, id=f"{name}-{kind}-{shape}")
    for name, ours, theirs, min_chains in ARVIZ_PAIRS
    for kind in KINDS
    for shape in SHAPES
    if shape[0] >= min_chains
]


@pytest.mark.parametrize("ours,theirs,kind,shape", CROSS_CHECKS)
def test_matches_arviz(ours, theirs, kind, shape, rng, ar1):
    x = draws_for(kind, rng, shape, ar1)
    expected = float(theirs(x))
    assert np.isclose(ours(x), expected, rtol=RTOL, atol=0), (ours(x), expected)


def test_vectorised_components_match_one_by_one(rng, ar1):
    x = ar1(rng, 0.7, (3, 200, 4, 2))
    for func in [diag.effective_sample_size, diag.ess_bulk, diag.ess_tail, diag.rank_rhat, diag.mcse_sd]:
        batched = func(x)
        assert batched.shape == (4, 2)
        for i, j in np.ndindex(4, 2):
            assert np.isclose(batched[i, j], func(x[:, :, i, j]), rtol=1e-12)


def test_e_bfmi_matches_arviz(rng, ar1):
    energy = ar1(rng, 0.6, (3, 500)) * 4.0 + 10.0
    expected = az.bfmi(energy)
    np.testing.assert_allclose(diag.e_bfmi(energy), expected, rtol=RTOL)


def test_mcse_quantile_close_to_arviz(rng, ar1):
    # Normal approximation of ArviZ's Beta interval: equal to O(1/ESS), not to 1e-8.
    x = ar1(rng, 0.5, (4, 2000))
    for prob in [0.05, 0.5, 0.9]:
        ours, theirs = diag.mcse_quantile(x, prob), az.mcse(x, method="quantile", prob=prob)
        assert abs(ours - theirs) / theirs < 0.15


def test_iid_normal_ess_close_to_number_of_draws(rng):
    ess = diag.effective_sample_size(rng.normal(size=(4, 5000, 20)))
    # ESS of iid draws fluctuates around n with sd ~ n * sqrt(2 / n) scale well below 10%.
    assert np.all(np.abs(ess / 20000 - 1) < 0.1), ess


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_ar1_ess_matches_theory(phi, rng, ar1):
    # For AR(1), the integrated autocorrelation time is (1 + phi) / (1 - phi).
    x = ar1(rng, phi, (4, 20000, 5))
    expected = 4 * 20000 * (1 - phi) / (1 + phi)
    ess = diag.effective_sample_size(x)
    assert np.all(np.abs(ess / expected - 1) < 0.15), (ess, expected)


def test_ar1_autocorrelation_matches_theory(rng, ar1):
    x = ar1(rng, 0.8, (1, 100000))[0]
    acf = diag.autocorrelation(x)
    np.testing.assert_allclose(acf[:5], 0.8 ** np.arange(5), atol=0.02)


def test_autocovariance_matches_direct_sum(rng):
    x = rng.normal(size=(37, 3))
    centered = x - x.mean(axis=0)
    direct = np.array([(centered[: 37 - k] * centered[k:]).sum(axis=0) / 37 for k in range(37)])
    np.testing.assert_allclose(diag.autocovariance(x, axis=0), direct, atol=1e-12)
    np.testing.assert_allclose(diag.autocovariance(x.T, axis=-1), direct.T, atol=1e-12)


def test_rhat_flags_disagreeing_chains(rng):
    x = rng.normal(size=(4, 500))
    x[0] += 3.0
    assert diag.gelman_rubin(x) > 1.1
    assert diag.split_gelman_rubin(x) > 1.1
    assert diag.rank_rhat(x) > 1.1


def test_rank_rhat_flags_scale_difference_that_split_rhat_misses(rng):
    x = rng.normal(size=(4, 2000))
    x[0] *= 5.0  # same mean, different scale: only the folded (tail) R-hat notices
    assert diag.split_gelman_rubin(x) < 1.02
    assert diag.rank_rhat(x) > 1.05


def test_accepts_jax_like_and_does_not_mutate(rng):
    x = rng.normal(size=(2, 100))
    copy = x.copy()
    diag.ess_bulk(x)
    diag.rank_rhat(x)
    np.testing.assert_array_equal(x, copy)
    assert np.isclose(diag.effective_sample_size(x.tolist()), diag.effective_sample_size(x))


class TestConstantChains:
    def test_identical_constant_chains(self):
        x = np.full((3, 50), 2.0)
        with pytest.warns(RuntimeWarning, match="constant"):
            assert diag.effective_sample_size(x) == 150
        with pytest.warns(RuntimeWarning, match="constant"):
            assert diag.gelman_rubin(x) == 1.0
        with pytest.warns(RuntimeWarning, match="constant"):
            assert diag.rank_rhat(x) == 1.0

    def test_chains_stuck_at_different_values(self):
        x = np.repeat(np.arange(3.0)[:, None], 50, axis=1)
        with pytest.warns(RuntimeWarning, match="constant"):
            assert diag.split_gelman_rubin(x) == np.inf


class TestBadInput:
    def test_gelman_rubin_needs_two_chains(self):
        with pytest.raises(ValueError, match=r"at least 2 chains"):
            diag.gelman_rubin(np.zeros((1, 10)))

    def test_gelman_rubin_needs_two_draws(self):
        with pytest.raises(ValueError, match=r"at least 2 draws"):
            diag.gelman_rubin(np.zeros((3, 1)))

    def test_split_gelman_rubin_needs_four_draws(self):
        with pytest.raises(ValueError, match=r"x.shape\[1\] >= 4"):
            diag.split_gelman_rubin(np.zeros((3, 3)))

    def test_one_dimensional_input(self):
        with pytest.raises(ValueError, match=r"\(num_chains, num_draws, \.\.\.\)"):
            diag.effective_sample_size(np.zeros(10))

    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_non_finite_draws_are_named(self, bad):
        x = np.zeros((2, 10, 3))
        x[1, 4, 2] = bad
        with pytest.raises(ValueError, match=r"must be finite.*\(1, 4, 2\)"):
            diag.ess_bulk(x)

    def test_e_bfmi_needs_two_draws(self):
        with pytest.raises(ValueError, match="at least 2 draws"):
            diag.e_bfmi(np.zeros((2, 1)))


def test_import_does_not_import_jax():
    code = "import sys, npr.diagnostics; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
