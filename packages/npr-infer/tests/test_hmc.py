import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npr.distributions as dist
from npr.diagnostics import ess_bulk
from npr.handlers import plate, sample
from npr.infer import HMCState, fori_collect, hmc, initialize_model, mcmc
from npr.infer.hmc import warmup_step


def run_nuts(potential_fn, init_params, num_warmup=400, num_samples=1000, key=0, transform=None, **kwargs):
    init_kernel, sample_kernel = hmc(potential_fn, algo=kwargs.pop("algo", "NUTS"))
    state = init_kernel(init_params, num_warmup, progbar=False, rng=jax.random.PRNGKey(key), **kwargs)
    draws = fori_collect(num_samples, sample_kernel, state, transform=transform or (lambda s: s.z), progbar=False)
    return state, draws


def assert_moments(draws, mean, sd, z=5.0, sd_rtol=0.2):
    """Posterior mean within z Monte Carlo standard errors (bulk ESS), sd within sd_rtol."""
    draws = np.asarray(draws)
    ess = np.atleast_1d(ess_bulk(draws[None]))
    se = np.asarray(sd) / np.sqrt(ess)
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), z * se + 1e-12)
    np.testing.assert_allclose(draws.std(0), sd, rtol=sd_rtol)


@pytest.mark.parametrize("dim", [1, 10, 100])
def test_standard_normal(dim):
    potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
    _, draws = run_nuts(potential, {"x": jnp.full(dim, 3.0)}, num_warmup=300, num_samples=800)
    assert_moments(draws["x"], np.zeros(dim), np.ones(dim))


def test_no_missed_u_turns_on_iid_gaussian():
    # Checking only whole blocks misses U-turns on iid Gaussians at some step sizes (Stan issue 2800):
    # with step size 0.2 in 100 dimensions a fifth of the trajectories ran to the maximum depth of 10.
    # A U-turn takes about pi / 0.2 = 16 steps; with the extra checks no trajectory should be long.
    from npr.infer import MCMC, NUTS

    kernel = NUTS(
        potential_fn=lambda z: 0.5 * jnp.sum(z["x"] ** 2),
        step_size=0.2,
        adapt_step_size=False,
        adapt_mass_matrix=False,
    )
    mcmc = MCMC(kernel, num_warmup=0, num_samples=300, progress_bar=False)
    init = {"x": jax.random.normal(jax.random.PRNGKey(1), (100,))}
    mcmc.run(jax.random.PRNGKey(0), init_params=init, extra_fields=("num_steps", "tree_depth"))
    extra = mcmc.get_extra_fields()
    assert int(np.max(extra["tree_depth"])) <= 6
    assert float(np.mean(extra["num_steps"])) < 40


def test_correlated_gaussian_dense_mass():
    cov = np.array([[1.0, 0.98], [0.98, 1.0]]) * np.array([[1.0], [3.0]]) * np.array([1.0, 3.0])
    precision = jnp.asarray(np.linalg.inv(cov))
    potential = lambda z: 0.5 * z["x"] @ precision @ z["x"]
    # The estimate comes from the last slow window's draws: 500 of them with 1000 warmup iterations.
    # Over 40 keys its diagonal's log ratio to the truth had sd 0.08 (0.19 with 500 warmup iterations,
    # whose last window is 300 draws made while the step size still moves).
    state, draws = run_nuts(potential, {"x": jnp.zeros(2)}, num_warmup=1000, num_samples=1000, dense_mass=True)
    assert state.inverse_mass_matrix.shape == (2, 2)
    np.testing.assert_allclose(state.inverse_mass_matrix, cov, rtol=0.35)
    assert_moments(draws["x"], np.zeros(2), np.sqrt(np.diag(cov)))
    np.testing.assert_allclose(np.corrcoef(np.asarray(draws["x"]).T)[0, 1], 0.98, atol=0.02)


def test_static_hmc():
    potential = lambda z: 0.5 * jnp.sum((z["x"] - 1.0) ** 2 / 4.0)
    _, draws = run_nuts(potential, {"x": jnp.zeros(3)}, algo="HMC", trajectory_length=1.5, num_samples=1000)
    assert_moments(draws["x"], np.ones(3), np.full(3, 2.0))


def test_normal_normal_conjugate():
    data = np.array([0.8, 1.9, 1.2, 2.5, 0.3])

    def model(y):
        mu = sample("mu", dist.Normal(0.0, 2.0))
        with plate("data", len(y)):
            sample("y", dist.Normal(mu, 1.0), obs=y)

    init_params, potential_fn, constrain_fn = initialize_model(jax.random.PRNGKey(1), model, data)
    _, draws = run_nuts(potential_fn, init_params, transform=lambda s: constrain_fn(s.z))
    post_var = 1 / (1 / 4 + len(data))
    assert_moments(draws["mu"], post_var * data.sum(), np.sqrt(post_var))


def test_beta_bernoulli_conjugate():
    flips = np.array([1, 0, 1, 1, 1, 0, 1, 1, 0, 1])

    def model(y):
        p = sample("p", dist.Beta(2.0, 2.0))
        with plate("flips", len(y)):
            sample("y", dist.Bernoulli(probs=p), obs=y)

    init_params, potential_fn, constrain_fn = initialize_model(jax.random.PRNGKey(2), model, flips)
    _, draws = run_nuts(potential_fn, init_params, transform=lambda s: constrain_fn(s.z))
    a, b = 2 + flips.sum(), 2 + len(flips) - flips.sum()
    assert_moments(draws["p"], a / (a + b), np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))))


def test_transformed_latents_gamma_dirichlet_lkj():
    # Priors only: the draws must reproduce each prior's known moments through the transforms.
    def model():
        sample("g", dist.Gamma(3.0, 2.0))
        sample("d", dist.Dirichlet(jnp.array([2.0, 3.0, 5.0])))
        sample("L", dist.LKJCholesky(3, 2.0))

    init_params, potential_fn, constrain_fn = initialize_model(jax.random.PRNGKey(3), model)
    _, draws = run_nuts(potential_fn, init_params, num_samples=1500, transform=lambda s: constrain_fn(s.z))
    assert_moments(draws["g"], 1.5, np.sqrt(3.0) / 2.0)
    alpha = np.array([2.0, 3.0, 5.0])
    assert_moments(draws["d"], alpha / 10, np.sqrt(alpha * (10 - alpha) / (100 * 11)))
    corr = np.einsum("nij,nkj->nik", draws["L"], draws["L"])
    # LKJ(2) in dimension 3: (r + 1) / 2 ~ Beta(2.5, 2.5), so r has mean 0 and variance 1 / 6.
    assert_moments(corr[:, 1, 0], 0.0, np.sqrt(1 / 6))


def test_eight_schools_noncentered():
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])

    def model():
        mu = sample("mu", dist.Normal(0.0, 5.0))
        tau = sample("tau", dist.HalfCauchy(5.0))
        with plate("schools", 8):
            z = sample("z", dist.Normal(0.0, 1.0))
            sample("y", dist.Normal(mu + tau * z, sigma), obs=y)

    init_params, potential_fn, constrain_fn = initialize_model(jax.random.PRNGKey(4), model)
    state, draws = run_nuts(
        potential_fn,
        init_params,
        num_warmup=500,
        num_samples=2000,
        transform=lambda s: (constrain_fn(s.z), s.diverging),
    )
    values, diverging = draws
    # Reference values from posteriordb (eight_schools_noncentered): mu 4.39 (sd 3.3), tau 3.6 (sd 3.2).
    assert_moments(values["mu"], 4.39, 3.3, sd_rtol=0.25)
    assert abs(float(values["tau"].mean()) - 3.6) < 0.6
    assert int(diverging.sum()) < 40


def test_nan_half_space_is_divergence_not_nan_draw():
    def potential(z):
        x = z["x"]
        return jnp.where(x[0] > 1.0, jnp.nan, 0.5 * jnp.sum(x**2))

    _, draws = run_nuts(
        potential, {"x": jnp.zeros(2)}, num_warmup=200, num_samples=500, transform=lambda s: (s.z["x"], s.diverging)
    )
    x, diverging = draws
    assert np.all(np.isfinite(np.asarray(x)))
    assert np.all(np.asarray(x)[:, 0] <= 1.0)
    assert int(diverging.sum()) > 0


def test_constant_gradient_parameter_keeps_adaptation_finite():
    # A flat direction (constant gradient, here zero) next to a standard normal one.
    potential = lambda z: (
        0.5 * z["x"][0] ** 2 + 0.0 * z["x"][1] + 0.1 * jax.nn.softplus(z["x"][1]) + 0.1 * jax.nn.softplus(-z["x"][1])
    )
    state, draws = run_nuts(potential, {"x": jnp.zeros(2)}, num_warmup=300, num_samples=200)
    assert np.all(np.isfinite(np.asarray(state.inverse_mass_matrix))) and np.all(state.inverse_mass_matrix > 0)
    assert np.isfinite(float(state.step_size)) and float(state.step_size) > 0
    assert np.all(np.isfinite(np.asarray(draws["x"])))


def test_same_key_same_draws_with_and_without_progress_bar():
    potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
    init_kernel, sample_kernel = hmc(potential)
    results = []
    for progbar in (False, True, False):
        state = init_kernel({"x": jnp.ones(3)}, 100, progbar=progbar, rng=jax.random.PRNGKey(9))
        results.append(np.asarray(fori_collect(50, sample_kernel, state, lambda s: s.z["x"], progbar=progbar)))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_fori_collect_bar_shows_the_full_state(capsys):
    init_kernel, sample_kernel = hmc(lambda z: 0.5 * jnp.sum(z["x"] ** 2))
    state = init_kernel({"x": jnp.ones(2)}, 50, progbar=False)
    seen = []

    def postfix(state):
        seen.append(int(state.i))
        return f"divergences so far {int(np.sum(state.diverging))}"

    fori_collect(40, sample_kernel, state, lambda s: s.z["x"], progbar=True, diagnostics_fn=postfix)
    assert seen and seen[-1] == int(state.i) + 40
    assert "divergences so far" in capsys.readouterr().err


def test_hmc_state_fields_and_pytree():
    potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
    init_kernel, sample_kernel = hmc(potential)
    state = init_kernel({"x": jnp.ones(2)}, 50, progbar=False, rng=jax.random.key(0))
    for field in [
        "i",
        "z",
        "z_grad",
        "potential_energy",
        "num_steps",
        "accept_prob",
        "mean_accept_prob",
        "step_size",
        "inverse_mass_matrix",
        "rng",
        "diverging",
        "energy",
        "adapt_state",
    ]:
        assert hasattr(state, field)
    assert isinstance(state, HMCState)
    leaves = jax.tree_util.tree_leaves(state)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert state.rng.dtype == jnp.uint32
    nxt = sample_kernel(state)
    assert int(nxt.i) == int(state.i) + 1


def test_warmup_step_is_pure():
    potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
    init_kernel, _ = hmc(potential)
    state = init_kernel({"x": jnp.ones(2)}, 0, progbar=False)
    before = jax.tree_util.tree_map(np.asarray, state)
    warmup_step(potential, state, jnp.array(True), jnp.array(True), jnp.array(False), jnp.array(True))
    after = jax.tree_util.tree_map(np.asarray, state)
    jax.tree_util.tree_map(np.testing.assert_array_equal, before, after)


def test_mcmc_driver_prints_table(capsys):
    draws = mcmc(100, 200, {"x": jnp.zeros(2)}, potential_fn=lambda z: 0.5 * jnp.sum(z["x"] ** 2), progbar=False)
    out = capsys.readouterr().out
    assert draws["x"].shape == (200, 2)
    assert out.splitlines()[0].split() == ["mean", "sd", "5.5%", "94.5%", "n_eff", "r_hat"]
    assert "x[0]" in out and "x[1]" in out


def test_mcmc_without_warmup_draws_as_the_functional_core():
    # No warmup: mcmc() searches a step size as init_kernel does, then draws as fori_collect does.
    potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
    key = jax.random.PRNGKey(5)
    draws = mcmc(0, 30, {"x": jnp.ones(2)}, potential_fn=potential, print_summary=False, progbar=False, rng=key)
    init_kernel, sample_kernel = hmc(potential)
    state = init_kernel({"x": jnp.ones(2)}, 0, progbar=False, rng=key)
    expected = fori_collect(30, sample_kernel, state, lambda s: s.z, progbar=False)
    np.testing.assert_array_equal(draws["x"], expected["x"])


def test_mcmc_shows_a_bar_per_phase(capsys):
    potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
    draws = mcmc(40, 30, {"x": jnp.ones(2)}, potential_fn=potential, print_summary=False)
    assert draws["x"].shape == (30, 2)
    bars = capsys.readouterr().err
    assert "warmup: 100%" in bars and "40/40" in bars and "sample: 100%" in bars and "30/30" in bars


class TestBadInput:
    @pytest.mark.parametrize(
        "kwargs,match",
        [
            ({"num_warmup": -1}, "num_warmup must be >= 0"),
            ({"step_size": 0.0}, "step_size must be positive"),
            ({"target_accept_prob": 1.0}, r"target_accept_prob must lie in \(0, 1\)"),
            ({"max_tree_depth": 0}, "max_tree_depth must be >= 1"),
        ],
    )
    def test_kernel_settings(self, kwargs, match):
        init_kernel, _ = hmc(lambda z: jnp.sum(z["x"] ** 2))
        args = {"num_warmup": 10, **kwargs}
        with pytest.raises(ValueError, match=match):
            init_kernel({"x": jnp.zeros(1)}, **args)

    def test_unknown_algo(self):
        with pytest.raises(ValueError, match="algo must be 'NUTS' or 'HMC'"):
            hmc(lambda z: z, algo="MALA")

    def test_num_samples(self):
        with pytest.raises(ValueError, match="num_samples must be >= 1"):
            mcmc(10, 0, {"x": jnp.zeros(1)}, potential_fn=lambda z: jnp.sum(z["x"] ** 2))


@pytest.mark.parametrize("max_tree_depth", [3, 10])
def test_u_turn_checks_and_checkpoint_writes_of_every_kind_build_the_same_trajectories(max_tree_depth):
    from npr.infer.integrator import IntegratorState
    from npr.infer.nuts import nuts_transition

    scales = jnp.array([0.1, 1.0, 3.0, 10.0, 0.5])
    potential_and_grad = jax.value_and_grad(lambda x: 0.5 * jnp.sum((x / scales) ** 2))
    inverse_mass_matrix = jnp.ones(5)

    def transition(key, rows_in_loop, rows_in_place=False):
        x_key, r_key, nuts_key = jax.random.split(key, 3)
        x = jax.random.normal(x_key, (5,)) * scales
        r = jax.random.normal(r_key, (5,))
        potential, grad = potential_and_grad(x)
        start = IntegratorState(x, r, potential, grad)
        energy0 = potential + 0.5 * jnp.sum(r**2)
        words = jax.random.bits(nuts_key, (2,), jnp.uint32)  # raw key data, as the chain passes it
        return nuts_transition(
            potential_and_grad,
            inverse_mass_matrix,
            start,
            energy0,
            0.3,
            words,
            max_tree_depth,
            1000.0,
            rows_in_loop,
            rows_in_place,
        )

    keys = jax.random.split(jax.random.PRNGKey(3), 64)
    masked = jax.jit(jax.vmap(lambda k: transition(k, False)))(keys)
    # Many different tree sizes, some ending at the depth limit: the U-turn checks decide them all.
    assert len(np.unique(masked.num_steps)) > 3
    for rows_in_loop, rows_in_place in ((True, False), (False, True), (True, True)):
        other = jax.jit(jax.vmap(lambda k, a=rows_in_loop, b=rows_in_place: transition(k, a, b)))(keys)
        np.testing.assert_array_equal(masked.num_steps, other.num_steps)
        np.testing.assert_array_equal(masked.tree_depth, other.tree_depth)
        np.testing.assert_array_equal(masked.state.x, other.state.x)


def test_step_size_search_doubles_or_halves_until_one_step_acceptance_crosses_0_8():
    from npr.infer.adaptation import find_reasonable_step_size

    # Standard normal in 50 dims: one leapfrog step of size e from x with momentum r.
    dim = 50
    x = jax.random.normal(jax.random.PRNGKey(1), (dim,))
    potential_and_grad = lambda z: (0.5 * jnp.sum(z**2), z)
    ones = jnp.ones(dim)
    search = jax.jit(
        lambda key, start: find_reasonable_step_size(
            potential_and_grad, ones, ones, x, 0.5 * jnp.sum(x**2), x, key, start
        )
    )

    def acceptance(eps, r):  # exact energy change of one step, in NumPy float64
        xn, rn = np.asarray(x, np.float64), np.asarray(r, np.float64)
        r_half = rn - 0.5 * eps * xn
        x_new = xn + eps * r_half
        r_new = r_half - 0.5 * eps * x_new
        return np.exp(min(0.0, 0.5 * (xn @ xn + rn @ rn - x_new @ x_new - r_new @ r_new)))

    momenta = np.random.default_rng(0).normal(size=(4000, dim))
    mean_acceptance = lambda eps: np.mean([acceptance(eps, r) for r in momenta])
    for seed, start in [(0, 1e-3), (1, 1e-3), (2, 50.0), (3, 50.0)]:
        eps = float(search(jax.random.PRNGKey(seed), jnp.float32(start)))
        steps = np.log2(eps / start)
        assert abs(steps - round(steps)) < 1e-4 and round(steps) != 0  # moved by whole doublings or halvings
        # It stops at the first size whose single try crosses 0.8: near where the mean acceptance does.
        assert mean_acceptance(eps / 4) > 0.8 > mean_acceptance(eps * 4)


@pytest.mark.parametrize("algo", ["NUTS", "HMC"])
def test_the_chain_loops_step_size_search_finds_what_the_standalone_search_finds(algo):
    # The chain program runs a search's tries through its own transition (one forward leapfrog
    # step each); the standalone search (the functional API's, and the asynchronous vectorized
    # chains') runs its own loop. From the same state both must find the same step size, read here
    # from where dual averaging restarted (mu = log(10 step size), kept by the updates that follow).
    from npr.infer.chain import warmup
    from npr.infer.hmc import initial_state, search_step_size

    scales = jnp.array([0.1, 1.0, 10.0])
    potential = lambda z: 0.5 * jnp.sum((z["x"] / scales) ** 2)
    found = []
    for seed, start in [(0, 1e-3), (1, 1e-3), (2, 50.0), (3, 50.0), (4, 1.0)]:
        state = initial_state(
            potential, {"x": jnp.array([0.3, -1.0, 4.0])}, 1, algo=algo, step_size=start, rng=jax.random.PRNGKey(seed)
        )
        standalone = search_step_size(potential, state).adapt_state.mu
        in_loop = warmup(potential, state, 1, progbar=False).adapt_state.mu
        np.testing.assert_allclose(in_loop, standalone, rtol=1e-5)
        found.append(float(jnp.exp(standalone) / 10))
    assert len(set(np.round(np.log2(found), 3))) > 1  # the tries went different ways
