import numpy as np
import pytest


def make_ar1(rng, phi, shape):
    """AR(1) chains x_t = phi x_{t-1} + e_t started in stationarity (unit marginal variance)."""
    num_chains, num_draws = shape[:2]
    noise = rng.normal(size=shape) * np.sqrt(1 - phi**2)
    x = np.empty(shape)
    x[:, 0] = rng.normal(size=(num_chains,) + shape[2:])
    for t in range(1, num_draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


@pytest.fixture
def rng():
    return np.random.default_rng(20190601)


@pytest.fixture
def ar1():
    return make_ar1
