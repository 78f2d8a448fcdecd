"""The table of distributions under test, each with an independent SciPy reference."""

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from scipy import special, stats

import npr.distributions as dist


@dataclass
class Case:
    name: str
    build: Callable
    reference: Callable = None  # value -> log density of shape batch_shape (float64 NumPy)
    cdf: Callable = None  # scalar continuous: for a KS test
    pmf: Callable = None  # scalar discrete: for a chi-square test
    finite_variance: bool = True
    closed_form_moments: bool = True


A = np.array([[0.5, 1.0, 2.0], [3.0, 4.5, 7.0]])
B = np.array([1.5, 0.7, 2.5])


def _tn_reference(low, loc, scale, high):
    a, b = (low - loc) / scale, (high - loc) / scale
    return stats.truncnorm(a, b, loc=loc, scale=scale)


def _tc_logpdf(x, low, loc, scale, high=np.inf):
    mass = (np.arctan((high - loc) / scale) - np.arctan((low - loc) / scale)) / np.pi
    return stats.cauchy(loc, scale).logpdf(x) - np.log(mass)


def _tc_cdf(x, low, loc, scale):
    return (stats.cauchy(loc, scale).cdf(x) - stats.cauchy(loc, scale).cdf(low)) / stats.cauchy(loc, scale).sf(low)


def _mvn_logpdf(loc, cov):
    return lambda x: stats.multivariate_normal(loc, cov).logpdf(np.asarray(x))


def _lkj_logpdf(dimension, eta):
    def logpdf(L):
        # Independent route: density of the correlation matrix C = L L^T (LKJ 2009, eq. 16), times the
        # Jacobian prod_k L_kk^(K - k) of L -> C on the strictly lower entries.
        L = np.asarray(L)
        log_c = sum(
            (2 * eta - 2 + dimension - k) * (dimension - k) * np.log(2)
            + (dimension - k) * special.betaln(eta + (dimension - k - 1) / 2, eta + (dimension - k - 1) / 2)
            for k in range(1, dimension)
        )
        diag = np.diagonal(L, axis1=-2, axis2=-1)
        log_det_c = 2 * np.log(diag).sum(-1)
        jac = ((dimension - np.arange(1, dimension + 1)) * np.log(diag)).sum(-1)
        return (eta - 1) * log_det_c + jac - log_c

    return logpdf


def _grw_logpdf(scale, num_steps):
    return lambda x: stats.norm(0, scale).logpdf(np.diff(np.asarray(x), prepend=0.0, axis=-1)).sum(-1)


def _mixture_logpdf(weights, locs, scales):
    return lambda x: special.logsumexp(
        np.log(weights) + stats.norm(locs, scales).logpdf(np.asarray(x)[..., None]), axis=-1
    )


CONTINUOUS = [
    Case("Normal", lambda: dist.Normal(0.5, 2.0), stats.norm(0.5, 2.0).logpdf, stats.norm(0.5, 2.0).cdf),
    Case("Normal-batched", lambda: dist.Normal(jnp.array(A), jnp.array(B)), stats.norm(A, B).logpdf),
    Case(
        "Cauchy",
        lambda: dist.Cauchy(1.0, 0.5),
        stats.cauchy(1.0, 0.5).logpdf,
        stats.cauchy(1.0, 0.5).cdf,
        finite_variance=False,
    ),
    Case(
        "HalfCauchy",
        lambda: dist.HalfCauchy(2.0),
        stats.halfcauchy(scale=2.0).logpdf,
        stats.halfcauchy(scale=2.0).cdf,
        finite_variance=False,
    ),
    Case("HalfNormal", lambda: dist.HalfNormal(1.5), stats.halfnorm(scale=1.5).logpdf, stats.halfnorm(scale=1.5).cdf),
    Case("HalfNormal-batched", lambda: dist.HalfNormal(jnp.array(A)), stats.halfnorm(scale=A).logpdf),
    Case(
        "LogNormal",
        lambda: dist.LogNormal(0.3, 0.6),
        stats.lognorm(0.6, scale=np.exp(0.3)).logpdf,
        stats.lognorm(0.6, scale=np.exp(0.3)).cdf,
    ),
    Case("StudentT", lambda: dist.StudentT(5.0, 1.0, 2.0), stats.t(5.0, 1.0, 2.0).logpdf, stats.t(5.0, 1.0, 2.0).cdf),
    Case(
        "StudentT-batched",
        lambda: dist.StudentT(jnp.array(A) + 4.0, 0.0, jnp.array(B)),
        stats.t(A + 4.0, 0.0, B).logpdf,
    ),
    Case("Laplace", lambda: dist.Laplace(-1.0, 0.7), stats.laplace(-1.0, 0.7).logpdf, stats.laplace(-1.0, 0.7).cdf),
    Case("Logistic", lambda: dist.Logistic(2.0, 1.3), stats.logistic(2.0, 1.3).logpdf, stats.logistic(2.0, 1.3).cdf),
    Case("Gumbel", lambda: dist.Gumbel(0.5, 2.0), stats.gumbel_r(0.5, 2.0).logpdf, stats.gumbel_r(0.5, 2.0).cdf),
    Case("Uniform", lambda: dist.Uniform(-1.0, 3.0), stats.uniform(-1.0, 4.0).logpdf, stats.uniform(-1.0, 4.0).cdf),
    Case("Uniform-batched", lambda: dist.Uniform(jnp.array(-A), jnp.array(A)), stats.uniform(-A, 2 * A).logpdf),
    Case("Exponential", lambda: dist.Exponential(2.5), stats.expon(scale=0.4).logpdf, stats.expon(scale=0.4).cdf),
    Case(
        "Gamma",
        lambda: dist.Gamma(2.5, 1.5),
        stats.gamma(2.5, scale=1 / 1.5).logpdf,
        stats.gamma(2.5, scale=1 / 1.5).cdf,
    ),
    Case("Gamma-batched", lambda: dist.Gamma(jnp.array(A), jnp.array(B)), stats.gamma(A, scale=1 / B).logpdf),
    Case("Gamma-small-shape", lambda: dist.Gamma(0.3, 1.0), stats.gamma(0.3).logpdf, stats.gamma(0.3).cdf),
    Case("Chi2", lambda: dist.Chi2(3.0), stats.chi2(3.0).logpdf, stats.chi2(3.0).cdf),
    Case(
        "InverseGamma",
        lambda: dist.InverseGamma(5.0, 2.0),
        stats.invgamma(5.0, scale=2.0).logpdf,
        stats.invgamma(5.0, scale=2.0).cdf,
    ),
    Case("Beta", lambda: dist.Beta(2.0, 5.0), stats.beta(2.0, 5.0).logpdf, stats.beta(2.0, 5.0).cdf),
    Case("Beta-batched", lambda: dist.Beta(jnp.array(A), jnp.array(B)), stats.beta(A, B).logpdf),
    Case(
        "Weibull",
        lambda: dist.Weibull(2.0, 1.5),
        stats.weibull_min(1.5, scale=2.0).logpdf,
        stats.weibull_min(1.5, scale=2.0).cdf,
    ),
    Case(
        "Pareto", lambda: dist.Pareto(5.0, 2.0), stats.pareto(5.0, scale=2.0).logpdf, stats.pareto(5.0, scale=2.0).cdf
    ),
    Case(
        "TruncatedNormal",
        lambda: dist.TruncatedNormal(0.5, 0.0, 1.0),
        _tn_reference(0.5, 0.0, 1.0, np.inf).logpdf,
        _tn_reference(0.5, 0.0, 1.0, np.inf).cdf,
    ),
    Case(
        "TruncatedNormal-two-sided",
        lambda: dist.TruncatedNormal(-1.0, 1.0, 2.0, high=2.0),
        _tn_reference(-1.0, 1.0, 2.0, 2.0).logpdf,
        _tn_reference(-1.0, 1.0, 2.0, 2.0).cdf,
    ),
    Case(
        "TruncatedNormal-far-tail",
        lambda: dist.TruncatedNormal(6.0, 0.0, 1.0),
        _tn_reference(6.0, 0.0, 1.0, np.inf).logpdf,
        _tn_reference(6.0, 0.0, 1.0, np.inf).cdf,
    ),
    Case(
        "TruncatedCauchy",
        lambda: dist.TruncatedCauchy(0.0, 1.0, 1.0),
        lambda x: _tc_logpdf(x, 0.0, 1.0, 1.0),
        lambda x: _tc_cdf(x, 0.0, 1.0, 1.0),
        finite_variance=False,
    ),
    Case(
        "VonMises",
        lambda: dist.VonMises(0.5, 2.0),
        stats.vonmises(2.0, loc=0.5).logpdf,
        stats.vonmises(2.0, loc=0.5).cdf,
        finite_variance=False,
    ),
]

MULTIVARIATE = [
    Case(
        "Dirichlet",
        lambda: dist.Dirichlet(jnp.array([1.5, 2.0, 3.0])),
        lambda x: stats.dirichlet([1.5, 2.0, 3.0]).logpdf(np.moveaxis(np.asarray(x), -1, 0)),
    ),
    Case(
        "MultivariateNormal",
        lambda: dist.MultivariateNormal(jnp.array([1.0, -1.0]), covariance_matrix=jnp.array([[2.0, 0.6], [0.6, 1.0]])),
        _mvn_logpdf([1.0, -1.0], [[2.0, 0.6], [0.6, 1.0]]),
    ),
    Case(
        "MultivariateNormal-precision",
        lambda: dist.MultivariateNormal(
            jnp.zeros(2), precision_matrix=jnp.linalg.inv(jnp.array([[2.0, 0.6], [0.6, 1.0]]))
        ),
        _mvn_logpdf([0.0, 0.0], [[2.0, 0.6], [0.6, 1.0]]),
    ),
    Case(
        "LowRankMultivariateNormal",
        lambda: dist.LowRankMultivariateNormal(
            jnp.zeros(3), jnp.array([[1.0], [0.5], [-0.5]]), jnp.array([1.0, 2.0, 0.5])
        ),
        _mvn_logpdf(np.zeros(3), np.outer([1.0, 0.5, -0.5], [1.0, 0.5, -0.5]) + np.diag([1.0, 2.0, 0.5])),
    ),
    Case("GaussianRandomWalk", lambda: dist.GaussianRandomWalk(1.5, num_steps=4), _grw_logpdf(1.5, 4)),
    Case(
        "LKJCholesky-onion",
        lambda: dist.LKJCholesky(3, 2.0, sample_method="onion"),
        _lkj_logpdf(3, 2.0),
        closed_form_moments=False,
    ),
    Case(
        "LKJCholesky-cvine",
        lambda: dist.LKJCholesky(4, 0.7, sample_method="cvine"),
        _lkj_logpdf(4, 0.7),
        closed_form_moments=False,
    ),
    Case(
        "MixtureSameFamily",
        lambda: dist.MixtureSameFamily(
            dist.Categorical(probs=jnp.array([0.3, 0.7])), dist.Normal(jnp.array([-2.0, 1.0]), jnp.array([0.5, 1.0]))
        ),
        _mixture_logpdf(np.array([0.3, 0.7]), np.array([-2.0, 1.0]), np.array([0.5, 1.0])),
    ),
]

DISCRETE = [
    Case(
        "BernoulliProbs", lambda: dist.Bernoulli(probs=0.3), stats.bernoulli(0.3).logpmf, pmf=stats.bernoulli(0.3).pmf
    ),
    Case(
        "BernoulliLogits",
        lambda: dist.Bernoulli(logits=-0.4),
        stats.bernoulli(special.expit(-0.4)).logpmf,
        pmf=stats.bernoulli(special.expit(-0.4)).pmf,
    ),
    Case(
        "BinomialProbs",
        lambda: dist.Binomial(10, probs=0.35),
        stats.binom(10, 0.35).logpmf,
        pmf=stats.binom(10, 0.35).pmf,
    ),
    Case(
        "BinomialLogits-batched",
        lambda: dist.Binomial(jnp.array([5.0, 20.0, 7.0]), logits=jnp.array(B) - 1),
        stats.binom([5, 20, 7], special.expit(B - 1)).logpmf,
    ),
    Case(
        "CategoricalProbs",
        lambda: dist.Categorical(probs=jnp.array([0.1, 0.6, 0.3])),
        lambda x: np.log(np.array([0.1, 0.6, 0.3]))[np.asarray(x)],
        pmf=lambda k: np.array([0.1, 0.6, 0.3])[k],
    ),
    Case(
        "CategoricalLogits",
        lambda: dist.Categorical(logits=jnp.array([0.0, 1.0, -1.0])),
        lambda x: special.log_softmax([0.0, 1.0, -1.0])[np.asarray(x)],
        pmf=lambda k: special.softmax([0.0, 1.0, -1.0])[k],
    ),
    Case("Poisson", lambda: dist.Poisson(3.5), stats.poisson(3.5).logpmf, pmf=stats.poisson(3.5).pmf),
    Case("Poisson-batched", lambda: dist.Poisson(jnp.array(A)), stats.poisson(A).logpmf),
    Case(
        "GeometricProbs",
        lambda: dist.Geometric(probs=0.3),
        lambda x: stats.geom(0.3, loc=-1).logpmf(x),
        pmf=lambda k: stats.geom(0.3, loc=-1).pmf(k),
    ),
    Case(
        "GeometricLogits",
        lambda: dist.Geometric(logits=0.5),
        lambda x: stats.geom(special.expit(0.5), loc=-1).logpmf(x),
    ),
    Case(
        "DiscreteUniform", lambda: dist.DiscreteUniform(2, 6), stats.randint(2, 7).logpmf, pmf=stats.randint(2, 7).pmf
    ),
    Case(
        "BetaBinomial",
        lambda: dist.BetaBinomial(2.0, 3.0, total_count=10),
        stats.betabinom(10, 2.0, 3.0).logpmf,
        pmf=stats.betabinom(10, 2.0, 3.0).pmf,
    ),
    Case(
        "GammaPoisson",
        lambda: dist.GammaPoisson(3.0, 0.5),
        stats.nbinom(3.0, 0.5 / 1.5).logpmf,
        pmf=stats.nbinom(3.0, 0.5 / 1.5).pmf,
    ),
    Case(
        "NegativeBinomialProbs",
        lambda: dist.NegativeBinomial(4.0, probs=0.4),
        stats.nbinom(4.0, 0.6).logpmf,
        pmf=stats.nbinom(4.0, 0.6).pmf,
    ),
    Case(
        "NegativeBinomialLogits",
        lambda: dist.NegativeBinomial(4.0, logits=0.3),
        stats.nbinom(4.0, 1 - special.expit(0.3)).logpmf,
    ),
    Case(
        "NegativeBinomial2",
        lambda: dist.NegativeBinomial2(5.0, 2.0),
        stats.nbinom(2.0, 2.0 / 7.0).logpmf,
        pmf=stats.nbinom(2.0, 2.0 / 7.0).pmf,
    ),
    Case(
        "ZeroInflatedPoisson",
        lambda: dist.ZeroInflatedPoisson(0.3, 2.0),
        lambda x: np.where(
            np.asarray(x) == 0, np.log(0.3 + 0.7 * np.exp(-2.0)), np.log(0.7) + stats.poisson(2.0).logpmf(x)
        ),
        pmf=lambda k: np.where(k == 0, 0.3, 0) + 0.7 * stats.poisson(2.0).pmf(k),
    ),
    Case(
        "MultinomialProbs",
        lambda: dist.Multinomial(8, probs=jnp.array([0.2, 0.5, 0.3])),
        lambda x: stats.multinomial(8, [0.2, 0.5, 0.3]).logpmf(np.asarray(x)),
    ),
    Case(
        "MultinomialLogits",
        lambda: dist.Multinomial(6, logits=jnp.array([0.1, -0.3, 0.7, 0.0])),
        lambda x: stats.multinomial(6, special.softmax([0.1, -0.3, 0.7, 0.0])).logpmf(np.asarray(x)),
    ),
]

ALL = CONTINUOUS + MULTIVARIATE + DISCRETE
