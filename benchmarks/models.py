"""Benchmark models written once against a (dist, sample, plate) triple, so npr and NumPyro run the
same model code. Data are generated or read from the posterior database in ../shared/posteriordb."""

import json
import pathlib

import numpy as np

POSTERIORDB = pathlib.Path(__file__).resolve().parents[2] / "shared" / "posteriordb"


def _posteriordb_data(name):
    path = POSTERIORDB / "data" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def logistic_seed(api):
    dist, sample, plate = api
    rng = np.random.default_rng(2)
    data = rng.normal(size=(3000, 3)).astype(np.float32)
    labels = (rng.uniform(size=3000) < 1 / (1 + np.exp(-(data @ np.array([1.0, 2.0, 3.0]))))).astype(np.float32)

    def model(data, labels):
        coefs = sample("coefs", dist.Normal(np.zeros(3, np.float32), np.ones(3, np.float32)))
        intercept = sample("intercept", dist.Normal(0.0, 10.0))
        with plate("n", data.shape[0]):
            sample("y", dist.Bernoulli(logits=data @ coefs + intercept), obs=labels)

    return model, (data, labels)


def covtype_synthetic(api):
    dist, sample, plate = api
    rng = np.random.default_rng(3)
    data = rng.normal(size=(100_000, 54)).astype(np.float32)
    true = rng.normal(0, 0.5, 54).astype(np.float32)
    labels = (rng.uniform(size=100_000) < 1 / (1 + np.exp(-(data @ true)))).astype(np.float32)

    def model(data, labels):
        coefs = sample("coefs", dist.Normal(np.zeros(54, np.float32), np.ones(54, np.float32)))
        with plate("n", data.shape[0]):
            sample("y", dist.Bernoulli(logits=data @ coefs), obs=labels)

    return model, (data, labels)


def eight_schools(api):
    dist, sample, plate = api
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], np.float32)
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], np.float32)

    def model(y, sigma):
        mu = sample("mu", dist.Normal(0.0, 5.0))
        tau = sample("tau", dist.HalfCauchy(5.0))
        with plate("J", 8):
            theta_tilde = sample("theta_tilde", dist.Normal(0.0, 1.0))
            sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)

    return model, (y, sigma)


def correlated_gaussian_100(api):
    dist, sample, plate = api
    rng = np.random.default_rng(4)
    a = rng.normal(size=(100, 100))
    cov = (a @ a.T / 100 + 0.05 * np.eye(100)).astype(np.float32)
    tril = np.linalg.cholesky(cov).astype(np.float32)

    def model(tril):
        sample("x", dist.MultivariateNormal(np.zeros(100, np.float32), scale_tril=tril))

    return model, (tril,)


def kidiq_interaction(api):
    dist, sample, plate = api
    d = _posteriordb_data("kidiq-kidscore_interaction")
    kid = np.asarray(d["kid_score"], np.float32)
    hs = np.asarray(d["mom_hs"], np.float32)
    iq = np.asarray(d["mom_iq"], np.float32)

    def model(kid, hs, iq):
        beta = sample("beta", dist.ImproperUniform(dist.constraints.real, (4,), ()))  # Stan's flat prior
        sigma = sample("sigma", dist.HalfCauchy(2.5))
        mean = beta[0] + beta[1] * hs + beta[2] * iq + beta[3] * hs * iq
        with plate("n", kid.shape[0]):
            sample("kid", dist.Normal(mean, sigma), obs=kid)

    return model, (kid, hs, iq)


MODELS = {
    "logistic_seed": logistic_seed,
    "eight_schools": eight_schools,
    "correlated_gaussian_100": correlated_gaussian_100,
    "kidiq_interaction": kidiq_interaction,
    "covtype_synthetic": covtype_synthetic,
}
