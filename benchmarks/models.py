"""Benchmark models written once against a (dist, sample, plate, factor) tuple, so npr and NumPyro run
the same model code. Data are generated or read from the posterior database in ../shared/posteriordb;
those models follow the posteriordb Stan programs, flat priors included."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

POSTERIORDB = pathlib.Path(__file__).resolve().parents[2] / "shared" / "posteriordb"


def _posteriordb_data(name):
    path = POSTERIORDB / "data" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def logistic_seed(api):
    dist, sample, plate, _ = api
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
    dist, sample, plate, _ = api
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
    dist, sample, plate, _ = api
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
    dist, sample, plate, _ = api
    rng = np.random.default_rng(4)
    a = rng.normal(size=(100, 100))
    cov = (a @ a.T / 100 + 0.05 * np.eye(100)).astype(np.float32)
    tril = np.linalg.cholesky(cov).astype(np.float32)

    def model(tril):
        sample("x", dist.MultivariateNormal(np.zeros(100, np.float32), scale_tril=tril))

    return model, (tril,)


def kidiq_interaction(api):
    dist, sample, plate, _ = api
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


def garch11(api):
    dist, sample, plate, factor = api
    d = _posteriordb_data("garch-garch11")
    y = np.asarray(d["y"], np.float32)
    sigma1 = np.float32(d["sigma1"])

    def model(y):
        mu = sample("mu", dist.ImproperUniform(dist.constraints.real, (), ()))
        alpha0 = sample("alpha0", dist.ImproperUniform(dist.constraints.positive, (), ()))
        alpha1 = sample("alpha1", dist.Uniform(0.0, 1.0))
        # beta1 is flat on (0, 1 - alpha1): a unit-interval fraction and the Jacobian 1 - alpha1.
        fraction = sample("beta1_fraction", dist.Uniform(0.0, 1.0))
        beta1 = (1.0 - alpha1) * fraction
        factor("beta1_jacobian", jnp.log1p(-alpha1))

        def step(sigma_prev, y_prev):
            sigma_t = jnp.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * sigma_prev**2)
            return sigma_t, sigma_t

        _, rest = jax.lax.scan(step, jnp.asarray(sigma1), y[:-1])
        with plate("T", y.shape[0]):
            sample("y", dist.Normal(mu, jnp.concatenate([jnp.asarray([sigma1]), rest])), obs=y)

    return model, (y,)


def low_dim_gauss_mix(api):
    dist, sample, plate, factor = api
    y = np.asarray(_posteriordb_data("low_dim_gauss_mix-low_dim_gauss_mix")["y"], np.float32)

    def model(y):
        mu = sample("mu", dist.ImproperUniform(dist.constraints.ordered_vector, (), (2,)))
        factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
        sigma = sample("sigma", dist.HalfNormal(2.0).expand((2,)).to_event(1))
        theta = sample("theta", dist.Beta(5.0, 5.0))
        weights = jnp.stack([jnp.log(theta), jnp.log1p(-theta)])
        component = weights + dist.Normal(mu, sigma).log_prob(y[:, None])
        factor("likelihood", jax.scipy.special.logsumexp(component, axis=-1).sum())

    return model, (y,)


def arma11(api):
    dist, sample, plate, factor = api
    y = np.asarray(_posteriordb_data("arma-arma11")["y"], np.float32)

    def model(y):
        mu = sample("mu", dist.Normal(0.0, 10.0))
        phi = sample("phi", dist.ImproperUniform(dist.constraints.interval(-1.0, 1.0), (), ()))
        theta = sample("theta", dist.ImproperUniform(dist.constraints.interval(-1.0, 1.0), (), ()))
        factor("phi_theta_prior", dist.Normal(0.0, 2.0).log_prob(phi) + dist.Normal(0.0, 2.0).log_prob(theta))
        sigma = sample("sigma", dist.HalfCauchy(5.0))

        def step(err_prev, pair):
            y_prev, y_t = pair
            err = y_t - (mu + phi * y_prev + theta * err_prev)
            return err, err

        err1 = y[0] - (mu + phi * mu)
        _, rest = jax.lax.scan(step, err1, (y[:-1], y[1:]))
        factor("errors", dist.Normal(0.0, sigma).log_prob(jnp.concatenate([err1[None], rest])).sum())

    return model, (y,)


def kilpisjarvi(api):
    dist, sample, plate, factor = api
    d = _posteriordb_data("kilpisjarvi_mod-kilpisjarvi")
    x = np.asarray(d["x"], np.float32)
    y = np.asarray(d["y"], np.float32)
    priors = tuple(np.float32(d[k]) for k in ("pmualpha", "psalpha", "pmubeta", "psbeta"))

    def model(x, y):
        # Years are not centred: alpha and beta are almost perfectly correlated.
        alpha = sample("alpha", dist.Normal(priors[0], priors[1]))
        beta = sample("beta", dist.Normal(priors[2], priors[3]))
        sigma = sample("sigma", dist.ImproperUniform(dist.constraints.positive, (), ()))
        with plate("N", x.shape[0]):
            sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)

    return model, (x, y)


def diamonds(api):
    dist, sample, plate, factor = api
    d = _posteriordb_data("diamonds-diamonds")
    predictors = np.asarray(d["X"], np.float32)[:, 1:]
    centred = predictors - predictors.mean(axis=0)
    y = np.asarray(d["Y"], np.float32)

    def model(centred, y):
        b = sample("b", dist.Normal(0.0, 1.0).expand((centred.shape[1],)).to_event(1))
        intercept = sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
        sigma = sample("sigma", dist.ImproperUniform(dist.constraints.positive, (), ()))
        factor("sigma_prior", dist.StudentT(3.0, 0.0, 10.0).log_prob(sigma))
        with plate("N", y.shape[0]):
            sample("Y", dist.Normal(intercept + centred @ b, sigma), obs=y)

    return model, (centred, y)


MODELS = {
    "logistic_seed": logistic_seed,
    "eight_schools": eight_schools,
    "correlated_gaussian_100": correlated_gaussian_100,
    "kidiq_interaction": kidiq_interaction,
    "covtype_synthetic": covtype_synthetic,
    "garch11": garch11,
    "low_dim_gauss_mix": low_dim_gauss_mix,
    "arma11": arma11,
    "kilpisjarvi": kilpisjarvi,
    "diamonds": diamonds,
}
