"""The examples of the seed's documentation, run as written with real distributions."""

import jax
import jax.numpy as jnp
import numpy as np
from jax import random, vmap
from jax.scipy.special import logsumexp

import npr.distributions as dist
from npr.handlers import block, replay, sample, seed, substitute, trace
from npr.infer import fori_collect, hmc, initialize_model, mcmc


def normal_model():
    a = sample("a", dist.Normal(0.0, 1.0))
    return sample("b", dist.Normal(a, 1.0))


def test_block_example():
    model = seed(normal_model, random.PRNGKey(0))
    block_all = block(model)
    block_a = block(model, lambda site: site["name"] == "a")
    trace_block_all = trace(block_all).get_trace()
    assert not {"a", "b"}.intersection(trace_block_all.keys())
    trace_block_a = trace(block_a).get_trace()
    assert "a" not in trace_block_a
    assert "b" in trace_block_a


def test_replay_example():
    def model():
        sample("a", dist.Normal(0.0, 1.0))

    exec_trace = trace(seed(model, random.PRNGKey(0))).get_trace()
    replayed_trace = trace(replay(model, exec_trace)).get_trace()
    assert replayed_trace["a"]["value"] == exec_trace["a"]["value"]


def test_substitute_example():
    def model():
        sample("a", dist.Normal(0.0, 1.0))

    model = seed(model, random.PRNGKey(0))
    exec_trace = trace(substitute(model, {"a": -1})).get_trace()
    assert exec_trace["a"]["value"] == -1


def test_trace_example():
    def model():
        sample("a", dist.Normal(0.0, 1.0))

    exec_trace = trace(seed(model, random.PRNGKey(0))).get_trace()
    site = exec_trace["a"]
    assert site["type"] == "sample" and site["name"] == "a" and not site["is_observed"]
    assert isinstance(site["fn"], dist.Normal) and site["value"].shape == ()


def logistic_data(num=2000):
    true_coefs = np.array([1.0, 2.0, 3.0])
    data = random.normal(random.PRNGKey(2), (num, 3))
    labels = dist.Bernoulli(logits=(true_coefs * data).sum(-1)).sample(random.PRNGKey(3))
    return data, labels


def logistic_model(data, labels):
    coefs_mean = jnp.zeros(3)
    coefs = sample("beta", dist.Normal(coefs_mean, jnp.ones(3)))
    intercept = sample("intercept", dist.Normal(0.0, 10.0))
    return sample("y", dist.Bernoulli(logits=(coefs * data + intercept).sum(-1)), obs=labels)


def test_mcmc_docstring_example_and_log_likelihood(capsys):
    data, labels = logistic_data()
    init_params, potential_fn, constrain_fn = initialize_model(random.PRNGKey(0), logistic_model, data, labels)
    samples = mcmc(300, 300, init_params, potential_fn=potential_fn, constrain_fn=constrain_fn, progbar=False)
    table = capsys.readouterr().out
    assert "beta[0]" in table and "intercept" in table
    np.testing.assert_allclose(np.asarray(samples["beta"]).mean(0), [1.0, 2.0, 3.0], atol=0.35)

    def log_likelihood(rng, params, model, *args, **kwargs):
        model = substitute(seed(model, rng), params)
        model_trace = trace(model).get_trace(*args, **kwargs)
        obs_node = model_trace["y"]
        return obs_node["fn"].log_prob(obs_node["value"])

    def expected_log_likelihood(rng, params, model, *args, **kwargs):
        n = list(params.values())[0].shape[0]
        log_lk_fn = vmap(lambda rng, params: log_likelihood(rng, params, model, *args, **kwargs))
        log_lk_vals = log_lk_fn(random.split(rng, n), params)
        return logsumexp(log_lk_vals, 0) - jnp.log(n)

    result = expected_log_likelihood(random.PRNGKey(2), samples, logistic_model, data, labels)
    # The seed's model adds the intercept to each of the 3 terms before summing: 3 * intercept.
    intercept = 3 * np.asarray(samples["intercept"])[:, None]
    logits = np.einsum("sd,nd->sn", np.asarray(samples["beta"]), np.asarray(data)) + intercept
    y = np.asarray(labels)
    per_draw = y * -np.logaddexp(0, -logits) + (1 - y) * -np.logaddexp(0, logits)
    expected = np.log(np.mean(np.exp(per_draw), axis=0))
    assert result.shape == (len(y),)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)


def test_hmc_docstring_example():
    data, labels = logistic_data()
    init_params, potential_fn, constrain_fn = initialize_model(random.PRNGKey(0), logistic_model, data, labels)
    init_kernel, sample_kernel = hmc(potential_fn, algo="NUTS")
    hmc_state = init_kernel(init_params, trajectory_length=10, num_warmup=300, progbar=False)
    samples = fori_collect(500, sample_kernel, hmc_state, transform=lambda x: constrain_fn(x.z), progbar=False)
    np.testing.assert_allclose(np.asarray(samples["beta"]).mean(0), [1.0, 2.0, 3.0], atol=0.35)
    assert jax.tree_util.tree_leaves(samples)[0].shape[0] == 500
