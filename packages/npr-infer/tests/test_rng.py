"""The loop-free threefry keys used inside transitions (npr.infer.rng)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from npr.infer.hmc import transition_keys
from npr.infer.integrator import draw_momentum
from npr.infer.rng import STRAIGHT_THREEFRY, normal, threefry2x32, turn, uniform, words


def _key(seed):
    return jax.random.wrap_key_data(jax.random.key_data(jax.random.PRNGKey(seed)), impl=STRAIGHT_THREEFRY)


def test_hash_is_jax_threefry_bit_for_bit():
    rng = np.random.default_rng(0)
    for _ in range(5):
        key = jnp.asarray(rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32))
        count = jnp.asarray(rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32))
        ours = jnp.concatenate(threefry2x32(key, count[:32], count[32:]))
        np.testing.assert_array_equal(ours, jax.extend.random.threefry_2x32(key, count))


def test_compiles_without_a_loop():
    def draw(key_data, impl):
        return jax.random.uniform(jax.random.wrap_key_data(key_data, impl=impl), (3,))

    data = jax.random.key_data(jax.random.PRNGKey(0))
    ours = jax.jit(lambda k: draw(k, STRAIGHT_THREEFRY)).lower(data).compile().as_text()
    default = jax.jit(lambda k: draw(k, "threefry2x32")).lower(data).compile().as_text()
    assert " while(" not in ours
    if jax.default_backend() == "cpu":  # the reason for these keys: JAX's CPU lowering is a loop
        assert " while(" in default


@pytest.mark.parametrize("sampler, reference", [("uniform", stats.uniform), ("normal", stats.norm)])
def test_draws_follow_their_distribution(sampler, reference):
    draws = np.asarray(getattr(jax.random, sampler)(_key(1), (20000,)))
    assert stats.kstest(draws, reference.cdf).pvalue > 1e-3


def test_split_and_fold_in_give_independent_streams():
    key = _key(2)
    children = jax.random.split(key, 3)
    folded = [jax.random.fold_in(key, i) for i in range(3)]
    draws = [np.asarray(jax.random.uniform(k, (5000,))) for k in list(children) + folded + [key]]
    correlations = np.corrcoef(np.stack(draws))
    off_diagonal = correlations[~np.eye(len(draws), dtype=bool)]
    assert np.max(np.abs(off_diagonal)) < 0.06  # 4 standard errors of a correlation over 5000 pairs
    assert len({tuple(np.asarray(jax.random.key_data(k))) for k in list(children) + folded}) == 6


def test_vmap_draws_equal_one_key_at_a_time():
    keys = jax.random.split(_key(3), 4)
    batched = jax.vmap(lambda k: jax.random.normal(k, (7,)))(keys)
    for i in range(4):
        np.testing.assert_array_equal(batched[i], jax.random.normal(keys[i], (7,)))


def test_transition_keys_advance_the_chain_key_data():
    rng = jax.random.key_data(jax.random.PRNGKey(4))
    next_rng, key_momentum, key_transition = transition_keys(rng)
    assert next_rng.dtype == jnp.uint32 and next_rng.shape == rng.shape
    assert not np.array_equal(next_rng, rng)
    assert jax.random.key_impl(key_momentum) == jax.random.key_impl(_key(0))
    assert key_transition.dtype == jnp.uint32 and key_transition.shape == (2,)
    assert not np.array_equal(jax.random.key_data(key_momentum), key_transition)


def test_transition_keys_from_another_default_prng():
    with jax.default_prng_impl("rbg"):  # four-word key data
        rng = jax.random.key_data(jax.random.PRNGKey(4))
        next_rng, key_momentum, _ = transition_keys(rng)
    assert next_rng.shape == rng.shape and not np.array_equal(next_rng, rng)
    assert jax.random.key_impl(key_momentum) == jax.random.key_impl(_key(0))


def test_words_and_uniform():
    key = jax.random.key_data(jax.random.PRNGKey(5))
    w0, w1 = words(key, 3, jnp.arange(20000))
    assert len(set(np.asarray(w0).tolist())) > 19990  # 32-bit words: a handful of collisions at most
    for word in (w0, w1):
        draws = np.asarray(uniform(word, jnp.float32))
        assert draws.min() >= 0 and draws.max() < 1
        assert stats.kstest(draws, stats.uniform.cdf).pvalue > 1e-3
    other, _ = words(key, 4, jnp.arange(20000))
    assert abs(np.corrcoef(np.asarray(uniform(w0, jnp.float32)), np.asarray(uniform(other, jnp.float32)))[0, 1]) < 0.03
    assert uniform(w0, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32).dtype == jnp.result_type(float)


def test_mcmc_runs_with_the_rbg_default_prng():
    import npr.distributions as dist
    from npr.handlers import sample
    from npr.infer import MCMC, NUTS

    with jax.default_prng_impl("rbg"):
        mcmc = MCMC(
            NUTS(lambda: sample("x", dist.Normal(1.0, 2.0))), num_warmup=200, num_samples=1000, progress_bar=False
        )
        mcmc.run(jax.random.PRNGKey(0))
    x = np.asarray(mcmc.get_samples()["x"])
    assert mcmc.last_state.rng.shape[-1] == 4
    assert abs(x.mean() - 1.0) < 0.5 and abs(x.std() - 2.0) < 0.4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_box_muller_normals_are_standard_normal_and_independent(dtype):
    with jax.enable_x64(dtype == "float64"):
        key = jnp.array([3, 11], jnp.uint32)
        draws = np.asarray(jax.jit(lambda k: normal(k, (20001, 3), jnp.dtype(dtype)))(key))
        assert draws.shape == (20001, 3) and draws.dtype == np.dtype(dtype)
        assert stats.kstest(draws.ravel(), stats.norm.cdf).pvalue > 1e-3
        # The two draws of a pair (cosine and sine of one angle) and draws of neighbouring counters.
        flat = draws.ravel()
        half = (flat.size + 1) // 2
        for a, b in ((flat[: flat.size - half], flat[half:]), (flat[:-1], flat[1:])):
            assert abs(stats.pearsonr(a, b)[0]) < 4 / np.sqrt(a.size)
            assert abs(stats.pearsonr(a**2, b**2)[0]) < 4 / np.sqrt(a.size)
        if dtype == "float64":  # 52-bit uniforms: far more distinct values than 2^23
            assert len(np.unique(draws)) == draws.size


def test_momenta_from_typed_raw_and_other_keys():
    like, mass_sqrt = jnp.zeros(5), jnp.full(5, 2.0)
    data = jax.random.key_data(jax.random.PRNGKey(4))
    typed = draw_momentum(jax.random.wrap_key_data(data, impl=STRAIGHT_THREEFRY), mass_sqrt, like)
    np.testing.assert_array_equal(typed, draw_momentum(data, mass_sqrt, like))
    np.testing.assert_allclose(typed, 2.0 * normal(data, (5,)), rtol=1e-6)
    other = jax.random.key(0, impl="rbg")  # four words of key data: JAX's own normal draws
    np.testing.assert_allclose(draw_momentum(other, mass_sqrt, like), 2.0 * jax.random.normal(other, (5,)), rtol=1e-6)


@pytest.mark.parametrize("dtype, ulps", [("float32", 2), ("float64", 8)])
def test_turn_is_cos_and_sin_of_the_angle_to_a_few_ulps(dtype, ulps):
    with jax.enable_x64(dtype == "float64"):
        u = np.random.default_rng(2).random(100_000).astype(dtype)
        eighths = np.arange(8) / 8  # every boundary between quarter turns and its neighbours
        u = np.concatenate([u, eighths, np.nextafter(eighths, 1), np.nextafter(eighths + 1 / 8, 0)]).astype(dtype)
        cos, sin = jax.jit(turn)(jnp.asarray(u))
        angle = 2 * np.pi * u.astype(np.float64)
        tolerance = ulps * np.finfo(dtype).eps
        np.testing.assert_allclose(np.asarray(cos, np.float64), np.cos(angle), rtol=0, atol=tolerance)
        np.testing.assert_allclose(np.asarray(sin, np.float64), np.sin(angle), rtol=0, atol=tolerance)
