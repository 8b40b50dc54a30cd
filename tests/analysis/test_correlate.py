"""Vectorised bootstrap correlations against scipy on explicit resamples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import Options
from analysis import correlate as K


def _data(n=25, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    x[:6] = x[0]  # ties
    y[10:13] = y[10]
    return x, y


def _explicit(counts):
    return [np.repeat(np.arange(counts.shape[1]), row.astype(int)) for row in counts]


def test_resample_counts_are_seeded_and_sum_to_n():
    a = K.resample_counts(30, 50, np.random.default_rng(3))
    b = K.resample_counts(30, 50, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert (a.sum(axis=1) == 30).all()


@pytest.mark.parametrize(
    ("method", "reference"),
    [("spearman", stats.spearmanr), ("pearson", stats.pearsonr), ("kendall", stats.kendalltau)],
)
def test_every_resample_matches_scipy_on_the_explicit_sample(method, reference):
    x, y = _data()
    counts = K.resample_counts(len(x), 60, np.random.default_rng(1))
    if method == "spearman":
        got = K.weighted_pearson(counts, K.resample_ranks(counts, x), K.resample_ranks(counts, y))
    elif method == "pearson":
        got = K.weighted_pearson(counts, x, y)
    else:
        got = K.kendall_tau_b(counts, x, y)
    want = [reference(x[i], y[i]).statistic for i in _explicit(counts)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_resample_ranks_are_scipy_midranks():
    x, _ = _data()
    counts = K.resample_counts(len(x), 5, np.random.default_rng(2))
    ranks = K.resample_ranks(counts, x)
    for b, idx in enumerate(_explicit(counts)):
        np.testing.assert_allclose(ranks[b][idx], stats.rankdata(x[idx]))


def test_point_estimates_are_scipys_and_intervals_cover_them():
    x, y = _data(n=40)
    table = K.correlations(pd.DataFrame({"x": x, "y": y}), [("x", "y")])
    for row in table.itertuples():
        ref = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}
        res = ref[row.method](x, y)
        assert row.r == pytest.approx(res.statistic) and row.p_value == pytest.approx(res.pvalue)
        assert row.ci_low < row.r < row.ci_high


def test_the_interval_is_the_percentile_interval_of_the_resamples():
    x, y = _data(n=30)
    options = Options(n_boot=400, seed=5, confidence=0.9)
    table = K.correlations(
        pd.DataFrame({"x": x, "y": y}), [("x", "y")], methods=("pearson",), options=options
    )
    counts = K.resample_counts(30, 400, np.random.default_rng([5, 30]))
    want = np.quantile(K.weighted_pearson(counts, x, y), [0.05, 0.95])
    np.testing.assert_allclose(table[["ci_low", "ci_high"]].to_numpy()[0], want)


def test_strong_dependence_excludes_zero_and_independence_does_not():
    rng = np.random.default_rng(4)
    x = rng.normal(size=60)
    frame = pd.DataFrame({"x": x, "dep": x + 0.3 * rng.normal(size=60), "ind": rng.normal(size=60)})
    table = K.correlations(frame, [("x", "dep"), ("x", "ind")]).set_index(["y", "method"])
    assert (table.loc["dep", "ci_low"] > 0).all()
    assert ((table.loc["ind", "ci_low"] < 0) & (table.loc["ind", "ci_high"] > 0)).all()


def test_pairs_use_the_rows_where_both_are_finite():
    x, y = _data(n=30)
    y[:4] = np.nan
    table = K.correlations(pd.DataFrame({"x": x, "y": y}), [("x", "y")])
    assert (table["n"] == 26).all()
    assert table.iloc[0]["r"] == pytest.approx(stats.spearmanr(x[4:], y[4:]).statistic)


def test_a_constant_column_gives_no_correlation():
    table = K.correlations(pd.DataFrame({"x": np.arange(10.0), "c": np.ones(10)}), [("x", "c")])
    assert table[["r", "ci_low", "ci_high"]].isna().all().all()


def test_kendall_intervals_stop_above_the_size_limit():
    x, y = _data(n=40)
    options = Options(kendall_max_n=30)
    table = K.correlations(pd.DataFrame({"x": x, "y": y}), [("x", "y")], options=options)
    kendall = table.set_index("method").loc["kendall"]
    assert np.isfinite(kendall["r"]) and np.isnan(kendall["ci_low"])


def test_unknown_methods_are_rejected():
    with pytest.raises(ValueError, match="known"):
        K.correlations(pd.DataFrame({"x": [1.0], "y": [2.0]}), [("x", "y")], methods=("tau",))


def test_study_correlations_pair_quantities_and_hyperparameters(lr_study):
    table = K.study_correlations(lr_study)
    pairs = set(zip(table["x"], table["y"], strict=True))
    assert ("gc", "nc_cdnv") in pairs and ("train.lr", "gc") in pairs
    assert ("train.lr", "train.seed") not in pairs
    assert "gc_exact" not in set(table["x"]) | set(table["y"])  # not measured
    lr_gc = table[
        (table["x"] == "train.lr") & (table["y"] == "gc") & (table["method"] == "spearman")
    ]
    assert lr_gc["ci_high"].iloc[0] < 0


def test_fisher_interval_known_answers():
    import math

    from analysis.correlate import fisher_interval

    z = 1.959963984540054  # the normal's 97.5 % point
    # Pearson, r = 0.5, n = 103: atanh(0.5) ± z / 10
    low, high = fisher_interval(0.5, 103, "pearson", 0.95)
    assert math.isclose(low, math.tanh(math.atanh(0.5) - z / 10), rel_tol=1e-12)
    assert math.isclose(high, math.tanh(math.atanh(0.5) + z / 10), rel_tol=1e-12)
    # Spearman: variance 1 + r²/2 (Bonett & Wright 2000); Kendall: 0.437 over n − 4
    se = math.sqrt((1 + 0.3**2 / 2) / (53 - 3))
    assert math.isclose(fisher_interval(-0.3, 53, "spearman", 0.95)[0],
                        math.tanh(math.atanh(-0.3) - z * se), rel_tol=1e-12)  # fmt: skip
    se = math.sqrt(0.437 / (54 - 4))
    assert math.isclose(fisher_interval(0.2, 54, "kendall", 0.95)[1],
                        math.tanh(math.atanh(0.2) + z * se), rel_tol=1e-12)  # fmt: skip
    assert all(math.isnan(b) for b in fisher_interval(1.0, 50, "pearson", 0.95))


def test_above_boot_max_n_intervals_are_fishers_and_agree_with_the_bootstrap():
    from analysis import Options
    from analysis.correlate import correlations, fisher_interval

    rng = np.random.default_rng(3)
    x = rng.normal(size=600)
    frame = pd.DataFrame({"a": x, "b": 0.6 * x + 0.8 * rng.normal(size=600)})
    boot = correlations(frame, [("a", "b")], options=Options(boot_max_n=10_000))
    fisher = correlations(frame, [("a", "b")], options=Options(boot_max_n=100))
    for method in ("pearson", "spearman", "kendall"):
        f = fisher[fisher["method"] == method].iloc[0]
        assert (f.ci_low, f.ci_high) == pytest.approx(fisher_interval(f.r, 600, method, 0.95))
        b = boot[boot["method"] == method].iloc[0]
        if np.isfinite(b.ci_low):  # Kendall has no bootstrap above kendall_max_n
            assert f.ci_low == pytest.approx(b.ci_low, abs=0.03)
            assert f.ci_high == pytest.approx(b.ci_high, abs=0.03)
