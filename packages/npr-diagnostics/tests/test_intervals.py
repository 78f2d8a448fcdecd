import warnings

import arviz as az
import numpy as np
import pytest

from npr.diagnostics import hpdi

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.mark.parametrize("prob", [0.5, 0.89, 0.95])
@pytest.mark.parametrize("size", [10, 101, 4000])
def test_matches_arviz_hdi(prob, size):
    x = np.random.default_rng(size).gamma(2.0, size=size)
    np.testing.assert_allclose(hpdi(x, prob), az.hdi(x, hdi_prob=prob), rtol=1e-12)


def test_axis_and_batch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 500))
    along_last = hpdi(x, 0.8, axis=1)
    assert along_last.shape == (3, 2)
    for row in range(3):
        np.testing.assert_allclose(along_last[row], az.hdi(x[row], hdi_prob=0.8), rtol=1e-12)
    np.testing.assert_allclose(hpdi(x.T, 0.8, axis=0), along_last.T)


def test_narrowest_for_skewed_distribution():
    x = np.random.default_rng(2).exponential(size=100000)
    low, high = hpdi(x, 0.9)
    # For Exp(1) the 90% HPDI is [0, -log(0.1)].
    assert low < 0.01 and abs(high - np.log(10)) < 0.05


@pytest.mark.parametrize("prob", [0.0, 1.0, -0.2, 1.5])
def test_prob_outside_unit_interval(prob):
    with pytest.raises(ValueError, match=r"prob must lie in the open interval \(0, 1\)"):
        hpdi(np.arange(10.0), prob)
