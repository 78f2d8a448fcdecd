"""The example scripts run end to end (with fewer iterations than their defaults)."""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples"))

import logistic_regression
import vae


def test_logistic_regression_example(capsys):
    samples = logistic_regression.main(num_points=500, num_warmup=200, num_samples=200)
    assert "coefs[2]" in capsys.readouterr().out
    np.testing.assert_allclose(np.asarray(samples["coefs"]).mean(0), [1.0, 2.0, 3.0], atol=0.6)


def test_vae_example_learns():
    result = vae.main(steps=600)
    losses = np.asarray(result.losses)
    assert losses[-50:].mean() < 0.8 * losses[:50].mean()
