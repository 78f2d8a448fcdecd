import jax
import jax.numpy as jnp
import numpy as np
import pytest

import npr.handlers as h
from npr.handlers import primitives


def two_site_model(Normal):
    def model():
        a = h.sample("a", Normal(0.0, 1.0))
        return h.sample("b", Normal(a, 1.0))

    return model


def test_trace_records_site_fields(Normal):
    tr = h.trace(h.seed(two_site_model(Normal), jax.random.PRNGKey(0))).get_trace()
    assert list(tr) == ["a", "b"]
    site = tr["a"]
    for field in ["name", "type", "fn", "args", "kwargs", "value", "is_observed", "scale", "cond_indep_stack"]:
        assert field in site
    assert site["type"] == "sample" and not site["is_observed"]
    assert float(tr["b"]["fn"].loc) == float(tr["a"]["value"])


def test_block_all_and_block_a(Normal):
    model = h.seed(two_site_model(Normal), jax.random.PRNGKey(0))
    assert not {"a", "b"} & set(h.trace(h.block(model)).get_trace())
    tr = h.trace(h.block(model, lambda site: site["name"] == "a")).get_trace()
    assert "a" not in tr and "b" in tr
    assert list(h.trace(h.block(model, expose=["a"])).get_trace()) == ["a"]


def test_replay_reuses_values(Normal):
    model = two_site_model(Normal)
    guide_trace = h.trace(h.seed(model, 1)).get_trace()
    replayed = h.trace(h.seed(h.replay(model, guide_trace), 2)).get_trace()
    assert replayed["a"]["value"] == guide_trace["a"]["value"]
    assert replayed["b"]["value"] == guide_trace["b"]["value"]


def test_substitute_and_condition(Normal):
    model = h.seed(two_site_model(Normal), 0)
    tr = h.trace(h.substitute(model, {"a": -1})).get_trace()
    assert tr["a"]["value"] == -1 and not tr["a"]["is_observed"]
    assert float(tr["b"]["fn"].loc) == -1.0
    tr = h.trace(h.condition(model, {"b": 2.0})).get_trace()
    assert tr["b"]["is_observed"] and tr["b"]["value"] == 2.0
    tr = h.trace(h.substitute(model, substitute_fn=lambda m: 5.0 if m["name"] == "a" else None)).get_trace()
    assert tr["a"]["value"] == 5.0


def test_seed_splits_per_site_and_is_reproducible(Normal):
    model = lambda: (h.sample("x", Normal()), h.sample("y", Normal()))
    x1, y1 = h.seed(model, 3)()
    x2, y2 = h.seed(model, 3)()
    assert x1 != y1
    assert x1 == x2 and y1 == y2
    seeded = h.seed(model, 3)
    assert seeded() == seeded()  # every call restarts from the seed


@pytest.mark.parametrize(
    "key", [7, np.int64(7), jax.random.PRNGKey(7), jax.random.key(7)], ids=["int", "numpy-int", "legacy", "typed"]
)
def test_seed_accepts_every_key_kind(Normal, key):
    value = h.seed(lambda: h.sample("x", Normal()), key)()
    assert np.isfinite(value)


def test_seed_accepts_key_data_of_another_default_prng(Normal):
    with jax.default_prng_impl("rbg"):  # four-word key data
        draws = [h.seed(lambda: h.sample("x", Normal()), jax.random.PRNGKey(k))() for k in (0, 1)]
    assert np.all(np.isfinite(draws)) and draws[0] != draws[1]
    with pytest.raises(ValueError, match=r"shape \(2,\)"):  # four words where the default wants two
        h.seed(lambda: None, jnp.zeros(4, jnp.uint32))


def test_seed_rejects_bad_key(Normal):
    with pytest.raises(ValueError, match="seed expects an int"):
        h.seed(lambda: None, jnp.zeros(3))


def test_handler_order_matters(Normal):
    model = two_site_model(Normal)
    recorded = h.trace(h.seed(model, 5)).get_trace()
    # The outermost handler processes a site last, so its value wins.
    tr = h.trace(h.substitute(h.replay(h.seed(model, 0), recorded), {"a": 1.0})).get_trace()
    assert tr["a"]["value"] == 1.0
    tr = h.trace(h.replay(h.substitute(h.seed(model, 0), {"a": 1.0}), recorded)).get_trace()
    assert tr["a"]["value"] == recorded["a"]["value"]
    # condition outside substitute observes; substitute outside condition leaves observed sites alone.
    tr = h.trace(h.condition(h.substitute(h.seed(model, 0), {"a": 1.0}), {"a": 2.0})).get_trace()
    assert tr["a"]["value"] == 2.0 and tr["a"]["is_observed"]
    tr = h.trace(h.substitute(h.condition(h.seed(model, 0), {"a": 2.0}), {"a": 1.0})).get_trace()
    assert tr["a"]["value"] == 2.0 and tr["a"]["is_observed"]
    # block inside trace hides; trace inside block records.
    with h.trace() as outer:
        with h.block():
            with h.trace() as inner:
                h.seed(model, 0)()
    assert list(inner) == ["a", "b"] and list(outer) == []


def test_scale_mask_do_infer_config(Normal):
    model = lambda: h.sample("x", Normal(), obs=1.0)
    tr = h.trace(h.scale(h.scale(model, 2.0), 3.0)).get_trace()
    assert tr["x"]["scale"] == 6.0
    tr = h.trace(h.mask(model, jnp.array(False))).get_trace()
    assert not tr["x"]["mask"]
    latent = two_site_model(Normal)
    tr = h.trace(h.seed(h.do(latent, {"a": 10.0}), 0)).get_trace()
    assert tr["a"]["value"] == 10.0 and tr["a"]["mask"] is False and not tr["a"]["is_observed"]
    assert float(tr["b"]["fn"].loc) == 10.0
    tr = h.trace(h.infer_config(model, lambda m: {"tag": m["name"]})).get_trace()
    assert tr["x"]["infer"] == {"tag": "x"}
    with pytest.raises(ValueError, match="scale must be positive"):
        h.scale(model, -1.0)


def test_lift_turns_params_into_samples(Normal):
    model = lambda: h.param("w", 0.5)
    tr = h.trace(h.seed(h.lift(model, {"w": Normal(10.0, 0.01)}), 0)).get_trace()
    assert tr["w"]["type"] == "sample" and abs(float(tr["w"]["value"]) - 10.0) < 0.1


def test_param_deterministic_factor_prng_key(Normal):
    def model():
        w = h.param("w", jnp.ones(2), constraint=lambda x: x > 0, event_dim=1)
        d = h.deterministic("d", w * 2)
        h.factor("f", -3.0)
        return d, h.prng_key()

    tr = h.trace(h.seed(model, 0)).get_trace()
    assert tr["w"]["type"] == "param" and tr["w"]["kwargs"]["event_dim"] == 1
    np.testing.assert_allclose(tr["d"]["value"], [2.0, 2.0])
    assert tr["f"]["is_observed"] and float(tr["f"]["fn"].log_prob(tr["f"]["value"])) == -3.0
    d, key = h.seed(model, 0)()
    assert key.shape == (2,)
    tr = h.trace(h.substitute(model, {"w": jnp.full(2, 4.0)})).get_trace()
    np.testing.assert_allclose(tr["d"]["value"], [8.0, 8.0])


def test_user_defined_messenger(Normal):
    class Recorder(h.Messenger):
        def __init__(self, fn=None):
            super().__init__(fn)
            self.names = []

        def process_message(self, msg):
            self.names.append(msg["name"])

        def postprocess_message(self, msg):
            if msg["type"] == "sample":
                msg["value"] = msg["value"] * 0 + 42.0

    recorder = Recorder(h.seed(two_site_model(Normal), 0))
    assert float(recorder()) == 42.0
    assert recorder.names == ["a", "b"]


def test_stack_restored_after_exception(Normal):
    def broken():
        h.sample("a", Normal())
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        h.trace(h.seed(broken, 0)).get_trace()
    assert primitives._THREAD.handlers == []


@pytest.mark.parametrize("wrap", [jax.jit, lambda f: f], ids=["jit", "eager"])
def test_seeded_model_under_jit_and_vmap(Normal, wrap):
    def model(loc):
        return h.sample("x", Normal(loc, 1.0))

    run = wrap(lambda key, loc: h.seed(model, key)(loc))
    keys = jax.random.split(jax.random.PRNGKey(0), 500)
    draws = jax.vmap(run, in_axes=(0, None))(keys, 3.0)
    assert draws.shape == (500,)
    # Independent float32 normals: a coincident pair among 500 has probability ~1e-2, three are negligible.
    assert len(np.unique(np.asarray(draws))) >= 498
    assert abs(float(draws.mean()) - 3.0) < 5 / np.sqrt(500)
    assert run(keys[0], 3.0) == draws[0]


class TestPlate:
    def test_broadcasts_and_records_frames(self, Normal):
        def model():
            with h.plate("outer", 3):
                with h.plate("inner", 4):
                    return h.sample("x", Normal())

        tr = h.trace(h.seed(model, 0)).get_trace()
        assert tr["x"]["value"].shape == (4, 3)
        frames = tr["x"]["cond_indep_stack"]
        assert [(f.name, f.dim, f.size) for f in frames] == [("outer", -1, 3), ("inner", -2, 4)]

    def test_explicit_dim(self, Normal):
        def model():
            with h.plate("a", 2, dim=-2):
                return h.sample("x", Normal())

        assert h.seed(model, 0)().shape == (2, 1)

    def test_existing_batch_shape_is_kept(self, Normal):
        def model():
            with h.plate("data", 5):
                return h.sample("x", Normal(jnp.zeros(5), 1.0))

        assert h.seed(model, 0)().shape == (5,)

    def test_incompatible_batch_shape_names_site_and_plate(self, Normal):
        def model():
            with h.plate("data", 5):
                h.sample("x", Normal(jnp.zeros(3), 1.0))

        with pytest.raises(ValueError, match="site 'x'.*plate 'data' of size 5"):
            h.seed(model, 0)()

    def test_subsample_scales_and_indexes(self, Normal):
        data = jnp.arange(100.0)

        def model():
            with h.plate("data", 100, subsample_size=10) as idx:
                batch = h.subsample(data, event_dim=0)
                h.sample("obs", Normal(0.0, 1.0), obs=batch)
            return idx, batch

        tr = h.trace(h.seed(model, 0)).get_trace()
        idx, batch = h.seed(model, 0)()
        assert tr["obs"]["scale"] == 10.0
        assert idx.shape == (10,) and len(np.unique(np.asarray(idx))) == 10
        np.testing.assert_array_equal(batch, data[idx])

    def test_subsample_without_seed(self):
        with pytest.raises(ValueError, match="plate 'data': subsampling needs a PRNG key"):
            with h.plate("data", 10, subsample_size=2):
                pass

    @pytest.mark.parametrize(
        "kwargs,match",
        [({"size": -1}, "size must be non-negative"), ({"size": 5, "subsample_size": 6}, "subsample_size")],
    )
    def test_bad_plate_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            h.plate("p", **kwargs)

    def test_same_plate_name_different_sizes(self, Normal):
        def model():
            with h.plate("data", 3):
                h.sample("x", Normal())
            with h.plate("data", 4):
                h.sample("y", Normal())

        with pytest.raises(ValueError, match="plate 'data' is used with size 4"):
            h.trace(h.seed(model, 0)).get_trace()

    def test_empty_plate(self, Normal):
        def model():
            with h.plate("data", 0):
                return h.sample("x", Normal())

        assert h.seed(model, 0)().shape == (0,)


class TestBadInput:
    def test_duplicate_site_names(self, Normal):
        def model():
            h.sample("x", Normal())
            h.sample("x", Normal())

        with pytest.raises(ValueError, match="site 'x' appears twice"):
            h.trace(h.seed(model, 0)).get_trace()

    def test_latent_sample_without_key(self, Normal):
        with pytest.raises(ValueError, match=r"site 'x'.*seed\(model, rng_seed=0\)"):
            h.sample("x", Normal())
        with pytest.raises(ValueError, match=r"site 'x'.*seed"):
            h.trace(lambda: h.sample("x", Normal())).get_trace()
        assert np.isfinite(h.sample("x", Normal(), rng_key=jax.random.PRNGKey(0)))

    def test_observed_shape_would_broadcast(self, Normal):
        with pytest.raises(ValueError, match=r"site 'y'.*\(5, 1\).*batch shape \(5,\).*\(5, 5\)"):
            h.sample("y", Normal(jnp.zeros(5), 1.0), obs=jnp.zeros((5, 1)))
        h.sample("y", Normal(0.0, 1.0), obs=jnp.zeros(5))  # scalar distribution, vector data: fine

    def test_nan_in_observed_data(self, Normal):
        data = np.array([0.0, 1.0, np.nan])
        with pytest.raises(ValueError, match=r"site 'y'.*nan at index \(2,\)"):
            h.sample("y", Normal(0.0, 1.0), obs=data)

    def test_substitute_and_condition_wrong_shape(self, Normal):
        model = h.seed(lambda: h.sample("x", Normal(jnp.zeros(3), 1.0)), 0)
        with pytest.raises(ValueError, match=r"site 'x'.*substitute.*shape \(4,\).*\(3,\)"):
            h.substitute(model, {"x": jnp.zeros(4)})()
        with pytest.raises(ValueError, match=r"site 'x'.*condition.*shape \(2, 3\)"):
            h.condition(model, {"x": jnp.zeros((2, 3))})()

    def test_param_init_violates_constraint(self):
        positive = lambda x: x > 0
        with pytest.raises(ValueError, match="site 'sigma'.*violates its constraint"):
            h.param("sigma", -1.0, constraint=positive)

    def test_wrapping_non_callable(self):
        with pytest.raises(ValueError, match="expects a callable"):
            h.trace(3)

    def test_inputs_not_mutated(self, Normal):
        data = {"a": np.array([1.0])}
        copy = {"a": data["a"].copy()}
        h.trace(h.substitute(h.seed(lambda: h.sample("a", Normal(jnp.zeros(1), 1.0)), 0), data)).get_trace()
        assert data.keys() == copy.keys() and np.array_equal(data["a"], copy["a"])


def test_replay_reuses_plate_subsample(Normal):
    data = jnp.arange(50.0)

    def model():
        with h.plate("data", 50, subsample_size=5):
            return h.subsample(data, event_dim=0)

    guide_trace = h.trace(h.seed(model, 1)).get_trace()
    assert guide_trace["data"]["type"] == "plate"
    replayed = h.seed(h.replay(model, guide_trace), 2)()
    np.testing.assert_array_equal(replayed, data[guide_trace["data"]["value"]])
    assert not np.array_equal(h.seed(model, 2)(), replayed)


def test_models_traced_in_threads_at_once_see_only_their_own_handlers(Normal):
    # Each thread traces its model many times while the other does the same: with one shared
    # stack, a thread would record the other's sites or find its own handlers gone.
    import threading

    barrier = threading.Barrier(2)
    found = {}

    def model(name):
        for i in range(50):
            h.sample(f"{name}{i}", Normal())

    def work(name):
        barrier.wait()
        names = set()
        for seed in range(20):
            names |= set(h.trace(h.seed(model, seed)).get_trace(name))
        found[name] = names

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == {name: {f"{name}{i}" for i in range(50)} for name in ("a", "b")}
    assert primitives._THREAD.handlers == []
