import numpy as np
import pytest

import npr.diagnostics as diag


def test_seed_layout(capsys):
    rng = np.random.default_rng(0)
    samples = {"coefs": rng.normal(size=(2, 400, 3)) + np.arange(3), "L": rng.normal(size=(2, 400, 2, 2))}
    diag.print_summary(samples, prob=0.89)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["mean", "sd", "5.5%", "94.5%", "n_eff", "r_hat"]
    labels = [line.split()[0] for line in lines[1:8]]
    assert labels == ["coefs[0]", "coefs[1]", "coefs[2]", "L[0,0]", "L[0,1]", "L[1,0]", "L[1,1]"]
    means = [float(line.split()[1]) for line in lines[1:4]]
    np.testing.assert_allclose(means, [0, 1, 2], atol=0.15)


def test_summary_values_agree_with_functions():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 300, 2))
    stats = diag.summary({"x": x}, prob=0.9)["x"]
    pooled = x.reshape(-1, 2)
    np.testing.assert_allclose(stats["mean"], pooled.mean(0))
    np.testing.assert_allclose(stats["sd"], pooled.std(0, ddof=1))
    np.testing.assert_allclose(stats["median"], np.median(pooled, 0))
    np.testing.assert_allclose([stats["hpdi_low"], stats["hpdi_high"]], diag.hpdi(pooled, 0.9))
    np.testing.assert_allclose(stats["n_eff"], diag.effective_sample_size(x))
    np.testing.assert_allclose(stats["r_hat"], diag.split_gelman_rubin(x))
    np.testing.assert_allclose(stats["ess_bulk"], diag.ess_bulk(x))


def test_group_by_chain_false_treats_input_as_one_chain():
    x = np.random.default_rng(2).normal(size=(500,))
    stats = diag.summary({"x": x}, group_by_chain=False)["x"]
    assert np.isclose(stats["n_eff"], diag.effective_sample_size(x[None]))


def test_nested_pytree_names():
    x = np.random.default_rng(3).normal(size=(2, 100))
    stats = diag.summary({"a": {"b": x}, "c": [x, x]})
    assert sorted(stats) == ["a.b", "c.0", "c.1"]


def test_modern_columns_and_warnings(capsys):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 50))
    x[0] += 4.0
    diag.print_summary({"stuck": x}, columns="modern")
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["mean", "sd", "5.5%", "94.5%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]
    assert "site 'stuck' has R-hat" in out and "ESS" in out and "per chain" in out


def test_no_warning_for_good_chains(capsys):
    diag.print_summary({"x": np.random.default_rng(5).normal(size=(2, 2000))})
    assert "Warning" not in capsys.readouterr().out


def test_non_finite_site_is_named():
    x = np.zeros((2, 10))
    x[0, 3] = np.nan
    with pytest.raises(ValueError, match="site 'theta'.*finite"):
        diag.summary({"theta": x})


def test_bad_prob_and_columns():
    x = np.random.default_rng(6).normal(size=(2, 100))
    with pytest.raises(ValueError, match="prob"):
        diag.summary({"x": x}, prob=1.2)
    with pytest.raises(ValueError, match="columns"):
        diag.format_summary({"x": x}, columns="fancy")


def test_too_few_draws_named():
    with pytest.raises(ValueError, match="site 'x'.*at least 4 draws"):
        diag.summary({"x": np.zeros((2, 3))})


def test_version_exposed():
    assert diag.__version__.count(".") == 2
