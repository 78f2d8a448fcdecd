"""NUTS against posterior-database reference posteriors (Stan, 10,000 reference draws).

Each model follows the posteriordb Stan program, flat priors included (`ImproperUniform`). A correct
sampler's mean of every parameter lies within 5 Monte Carlo standard errors (reference sd over the
square root of our bulk ESS) of the reference mean; sds are checked to 15% (more loosely for heavy
tails). Quick models run by default, the rest in the `slow` session.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npr.distributions as dist
from npr.diagnostics import ess_bulk
from npr.distributions import constraints
from npr.handlers import deterministic, factor, plate, sample
from npr.infer import MCMC, NUTS

POSTERIORDB = pathlib.Path(__file__).resolve().parents[3] / "shared" / "posteriordb"


def load(name):
    data = json.loads((POSTERIORDB / "data" / f"{name}.json").read_text())
    reference = json.loads((POSTERIORDB / "reference" / f"{name}.json").read_text())["parameters"]
    return data, reference


def eight_schools_noncentered(J, y, sigma):
    mu = sample("mu", dist.Normal(0.0, 5.0))
    tau = sample("tau", dist.HalfCauchy(5.0))
    with plate("J", J):
        theta_tilde = sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = deterministic("theta", mu + tau * theta_tilde)
        sample("y", dist.Normal(theta, sigma), obs=y)


def garch11(T, y, sigma1):
    mu = sample("mu", dist.ImproperUniform(constraints.real))
    alpha0 = sample("alpha0", dist.ImproperUniform(constraints.positive))
    alpha1 = sample("alpha1", dist.Uniform(0.0, 1.0))
    # Stan's beta1 is flat on (0, 1 - alpha1): a unit-interval fraction with the Jacobian 1 - alpha1.
    fraction = sample("beta1_fraction", dist.Uniform(0.0, 1.0))
    beta1 = deterministic("beta1", (1.0 - alpha1) * fraction)
    factor("beta1_jacobian", jnp.log1p(-alpha1))

    def step(sigma_prev, y_prev):
        sigma_t = jnp.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * sigma_prev**2)
        return sigma_t, sigma_t

    _, rest = jax.lax.scan(step, jnp.asarray(sigma1, y.dtype), y[:-1])
    sigma = jnp.concatenate([jnp.asarray([sigma1], y.dtype), rest])
    with plate("T", T):
        sample("y", dist.Normal(mu, sigma), obs=y)


def low_dim_gauss_mix(N, y):
    mu = sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
    sigma = sample("sigma", dist.HalfNormal(2.0).expand((2,)).to_event(1))
    theta = sample("theta", dist.Beta(5.0, 5.0))
    log_weights = jnp.stack([jnp.log(theta), jnp.log1p(-theta)])
    component = dist.Normal(mu, sigma).log_prob(y[:, None]) + log_weights
    factor("likelihood", jax.scipy.special.logsumexp(component, axis=-1).sum())


def kidscore_interaction(N, kid_score, mom_hs, mom_iq, **_):
    beta = sample("beta", dist.ImproperUniform(constraints.real, (4,)))
    sigma = sample("sigma", dist.HalfCauchy(2.5))
    mean = beta[0] + beta[1] * mom_hs + beta[2] * mom_iq + beta[3] * mom_hs * mom_iq
    with plate("N", N):
        sample("kid_score", dist.Normal(mean, sigma), obs=kid_score)


def gp_pois_regr(N, x, k, **_):
    rho = sample("rho", dist.Gamma(25.0, 4.0))
    alpha = sample("alpha", dist.HalfNormal(2.0))
    f_tilde = sample("f_tilde", dist.Normal(jnp.zeros(N), 1.0).to_event(1))
    distance = (x[:, None] - x[None, :]) ** 2
    cov = alpha**2 * jnp.exp(-0.5 * distance / rho**2) + 1e-10 * jnp.eye(N)
    f = deterministic("f", jnp.linalg.cholesky(cov) @ f_tilde)
    with plate("N", N):
        sample("k", dist.Poisson(jnp.exp(f)), obs=k)


def diamonds(N, Y, K, X, prior_only):
    # brms: predictors centred, the intercept is that of the centred design.
    predictors = X[:, 1:]
    centred = predictors - predictors.mean(axis=0)
    b = sample("b", dist.Normal(0.0, 1.0).expand((K - 1,)).to_event(1))
    intercept = sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    sigma = sample("sigma", dist.ImproperUniform(constraints.positive))
    factor("sigma_prior", dist.StudentT(3.0, 0.0, 10.0).log_prob(sigma))  # half-t: truncation is a constant
    if not prior_only:
        with plate("N", N):
            sample("Y", dist.Normal(intercept + centred @ b, sigma), obs=Y)


CASES = [
    pytest.param("eight_schools-eight_schools_noncentered", eight_schools_noncentered, {}, 1000, id="eight_schools"),
    pytest.param("garch-garch11", garch11, {}, 1000, id="garch11"),
    pytest.param("low_dim_gauss_mix-low_dim_gauss_mix", low_dim_gauss_mix, {}, 1000, id="low_dim_gauss_mix"),
    pytest.param(
        "kidiq-kidscore_interaction",
        kidscore_interaction,
        {"dense_mass": True},
        2000,
        id="kidiq",
        marks=pytest.mark.slow,
    ),
    pytest.param("diamonds-diamonds", diamonds, {"dense_mass": True}, 1000, id="diamonds", marks=pytest.mark.slow),
    pytest.param(
        "gp_pois_regr-gp_pois_regr", gp_pois_regr, {"x64": True}, 1000, id="gp_pois_regr", marks=pytest.mark.slow
    ),
]


def _component(samples, name):
    """Samples of a Stan-named scalar such as 'theta[3]' (1-based)."""
    if "[" not in name:
        return np.asarray(samples[name])
    base, index = name[:-1].split("[")
    return np.asarray(samples[base])[..., int(index) - 1]


@pytest.mark.parametrize("posterior,model,options,num_samples", CASES)
def test_matches_reference(posterior, model, options, num_samples):
    options = dict(options)
    with jax.enable_x64(options.pop("x64", False)):
        samples = _run(posterior, model, options, num_samples)
    _, reference = load(posterior)
    for name, ref in reference.items():
        draws = _component(samples, name)
        ess = float(ess_bulk(draws))
        error = abs(draws.mean() - ref["mean"]) / (ref["sd"] / np.sqrt(ess))
        assert error < 5, f"{posterior} {name}: mean {draws.mean():.4f} vs {ref['mean']:.4f} ({error:.1f} MCSE)"
        assert abs(draws.std() / ref["sd"] - 1) < 0.15 + 3 / np.sqrt(ess), f"{posterior} {name}: sd"


def _run(posterior, model, options, num_samples):
    data, _ = load(posterior)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    args = {k: (jnp.asarray(v, dtype) if isinstance(v, list) else v) for k, v in data.items()}
    mcmc = MCMC(
        NUTS(model, target_accept_prob=0.9, **options),
        num_warmup=1000,
        num_samples=num_samples,
        num_chains=2,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(0), **args)
    return jax.tree_util.tree_map(np.asarray, mcmc.get_samples(group_by_chain=True))
