import pickle
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npr.distributions as dist
from npr.handlers import deterministic, factor, plate, sample
from npr.infer import HMC, MCMC, NUTS, chain, chain_groups, driver, initialize_model, progress
from npr.infer.chain import TRACE_COUNTS, runs_in_lockstep
from npr.infer.gradient_work import GradientWork, compiler_options, gradient_work, quick_compilation


def regression(x, y=None):
    slope = sample("slope", dist.Normal(0.0, 5.0))
    noise = sample("noise", dist.HalfNormal(2.0))
    deterministic("double_slope", 2 * slope)
    with plate("data", x.shape[0]):
        sample("y", dist.Normal(slope * x, noise), obs=y)


X = np.linspace(-1, 1, 30)
Y = 1.5 * X + np.random.default_rng(0).normal(0, 0.5, 30)


def make_mcmc(**kwargs):
    options = dict(num_warmup=150, num_samples=200, num_chains=2, progress_bar=False)
    options.update(kwargs)
    return MCMC(NUTS(regression), **options)


@pytest.mark.parametrize("postprocess", [False, True])
def test_draws_are_kept_merged_and_split_by_chain_on_request(postprocess):
    # The run keeps its draws with the chains merged, so `get_samples()` hands over what the run made;
    # the grouped view splits them again, chain by chain, in the order of the unconstrained draws.
    options = dict(chain_method="vectorized", num_chains=3, num_samples=40, num_warmup=30)
    if postprocess:
        options["postprocess_fn"] = lambda z: {"slope_plus_one": z["slope"] + 1.0}
    mcmc = make_mcmc(**options)
    mcmc.run(jax.random.PRNGKey(4), X, Y)
    merged, grouped = mcmc.get_samples(), mcmc.get_samples(group_by_chain=True)
    assert mcmc.get_samples() is merged
    names = ["slope_plus_one"] if postprocess else ["slope", "noise", "double_slope"]
    assert sorted(merged) == sorted(grouped) == sorted(names)
    for name in names:
        assert grouped[name].shape == (3, 40) and merged[name].shape == (120,)
        for index in range(3):
            np.testing.assert_array_equal(grouped[name][index], merged[name][40 * index : 40 * (index + 1)])
    slope = grouped["slope_plus_one"] - 1.0 if postprocess else grouped["slope"]
    np.testing.assert_allclose(slope[:, -1], mcmc.last_state.z["slope"], rtol=1e-6)  # each chain's last draw
    if not postprocess:
        np.testing.assert_allclose(grouped["double_slope"], 2 * grouped["slope"], rtol=1e-6)


def test_compiles_once_across_runs_keys_data_and_continuation():
    mcmc = make_mcmc(chain_method="vectorized")
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    traced, searches = TRACE_COUNTS["chain"], driver._compiled_search()._cache_size()
    mcmc.run(jax.random.PRNGKey(1), X, Y)  # new key
    mcmc.run(jax.random.PRNGKey(2), X, Y[::-1].copy())  # new data, same shapes
    mcmc.post_warmup_state = mcmc.last_state
    mcmc.run(jax.random.PRNGKey(3), X, Y)  # continued, no warmup
    assert TRACE_COUNTS["chain"] == traced
    assert driver._compiled_search()._cache_size() == searches  # the initial states' program too


def test_model_is_traced_again_only_when_its_arguments_may_change():
    calls = []

    def counted(x, y=None):
        calls.append(None)
        regression(x, y)

    x, y = jnp.asarray(X), jnp.asarray(Y)
    mcmc = MCMC(NUTS(counted), num_warmup=50, num_samples=20, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), x, y)
    before = len(calls)
    mcmc.run(jax.random.PRNGKey(1), x, y)  # the same immutable arrays: nothing to check again
    assert len(calls) == before
    mcmc.post_warmup_state = mcmc.last_state
    mcmc.run(jax.random.PRNGKey(1), x, y)
    assert len(calls) == before
    mcmc.run(jax.random.PRNGKey(1), X, Y)  # NumPy arrays may have been changed in place
    assert len(calls) == before + 1
    with pytest.raises(ValueError, match="site 'y': observed data contains nan"):
        mcmc.run(jax.random.PRNGKey(1), X, Y.copy() * np.where(np.arange(30) == 3, np.nan, 1.0))
    # Initial values drawn from the prior are drawn in the compiled search: a new key traces nothing
    # again, yet starts the chain elsewhere.
    from_prior = MCMC(NUTS(counted, init_strategy="prior"), num_warmup=0, num_samples=1, progress_bar=False)
    starts = []
    for seed in (0, 1):
        from_prior.run(jax.random.PRNGKey(seed), x, y)
        starts.append(float(from_prior.get_samples()["noise"][0]))
        if seed == 0:
            before = len(calls)
    assert len(calls) == before and starts[0] != starts[1]


def test_continuation_starts_where_the_last_run_ended():
    mcmc = make_mcmc(chain_method="sequential", num_chains=1)
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    first = mcmc.get_samples()
    last = mcmc.last_state
    mcmc.post_warmup_state = last
    mcmc.run(jax.random.PRNGKey(1), X, Y)
    second_states = mcmc.last_state
    assert int(second_states.i[0]) == int(last.i[0]) + 200
    np.testing.assert_allclose(second_states.step_size, last.step_size)  # no warmup: no adaptation
    assert not np.allclose(first["slope"], mcmc.get_samples()["slope"])


def test_split_runs_match_one_long_run():
    one = make_mcmc(num_chains=1, num_samples=200)
    one.run(jax.random.PRNGKey(5), X, Y)
    warm = make_mcmc(num_chains=1, num_samples=100)
    warm.warmup(jax.random.PRNGKey(5), X, Y)
    warm.run(jax.random.PRNGKey(99), X, Y)
    first = warm.get_samples()["slope"]
    warm.post_warmup_state = warm.last_state
    warm.run(jax.random.PRNGKey(99), X, Y)
    second = warm.get_samples()["slope"]
    # warmup() and run() split keys the same way, so 2 x 100 draws continue 1 x 200 draws.
    np.testing.assert_allclose(np.concatenate([first, second]), one.get_samples()["slope"], atol=1e-5)


# Vectorized NUTS chains run in lockstep or asynchronously depending on the model's size
# (chain.LOCKSTEP_MAX_ELEMENTS); these tests force each program in turn.
VECTORIZED_PROGRAMS = {"lockstep": 10**12, "asynchronous": -1}


@pytest.fixture(params=sorted(VECTORIZED_PROGRAMS))
def vectorized_program(request, monkeypatch):
    monkeypatch.setattr(chain, "LOCKSTEP_MAX_ELEMENTS", VECTORIZED_PROGRAMS[request.param])
    return request.param


def test_vectorized_chains_run_in_lockstep_only_when_a_gradient_is_tiny():
    small = lambda z: jnp.sum(z["x"] ** 2)
    matrix = jnp.eye(40)
    large = lambda z: z["x"] @ matrix @ z["x"]  # a 40 x 40 contraction: 1,600 products
    looping = lambda z: jax.lax.fori_loop(0, 3, lambda i, c: c + jnp.sum(z["x"] ** 2), 0.0)
    stacked = lambda algo, size: SimpleNamespace(settings=SimpleNamespace(algo=algo), z={"x": jnp.ones((2, size))})
    assert runs_in_lockstep(small, stacked("NUTS", 8))
    assert not runs_in_lockstep(large, stacked("NUTS", 40))
    assert not runs_in_lockstep(looping, stacked("NUTS", 8))

    def printing(z):  # an operation with no operands and no results
        jax.debug.callback(lambda: None)
        return small(z)

    assert runs_in_lockstep(printing, stacked("NUTS", 8))
    # Static HMC trajectories have one length for every chain: always lockstep.
    assert runs_in_lockstep(large, stacked("HMC", 40))


def test_gradient_work_flags_reductions_along_short_or_leading_axes():
    rows = jnp.ones((500, 2))
    along_short_rows = lambda z: jnp.sum(jax.scipy.special.logsumexp(z["x"] * rows, axis=-1))
    along_columns = lambda z: jnp.sum(jnp.sum(z["x"] * rows, axis=0) ** 2)
    along_long_rows = lambda z: jnp.sum(z["x"][0] * jnp.ones(3000))
    one = {"x": jnp.ones(2)}
    assert gradient_work(along_short_rows, one).strided_reductions
    assert gradient_work(along_columns, one).strided_reductions
    assert not gradient_work(along_long_rows, one).strided_reductions


def test_gradient_work_counts_transcendental_functions_before_broadcasts():
    data = jnp.linspace(-2.0, 2.0, 2000)
    one = {"w": jnp.ones(()), "s": jnp.ones(())}
    # A normal likelihood's log(scale) is one log, broadcast over the data afterwards.
    regression = lambda z: jnp.sum(dist.Normal(z["w"] * data, jnp.exp(z["s"])).log_prob(data))
    # A Bernoulli likelihood's softplus runs an exp and a log1p per data point.
    classification = lambda z: jnp.sum(dist.Bernoulli(logits=z["w"] * data).log_prob(data > 0))
    assert gradient_work(regression, one).transcendental_elements < 10
    assert gradient_work(classification, one).transcendental_elements >= 2 * data.size
    quick = set(quick_compilation())
    assert quick <= set(compiler_options(gradient_work(regression, one)))
    assert not quick & set(compiler_options(gradient_work(classification, one)))


def test_a_potential_of_the_flat_point_has_the_gradient_work_of_its_sites():
    # The chain programs' loops carry a flat point; their choices must still read the model's gradient.
    from npr.infer.hmc import VectorPotential

    potential = lambda z: jnp.sum(jnp.exp(z["a"] * jnp.ones((300, 2)))) + z["b"] ** 2
    z = {"a": jnp.ones(2), "b": jnp.ones(())}
    vector = VectorPotential(potential, z)
    assert gradient_work(vector, jnp.ones(3)) == gradient_work(potential, z)
    assert float(vector(jnp.array([0.0, 0.0, 3.0]))) == pytest.approx(600.0 + 9.0)


def test_leaves_check_rows_one_by_one_only_where_loops_compile_as_one_function(monkeypatch):
    from npr.infer.cache import small_loops_compile_as_one_function
    from npr.infer.gradient_work import rows_in_loop

    elementwise = lambda z: jnp.sum(z["x"] ** 2)
    matrix = jnp.eye(3)
    contraction = lambda z: z["x"] @ matrix @ z["x"]
    one = {"x": jnp.ones(3)}
    assert gradient_work(contraction, one).library_calls
    assert not gradient_work(elementwise, one).library_calls
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=65536")
    assert small_loops_compile_as_one_function()
    assert rows_in_loop(elementwise, one) and not rows_in_loop(contraction, one)
    for flags in ("", "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1024"):
        monkeypatch.setenv("XLA_FLAGS", flags)
        assert not small_loops_compile_as_one_function()
        assert not rows_in_loop(elementwise, one)


def two_identical_components(y):
    # A mixture of two identical unit normals: the likelihood is Normal(mu, 1), reached through a
    # logsumexp over rows of two, which picks XLA options of its own for the chain programs.
    mu = sample("mu", dist.Normal(0.0, 10.0))
    component = jnp.log(0.5) + dist.Normal(mu + jnp.zeros(2), 1.0).log_prob(y[:, None])
    factor("y", jnp.sum(jax.scipy.special.logsumexp(component, axis=-1)))


@pytest.mark.parametrize("chain_method", ["sequential", "vectorized"])
def test_chains_compiled_with_their_own_xla_options_sample_the_posterior(chain_method, monkeypatch):
    monkeypatch.setattr(chain, "_COMPILED", {})
    y = np.random.default_rng(1).normal(0.7, 1.0, 400).astype(np.float32)
    mcmc = MCMC(
        NUTS(two_identical_components),
        num_warmup=200,
        num_samples=500,
        num_chains=2,
        chain_method=chain_method,
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(0), y)
    # The options are those this XLA accepts (none where the experimental option is gone); its
    # logsumexp's exp and log over 800 elements each keep the quick compilation out.
    params, potential, _ = initialize_model(jax.random.PRNGKey(0), two_identical_components, y)[:3]
    assert gradient_work(potential, params).transcendental_elements > 1000
    strided = GradientWork(
        elements=10**6, loops=False, strided_reductions=True, library_calls=False, transcendental_elements=1600
    )
    assert [options for _, options in chain._COMPILED] == [tuple(sorted(compiler_options(strided).items()))]
    # Conjugate: posterior precision 1/100 + 400, mean sum(y) / precision.
    precision = 1 / 100 + y.size
    mu = mcmc.get_samples()["mu"]
    assert abs(float(mu.mean()) - y.sum() / precision) < 4 * precision**-0.5 / np.sqrt(300)
    assert abs(float(mu.std()) - precision**-0.5) < 0.15 * precision**-0.5


def test_chains_of_a_tiny_gradient_are_compiled_for_compilation_speed(monkeypatch):
    monkeypatch.setattr(chain, "_COMPILED", {})
    make_mcmc(chain_method="sequential").run(jax.random.PRNGKey(0), X, Y)
    quick = quick_compilation()
    assert [options for _, options in chain._COMPILED] == [tuple(sorted(quick.items()))]
    assert set(quick) <= {"xla_cpu_use_fusion_emitters", "xla_backend_optimization_level"}
    assert quick or jax.default_backend() != "cpu"  # this XLA knows the options (or a test must change)
    # Not a gradient with a loop, nor one with many transcendental functions: they run slower compiled that way.
    for work in (GradientWork(10, True, False, False), GradientWork(10, False, False, False, 10**4)):
        assert not set(compiler_options(work)) & set(quick)


def test_sequential_and_vectorized_chains_agree(vectorized_program):
    # Sequential and vectorized chains run different compiled programs, which round differently. With
    # the kernel fixed the draws agree to float32 rounding; adaptation feeds rounding back into the step
    # size, after which chains agree only in distribution (checked below through posterior means).
    draws = {}
    for method in ("sequential", "vectorized"):
        mcmc = MCMC(
            NUTS(regression, step_size=0.2, adapt_step_size=False, adapt_mass_matrix=False),
            num_warmup=0,
            num_samples=200,
            num_chains=2,
            chain_method=method,
            progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(3), X, Y)
        draws[method] = mcmc.get_samples(group_by_chain=True)["slope"]
    np.testing.assert_allclose(draws["sequential"], draws["vectorized"], atol=1e-4)
    means = {}
    for method in ("sequential", "vectorized"):
        mcmc = make_mcmc(chain_method=method, num_samples=1000)
        mcmc.run(jax.random.PRNGKey(3), X, Y)
        means[method] = np.asarray(mcmc.get_samples()["slope"])
    se = means["sequential"].std() / np.sqrt(500)
    assert abs(means["sequential"].mean() - means["vectorized"].mean()) < 5 * se


def fixed_kernel_of_three_scales():
    """NUTS on a Gaussian with scales 0.05, 1 and 20, step size fixed: chains started apart run
    trajectories of different lengths."""
    scales = jnp.array([0.05, 1.0, 20.0])
    return NUTS(
        potential_fn=lambda z: 0.5 * jnp.sum((z["x"] / scales) ** 2),
        step_size=0.04,
        adapt_step_size=False,
        adapt_mass_matrix=False,
    )


def test_vectorized_chains_of_different_lengths_match_sequential(vectorized_program):
    # Whichever vectorized program runs (chains in lockstep, or moving on independently as in
    # npr.infer.machine), chains whose trajectories differ in length must still give the sequential
    # chains' draws, kept draws and statistics.
    kernel = fixed_kernel_of_three_scales()
    init = {"x": jnp.array([[0.0, 0.0, 0.0], [0.1, 3.0, 80.0], [0.0, -1.0, -40.0]])}
    out = {}
    for method in ("sequential", "vectorized"):
        mcmc = MCMC(
            kernel, num_warmup=0, num_samples=30, num_chains=3, thinning=2, chain_method=method, progress_bar=False
        )
        mcmc.run(jax.random.PRNGKey(0), init_params=init, extra_fields=("num_steps", "accept_prob"))
        out[method] = mcmc.get_samples(group_by_chain=True)["x"], mcmc.get_extra_fields(group_by_chain=True)
    (x_seq, extra_seq), (x_vec, extra_vec) = out["sequential"], out["vectorized"]
    assert len(set(np.asarray(extra_seq["num_steps"]).sum(axis=1).tolist())) == 3  # unequal chain lengths
    np.testing.assert_array_equal(extra_seq["num_steps"], extra_vec["num_steps"])
    np.testing.assert_allclose(x_seq, x_vec, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(extra_seq["accept_prob"], extra_vec["accept_prob"], atol=1e-4)


@pytest.mark.parametrize("program", sorted(VECTORIZED_PROGRAMS))
def test_vectorized_chains_split_into_groups_draw_as_one_program(program, monkeypatch, capsys):
    # On a CPU with several cores, vectorized chains run as equal groups, one host thread each
    # (npr.infer.chain_groups), or with few chains per core as one-chain programs: one compiled
    # program serves every group and each chain draws what it draws in one program over all chains.
    monkeypatch.setattr(chain, "LOCKSTEP_MAX_ELEMENTS", VECTORIZED_PROGRAMS[program])
    kernel = fixed_kernel_of_three_scales()
    init = {"x": jnp.array([[0.0, 0.0, 0.0], [0.1, 3.0, 80.0], [0.0, -1.0, -40.0], [0.2, 0.5, 10.0]])}
    groups = []
    real = chain_groups.run_grouped

    def spy(lower, call, num_groups, key, state, buffer, schedule, one_chain=False):
        groups.append((num_groups, one_chain))
        return real(lower, call, num_groups, key, state, buffer, schedule, one_chain)

    monkeypatch.setattr(chain_groups, "run_grouped", spy)
    out = {}
    # (cores, one-chain programs for up to this many chains per core)
    for cores, per_core in ((1, 2), (2, 2), (2, 1), (4, 0)):
        monkeypatch.setattr(chain_groups, "host_cores", lambda cores=cores: cores)
        monkeypatch.setattr(chain_groups, "MAX_SINGLE_CHAINS_PER_CORE", per_core)
        mcmc = MCMC(kernel, num_warmup=0, num_samples=30, num_chains=4, chain_method="vectorized", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), init_params=init, extra_fields=("num_steps",))
        traced = TRACE_COUNTS["chain"]
        mcmc.progress_bar = True
        mcmc.run(jax.random.PRNGKey(0), init_params=init, extra_fields=("num_steps",))
        assert TRACE_COUNTS["chain"] == traced  # the bar is fed between calls of the same program
        out[cores, per_core] = mcmc.get_samples(group_by_chain=True)["x"], mcmc.get_extra_fields(group_by_chain=True)
    assert sorted(set(groups)) == [(2, False), (4, False), (4, True)]
    assert "100%" in capsys.readouterr().err
    for setting in ((2, 2), (2, 1), (4, 0)):
        np.testing.assert_array_equal(out[1, 2][1]["num_steps"], out[setting][1]["num_steps"])
        np.testing.assert_allclose(out[1, 2][0], out[setting][0], rtol=1e-4, atol=1e-4)


CHAIN_PROGRAMS = ("chain_program", "_one_stacked_program", "_vectorized_program", "_asynchronous_program")


@pytest.mark.parametrize(
    "num_chains, method", [(1, "vectorized"), (3, "sequential"), (4, "vectorized"), (8, "vectorized")]
)
def test_a_new_run_compiles_its_chain_program_once_while_it_searches_initial_states(
    num_chains, method, monkeypatch, caplog
):
    # The chain program is lowered before the initial-state search and compiled on a worker thread
    # meanwhile; the run then finds it compiled (one-chain calls, groups, sequential, one chain). The
    # programs that constrain the draws (merging their chains) and split them by chain compile there
    # too, while the chains sample.
    monkeypatch.setattr(chain_groups, "host_cores", lambda: 2)

    def model(y):  # a model of its own: nothing of it is compiled yet
        scale = sample("scale", dist.HalfNormal(1.0))
        sample("y", dist.Normal(0.0, scale), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=20, num_samples=10, num_chains=num_chains, chain_method=method)
    mcmc.progress_bar = False
    jax.config.update("jax_log_compiles", True)  # globally: the worker thread compiles
    try:
        with caplog.at_level("WARNING"):
            mcmc.run(jax.random.PRNGKey(0), np.array([0.5, -1.0, 2.0]))
            scale = mcmc.get_samples()["scale"]
    finally:
        jax.config.update("jax_log_compiles", False)
    compilations = [r for r in caplog.records if "XLA compilation of" in r.getMessage()]
    of = lambda names: [r for r in compilations if r.getMessage().split("(")[1].split(")")[0] in names]
    compiled = of(CHAIN_PROGRAMS)
    assert len(compiled) == 1, [r.getMessage() for r in compiled]
    assert compiled[0].threadName.startswith("npr-compile")
    assert len(of({"constrained_draws"})) == 1  # the split may be compiled for these shapes by an earlier test
    assert all(r.threadName.startswith("npr-compile") for r in of({"constrained_draws", "_split_chain_axis"}))
    assert scale.shape == (num_chains * 10,)


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("strategy", ["uniform", "prior", "median", "values"])
def test_the_chain_program_is_compiled_ahead_for_the_shapes_the_search_finds(strategy, x64, monkeypatch):
    # The states' shapes are guessed from the latent sites before the search is traced; a wrong guess
    # would compile a second chain program (the guess is checked, then made again from the search).
    guesses, found = [], []
    monkeypatch.setattr(MCMC, "_compile_ahead", lambda self, *args: guesses.append)
    run = MCMC._run
    monkeypatch.setattr(
        MCMC, "_run", lambda self, potential, states, *args: found.append(states) or run(self, potential, states, *args)
    )

    def model():
        sample("weights", dist.Dirichlet(jnp.ones(3)))
        sample("scale", dist.HalfNormal(jnp.ones(2)))

    init = {"weights": jnp.array([0.2, 0.3, 0.5]), "scale": jnp.array([1.0, 2.0])}
    kernel = NUTS(model, dense_mass=True, init_strategy=init if strategy == "values" else strategy)
    with jax.enable_x64(x64):
        mcmc = MCMC(kernel, num_warmup=5, num_samples=3, num_chains=2, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0))
    assert len(guesses) == 1
    assert driver._avals(guesses[0]) == driver._avals(jax.eval_shape(lambda: found[0]))
    assert guesses[0].z["weights"].shape == (2, 2)  # unconstrained: one fewer than the simplex


def test_chain_groups_run_with_the_callers_jax_settings(monkeypatch):
    # `jax.enable_x64` as a context holds for the caller's thread only: the groups' threads must still
    # run the program compiled for float64.
    monkeypatch.setattr(chain_groups, "host_cores", lambda: 2)
    with jax.enable_x64(True):
        mcmc = make_mcmc(chain_method="vectorized", num_warmup=50, num_samples=20)
        mcmc.run(jax.random.PRNGKey(0), X, Y)
        slope = mcmc.get_samples(group_by_chain=True)["slope"]
    assert slope.dtype == jnp.float64 and slope.shape == (2, 20)
    assert np.all(np.isfinite(slope))


def test_chain_groups_are_equal_and_only_on_cpu_for_small_gradients():
    assert chain_groups.group_count(4, 400, "cpu", cores=2) == 2
    assert chain_groups.group_count(4, 400, "cpu", cores=16) == 4
    assert chain_groups.group_count(6, 400, "cpu", cores=4) == 3  # equal groups: one compiled program
    assert chain_groups.group_count(3, 400, "cpu", cores=2) == 1
    assert chain_groups.group_count(4, 400, "cpu", cores=1) == 1
    assert chain_groups.group_count(4, 400, "gpu", cores=8) == 1
    assert chain_groups.group_count(4, chain_groups.MAX_ELEMENTS + 1, "cpu", cores=8) == 1


def test_few_chains_per_core_run_as_one_chain_programs():
    assert chain_groups.one_chain_per_call(4, 400, "cpu", cores=2)
    assert chain_groups.one_chain_per_call(3, 400, "cpu", cores=2)  # no equal groups needed
    assert not chain_groups.one_chain_per_call(5, 400, "cpu", cores=2)
    assert not chain_groups.one_chain_per_call(4, 400, "cpu", cores=1)
    assert not chain_groups.one_chain_per_call(4, 400, "gpu", cores=8)
    assert not chain_groups.one_chain_per_call(1, 400, "cpu", cores=8)
    assert not chain_groups.one_chain_per_call(4, chain_groups.MAX_ELEMENTS + 1, "cpu", cores=8)


def test_one_float_dtype_whatever_the_inputs():
    # Policy: the sampler works in the configured float and casts data and initial values to it.
    mcmc = make_mcmc(num_chains=1, num_warmup=50, num_samples=20)
    mcmc.run(jax.random.PRNGKey(0), X, Y)  # float64 NumPy data, x64 off
    assert mcmc.get_samples()["slope"].dtype == jnp.float32
    with jax.enable_x64(True):
        mcmc = make_mcmc(num_chains=1, num_warmup=50, num_samples=20)
        init = {"slope": np.float32(0.5), "noise": np.float32(0.0)}  # mixed precision: float32 in, x64 on
        mcmc.run(jax.random.PRNGKey(0), X.astype(np.float32), Y.astype(np.float32), init_params=init)
        assert mcmc.get_samples()["slope"].dtype == jnp.float64
        assert np.all(np.isfinite(mcmc.get_samples()["slope"]))


def test_same_key_same_draws():
    a, b = make_mcmc(), make_mcmc()
    a.run(jax.random.PRNGKey(7), X, Y)
    b.run(jax.random.PRNGKey(7), X, Y)
    np.testing.assert_array_equal(a.get_samples()["slope"], b.get_samples()["slope"])


def test_samples_extra_fields_and_posterior():
    mcmc = make_mcmc(num_samples=500, num_chains=2, chain_method="vectorized")
    mcmc.run(jax.random.PRNGKey(0), X, Y, extra_fields=("accept_prob", "step_size", "potential_energy"))
    samples = mcmc.get_samples()
    assert samples["slope"].shape == (1000,) and samples["double_slope"].shape == (1000,)
    np.testing.assert_allclose(samples["double_slope"], 2 * samples["slope"], rtol=1e-6)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    assert extra["accept_prob"].shape == (2, 500) and extra["diverging"].dtype == bool
    # Least squares with a flat-ish prior: the posterior mean of the slope is close to the OLS fit.
    ols = (X @ Y) / (X @ X)
    assert abs(float(samples["slope"].mean()) - ols) < 0.1


def test_thinning_keeps_the_last_draw_of_every_block():
    mcmc = make_mcmc(num_samples=50, thinning=3, num_chains=1)
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    assert mcmc.get_samples()["slope"].shape == (50,)
    assert int(mcmc.last_state.i[0]) == 150 + 150
    every = make_mcmc(num_samples=150, num_chains=1)
    every.run(jax.random.PRNGKey(0), X, Y)
    np.testing.assert_array_equal(mcmc.get_samples()["slope"], every.get_samples()["slope"][2::3])


def test_one_compiled_program_for_warmup_sampling_and_continuation():
    def line(x, y=None):  # a model of its own, so no earlier test compiled it
        slope = sample("slope", dist.Normal(0.0, 5.0))
        with plate("data", x.shape[0]):
            sample("y", dist.Normal(slope * x, 1.0), obs=y)

    mcmc = MCMC(
        NUTS(line), num_warmup=100, num_samples=100, num_chains=2, chain_method="vectorized", progress_bar=False
    )
    before = TRACE_COUNTS["chain"]
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    assert TRACE_COUNTS["chain"] == before + 1
    mcmc.warmup(jax.random.PRNGKey(1), X, Y)
    mcmc.run(jax.random.PRNGKey(2), X, Y)
    draws = mcmc.get_samples()["slope"]
    mcmc.progress_bar = True  # the bar is fed between calls of the same program
    mcmc.warmup(jax.random.PRNGKey(1), X, Y)
    mcmc.run(jax.random.PRNGKey(2), X, Y)
    assert TRACE_COUNTS["chain"] == before + 1
    np.testing.assert_array_equal(mcmc.get_samples()["slope"], draws)


def test_warmup_then_run_equals_one_run():
    one, split = make_mcmc(), make_mcmc()
    one.run(jax.random.PRNGKey(4), X, Y)
    split.warmup(jax.random.PRNGKey(4), X, Y)
    split.run(jax.random.PRNGKey(99), X, Y)  # continues from post_warmup_state: its key is unused
    np.testing.assert_array_equal(one.get_samples()["slope"], split.get_samples()["slope"])


def test_mean_accept_prob_is_that_of_the_sampling_phase():
    mcmc = make_mcmc()
    mcmc.run(jax.random.PRNGKey(0), X, Y, extra_fields=("accept_prob",))
    accept = mcmc.get_extra_fields(group_by_chain=True)["accept_prob"]
    np.testing.assert_allclose(mcmc.last_state.mean_accept_prob, accept.mean(axis=1), rtol=1e-4)


def test_progress_bar_names_each_phase(capsys):
    mcmc = make_mcmc(progress_bar=True, chain_method="vectorized")
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    err = capsys.readouterr().err
    assert "warmup 2 chains" in err and "sample 2 chains" in err and "acc. prob" in err


def test_progress_bar_sizes_chunks_from_the_last_run_of_the_same_loop():
    # The first run of a loop probes its speed with a short chunk; a run of the same loop known to
    # last under progress.UPDATE_SECONDS is then a single call.
    chunks = []

    def call(start, stop, carry):
        chunks.append((start, stop))
        return carry

    for _ in range(2):
        bar = progress.open_bar(1000, "loop")
        progress.run_in_chunks(call, 0, 0, 1000, bar, lambda c, b: (c, None, None), speed_key="a loop")
        progress.close_bar(bar)
    assert chunks[0] == (0, 20) and chunks[-1] == (0, 1000)


def test_chunks_last_long_enough_for_what_each_call_costs(monkeypatch):
    # A loop whose every call costs 0.1 s besides 1 ms per iteration (large data prepared at each
    # call), on a fake clock: one call of no iterations measures that cost, after which chunks are
    # long enough for calls to cost 1/CALLS_SHARE of the run, and a short remainder joins the chunk
    # before it. Sized for iterations alone (0.25 s), 20,000 iterations took 100 calls.
    clock = [0.0]
    monkeypatch.setattr(progress, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    chunks = []

    def call(start, stop, carry):
        chunks.append((start, stop))
        clock[0] += 0.1 + 0.001 * (stop - start)
        return carry + (stop - start)

    def run(stop):
        bar = progress.open_bar(stop, "loop")
        out = progress.run_in_chunks(call, 0, 0, stop, bar, lambda c, b: (c, None, None), speed_key="costly")
        progress.close_bar(bar)
        return out

    assert run(20_000) == 20_000
    assert chunks[:2] == [(0, 400), (400, 400)]  # a probe of a 50th of the run, a call of no iterations
    sizes = [stop - start for start, stop in chunks[2:]]
    assert len(sizes) == 4 and all(4800 <= size <= 4900 for size in sizes[:-1])
    assert 0.1 * len(chunks) / clock[0] < 0.05
    chunks.clear()
    assert run(6_000) == 6_000
    assert chunks == [(0, 6_000)]  # 1,100 left after a chunk of 4,900: one call


def test_sequential_chains_known_to_be_quick_are_queued_and_draw_the_same(monkeypatch, capsys):
    # Once a loop is known to run in one call, sequential chains with bars are all dispatched first,
    # then each bar fills as its chain ends: the same programs on the same inputs, the same draws.
    expected = []
    real = progress.expects_one_call
    monkeypatch.setattr(progress, "expects_one_call", lambda *a: expected.append(real(*a)) or expected[-1])
    mcmc = make_mcmc(chain_method="sequential", num_chains=3, progress_bar=True)
    for seed in (0, 1):
        mcmc.run(jax.random.PRNGKey(seed), X, Y)
    assert expected[-1], "the second run was not queued"
    with_bars = mcmc.get_samples(group_by_chain=True)
    mcmc.progress_bar = False
    mcmc.run(jax.random.PRNGKey(1), X, Y)
    without = mcmc.get_samples(group_by_chain=True)
    for name in with_bars:
        np.testing.assert_array_equal(with_bars[name], without[name])
    assert capsys.readouterr().err.count("100%") >= 6  # every chain's bar of both runs completed


def test_queued_sequential_chains_fill_their_bars_whatever_speed_is_measured_meanwhile(monkeypatch, capsys):
    # A queued chain's wait includes the chains queued before it: however slow that makes the loop
    # look, the chains queued as one call each are never split into chunks afterwards.
    mcmc = make_mcmc(chain_method="sequential", num_chains=3, progress_bar=True)
    mcmc.run(jax.random.PRNGKey(1), X, Y)
    expected = mcmc.get_samples(group_by_chain=True)
    monkeypatch.setattr(progress, "expects_one_call", lambda *a: True)
    monkeypatch.setattr(progress, "_chunk", lambda seconds_per_iteration: 1)  # every estimate: slow
    mcmc.run(jax.random.PRNGKey(1), X, Y)
    for name, draws in mcmc.get_samples(group_by_chain=True).items():
        np.testing.assert_array_equal(draws, expected[name])
    assert capsys.readouterr().err.count("sample chain") >= 6


def test_state_pickles_and_resumes():
    mcmc = make_mcmc(num_chains=1)
    mcmc.warmup(jax.random.PRNGKey(0), X, Y)
    restored = pickle.loads(pickle.dumps(mcmc.post_warmup_state))
    other = make_mcmc(num_chains=1)
    other.post_warmup_state = restored
    other.run(jax.random.PRNGKey(0), X, Y)
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    np.testing.assert_array_equal(other.get_samples()["slope"], mcmc.get_samples()["slope"])


def test_print_summary_warnings(capsys):
    def funnel():
        v = sample("v", dist.Normal(0.0, 3.0))
        sample("x", dist.Normal(jnp.zeros(5), jnp.exp(v / 2)))

    mcmc = MCMC(NUTS(funnel, max_tree_depth=3), num_warmup=100, num_samples=200, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(1))
    mcmc.print_summary()
    out = capsys.readouterr().out
    assert "Number of divergences" in out and "maximum tree depth of 3" in out


def test_summary_excludes_deterministic(capsys):
    mcmc = make_mcmc()
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    mcmc.print_summary(exclude_deterministic=True)
    assert "double_slope" not in capsys.readouterr().out
    mcmc.print_summary(exclude_deterministic=False)
    assert "double_slope" in capsys.readouterr().out


def test_potential_fn_kernel_and_static_hmc():
    mcmc = MCMC(
        HMC(potential_fn=lambda z: 0.5 * jnp.sum(z["x"] ** 2), trajectory_length=1.5),
        num_warmup=200,
        num_samples=500,
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(0), init_params={"x": jnp.zeros(2)})
    draws = np.asarray(mcmc.get_samples()["x"])
    assert abs(draws.mean()) < 0.25 and abs(draws.std() - 1) < 0.2


def test_parallel_falls_back_to_vectorized_with_warning():
    mcmc = make_mcmc(chain_method="parallel", num_chains=2)
    if jax.local_device_count() >= 2:
        mcmc.run(jax.random.PRNGKey(0), X, Y)
    else:
        with pytest.warns(UserWarning, match="running the chains vectorized") as record:
            mcmc.run(jax.random.PRNGKey(0), X, Y)
        assert len([w for w in record if "running the chains vectorized" in str(w.message)]) == 1  # said once
    assert mcmc.get_samples(group_by_chain=True)["slope"].shape == (2, 200)


def test_parallel_uses_one_device_per_chain():
    code = (
        "import os; os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2';"
        "import warnings, jax, numpy as np; warnings.simplefilter('error');"
        "import npr.distributions as dist; from npr.handlers import sample; from npr.infer import MCMC, NUTS;"
        "m = MCMC(NUTS(lambda: sample('x', dist.Normal(0.0, 1.0))), num_warmup=50, num_samples=50, num_chains=2,"
        " chain_method='parallel', progress_bar=False); m.run(jax.random.PRNGKey(0));"
        "from npr.infer.chain import TRACE_COUNTS; traced = TRACE_COUNTS['chain']; m.run(jax.random.PRNGKey(1));"
        "print(jax.local_device_count(), m.get_samples(group_by_chain=True)['x'].shape, TRACE_COUNTS['chain'] - traced)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "(2,", "50)", "0"]  # the second run compiles nothing


class TestBadInput:
    @pytest.mark.parametrize(
        "kwargs,match",
        [
            ({"num_chains": 0}, "num_chains must be >= 1"),
            ({"thinning": 0}, "thinning must be a positive integer"),
            ({"num_samples": 0}, "num_samples must be >= 1"),
            ({"chain_method": "threads"}, "chain_method must be one of"),
        ],
    )
    def test_settings(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            make_mcmc(**kwargs)

    def test_unknown_extra_field_lists_known_ones(self):
        with pytest.raises(ValueError, match=r"unknown extra_fields \['velocity'\]; known fields are \['num_steps'"):
            make_mcmc().run(jax.random.PRNGKey(0), X, Y, extra_fields=("velocity",))

    def test_init_params_leading_dim(self):
        with pytest.raises(ValueError, match="leading dim of num_chains=2"):
            make_mcmc().run(jax.random.PRNGKey(0), X, Y, init_params={"slope": jnp.zeros(3), "noise": jnp.zeros(3)})

    def test_init_params_structure(self):
        with pytest.raises(ValueError, match=r"must name the latent sites \['noise', 'slope'\]"):
            make_mcmc(num_chains=1).run(jax.random.PRNGKey(0), X, Y, init_params={"slope": jnp.zeros(())})

    def test_continue_with_different_data_shape(self):
        mcmc = make_mcmc(num_chains=1)
        mcmc.warmup(jax.random.PRNGKey(0), X, Y)
        with pytest.raises(ValueError, match="cannot continue from post_warmup_state"):

            def other(x, y=None):
                sample("other", dist.Normal(0.0, 1.0))

            mcmc.kernel = NUTS(other)
            mcmc.run(jax.random.PRNGKey(0), X, Y)

    def test_kernel_needs_model_or_potential(self):
        with pytest.raises(ValueError, match="exactly one of model or potential_fn"):
            NUTS()


@pytest.mark.parametrize("num_chains", [1, 4])
def test_a_run_known_to_be_one_call_completes_its_bar_after_the_draws_are_dispatched(num_chains, capsys, monkeypatch):
    # One chain: one program call; 4 chains on 2 cores: groups of chains run by host threads, a call
    # that returns once they are done. Either way the bar is drawn once, timed over the whole run.
    monkeypatch.setattr(chain_groups, "host_cores", lambda: 2)
    chunked, grouped = [], []
    original = progress.run_in_chunks
    monkeypatch.setattr(progress, "run_in_chunks", lambda *a, **k: chunked.append(a) or original(*a, **k))
    run_grouped = chain_groups.run_grouped
    monkeypatch.setattr(chain_groups, "run_grouped", lambda *a, **k: grouped.append(a) or run_grouped(*a, **k))
    runs = {}
    for bar in (True, False):
        mcmc = make_mcmc(num_chains=num_chains, chain_method="vectorized", progress_bar=bar)
        mcmc.run(jax.random.PRNGKey(0), X, Y)
        mcmc.post_warmup_state = mcmc.last_state
        capsys.readouterr()
        chunked.clear()
        started = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(1), X, Y)
        seconds = time.perf_counter() - started
        runs[bar] = mcmc.get_samples()["slope"], capsys.readouterr().err, list(chunked), seconds
    (with_bar, err, calls, seconds), (without_bar, _, _, _) = runs[True], runs[False]
    assert bool(grouped) == (num_chains > 1)
    assert not calls  # the speed of the last run says it is one call: no chunks, the bar completes later
    np.testing.assert_array_equal(with_bar, without_bar)
    final = err.strip().split("\r")[-1]
    label = f"sample {num_chains} chain{'s' if num_chains > 1 else ''}"
    assert label in final and "200/200" in final and "acc. prob" in final
    rate = float(re.search(r"([0-9.]+)it/s", final).group(1))
    assert 200 / rate > 0.3 * seconds  # the bar's clock ran through the run, not just after it
    assert err.count(label) == 1  # too short to watch: drawn once, as it ends


@pytest.mark.parametrize("poll_seconds", [0.0, 10.0])
def test_a_one_call_run_expected_to_end_soon_is_awaited_by_polling(poll_seconds, capsys, monkeypatch):
    # The bar's wait polls the run's numbers when the run is expected within POLL_SECONDS (and blocks
    # otherwise); either way it draws the finished run, and the draws are those of a run without a bar.
    monkeypatch.setattr(progress, "POLL_SECONDS", poll_seconds)
    polls = []
    poll = progress.await_by_polling
    monkeypatch.setattr(progress, "await_by_polling", lambda *a: polls.append(a) or poll(*a))
    mcmc = make_mcmc(num_chains=1, progress_bar=True)
    mcmc.run(jax.random.PRNGKey(0), X, Y)
    mcmc.post_warmup_state = warmed = mcmc.last_state
    polls.clear()
    capsys.readouterr()
    started = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(1), X, Y)
    with_bar, final = mcmc.get_samples()["slope"], capsys.readouterr().err.strip()
    assert len(polls) == (poll_seconds > 0)
    if polls:
        arrays, give_up_at = polls[0]
        assert all(isinstance(x, jax.Array) for x in arrays) and started < give_up_at < started + poll_seconds + 1
    assert "200/200" in final and "acc. prob" in final
    mcmc.progress_bar, mcmc.post_warmup_state = False, warmed
    mcmc.run(jax.random.PRNGKey(1), X, Y)
    np.testing.assert_array_equal(with_bar, mcmc.get_samples()["slope"])


def test_polling_gives_up_at_its_deadline():
    # A run that outlasts the deadline is left to the blocking wait that follows.
    slow = jax.jit(lambda x: jax.lax.fori_loop(0, 200, lambda i, m: jnp.tanh(m @ m), x))
    x = jnp.eye(300) * 0.5
    jax.block_until_ready(slow(x))
    out = slow(x)
    started = time.perf_counter()
    progress.await_by_polling([out], started + 0.001)
    assert not out.is_ready(), "the run ended within 1 ms: make it longer"
    progress.await_by_polling([out], time.perf_counter() + 60.0)
    assert out.is_ready()
