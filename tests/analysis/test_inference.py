"""Tests, p-values, familywise adjustment and scale-aware intervals against independent
references: scipy, exact enumeration, and Holm's definition written out."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from analysis import inference as I


def test_welch_matches_scipy_interval_and_p_value():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5), rng.normal(1, 3, 7)
    diff, low, high, p = I.welch(a, b, confidence=0.9)
    res = stats.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(0.9)
    assert diff == pytest.approx(b.mean() - a.mean())
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert p == pytest.approx(res.pvalue)


def test_a_positive_quantity_is_compared_as_a_ratio_of_geometric_means():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([2.0, 4.0, 8.0])  # exactly twice as large
    d = I.compare_groups(a, b, "gc", confidence=0.95)
    assert d.log and d.centre_low == pytest.approx(2.0) and d.centre_high == pytest.approx(4.0)
    assert d.change == pytest.approx(100.0) and d.diff == pytest.approx(2.0)
    res = stats.ttest_ind(np.log(b), np.log(a), equal_var=False)
    ci = res.confidence_interval(0.95)
    assert d.p == pytest.approx(res.pvalue)
    assert d.change_low == pytest.approx(100 * (np.exp(ci.low) - 1))
    assert d.change_high == pytest.approx(100 * (np.exp(ci.high) - 1))


def test_a_percent_change_of_a_positive_quantity_never_goes_below_minus_100():
    a = np.array([1.0, 10.0, 100.0])  # wide: a linear interval would reach far below -100 %
    b = np.array([0.5, 0.6, 0.7])
    _, lin_low, _, _ = I.welch(a, b)
    assert 100 * lin_low / a.mean() < -100
    d = I.compare_groups(a, b, "nc_cdnv")
    assert d.log and -100.0 < d.change_low < d.change < d.change_high


def test_an_accuracy_difference_keeps_the_high_group_within_0_and_1():
    a, b = np.array([0.90, 0.95, 0.99]), np.array([0.97, 0.999, 0.98])
    d = I.compare_groups(a, b, "test_acc")
    assert not d.log
    assert d.centre_low + d.diff_high <= 1.0 + 1e-12 and d.centre_low + d.diff_low >= 0.0
    assert d.change_low >= -100.0


def test_a_quantity_that_is_not_positive_everywhere_stays_linear():
    d = I.compare_groups(np.array([0.0, 1.0, 2.0]), np.array([3.0, 4.0, 5.0]), "gc")
    assert not d.log and d.scale == "nonnegative" and d.diff == pytest.approx(3.0)
    assert d.change == pytest.approx(300.0) and d.change_low >= -100.0


def _fieller_by_grid(a, b, grid, confidence=0.95):
    """The ratios on ``grid`` whose Welch statistic for ``b`` against ``ratio · a`` (scipy's)
    stays within the t-quantile at the degrees of freedom scipy gives ``b`` against ``a``."""
    q = stats.t.ppf(0.5 + confidence / 2, stats.ttest_ind(b, a, equal_var=False).df)
    t = stats.ttest_ind(b[None, :], grid[:, None] * a[None, :], axis=1, equal_var=False)
    return grid[np.abs(t.statistic) <= q]


GRID = np.linspace(0.0, 20.0, 200_001)  # ratios, in steps of 1e-4


@pytest.mark.parametrize(
    "low, high",
    [
        ([1.0, 1.2, 0.9], [0.0, 0.05, 0.9]),  # a linear interval reaches -179 %
        ([0.0, 1.0, 1.1, 1.2, 0.9, 1.0], [2.0, 2.2, 0.0, 1.9, 2.1]),  # bounded away from 0
    ],
)
def test_a_positive_quantity_holding_zeros_gets_fiellers_interval_of_the_ratio_of_means(low, high):
    a, b = np.array(low), np.array(high)
    d = I.compare_groups(a, b, "gc")
    assert d.scale == "nonnegative" and not d.log
    assert (d.centre_low, d.centre_high) == pytest.approx((a.mean(), b.mean()))
    assert d.change == pytest.approx(100 * (b.mean() / a.mean() - 1))
    assert d.p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    kept = _fieller_by_grid(a, b, GRID)
    assert kept.max() < GRID[-1]  # bounded
    assert d.change_low == pytest.approx(100 * (kept.min() - 1), abs=2e-2)
    assert d.change_high == pytest.approx(100 * (kept.max() - 1), abs=2e-2)
    assert d.change_low >= -100.0 and d.diff_low == pytest.approx(a.mean() * d.change_low / 100)


def test_the_repro_of_a_percent_change_below_minus_100_is_cut_at_minus_100():
    a, b = np.array([1.0, 1.2, 0.9]), np.array([0.0, 0.05, 0.9])
    _, lin_low, _, _ = I.welch(a, b)
    assert 100 * lin_low / a.mean() == pytest.approx(-179.4, abs=0.1)  # the old interval
    d = I.compare_groups(a, b, "gc")
    assert d.change_low == -100.0 and d.diff_low == pytest.approx(-a.mean())


def test_a_ratio_has_no_upper_bound_when_the_low_groups_mean_may_be_0():
    a, b = np.array([0.0, 0.0, 0.9]), np.array([1.0, 1.2, 0.9])
    d = I.compare_groups(a, b, "nc_cdnv")
    kept = _fieller_by_grid(a, b, GRID)
    assert kept.max() == GRID[-1]  # every large ratio is kept
    assert np.isnan(d.change_high) and np.isnan(d.diff_high)
    assert d.change_low == pytest.approx(100 * (kept.min() - 1), abs=2e-2)


def test_a_low_group_of_zeros_has_no_percent_change():
    d = I.compare_groups(np.zeros(3), np.array([1.0, 1.2, 0.9]), "train_loss")
    assert np.isnan([d.change, d.change_low, d.change_high]).all()
    assert d.diff == pytest.approx(31 / 30)


@pytest.mark.parametrize("seed", range(5))
def test_fiellers_interval_holds_no_change_exactly_when_welch_does_not_reject(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        a = rng.exponential(1.0, rng.integers(4, 12))
        b = rng.exponential(rng.choice([1.0, 4.0]), rng.integers(4, 12))
        a[rng.random(len(a)) < 0.2], b[rng.random(len(b)) < 0.2] = 0.0, 0.0
        if a.sum() == 0:
            continue
        d = I.compare_groups(a, b, "gc")
        high = np.inf if np.isnan(d.change_high) else d.change_high
        assert -100.0 <= d.change_low <= d.change <= high
        assert (d.change_low <= 0.0 <= high) == (d.p >= 0.05)


def test_centre_interval_of_a_positive_quantity_holding_a_zero_is_cut_at_0():
    v = np.array([0.0, 0.05, 0.9])
    lin_low, lin_high = stats.t.interval(0.95, 2, loc=v.mean(), scale=stats.sem(v))
    assert lin_low < 0
    assert I.centre_interval(v, "gc") == pytest.approx((v.mean(), 0.0, lin_high))


def test_negative_values_of_a_positive_quantity_are_warned_about_and_left_uncut():
    a, b = np.array([-1.0, 1.2, 0.9]), np.array([1.0, 1.2, 0.9])
    with pytest.warns(UserWarning, match="gc holds negative values"):
        d = I.compare_groups(a, b, "gc")
    low = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95).low
    assert d.scale == "real" and d.change_low == pytest.approx(100 * low / abs(a.mean()))
    with pytest.warns(UserWarning, match="negative values"):
        _, centre_low, _ = I.centre_interval(a, "gc")
    assert centre_low == pytest.approx(stats.t.interval(0.95, 2, a.mean(), stats.sem(a))[0])


def test_centre_interval_of_a_fraction_is_cut_to_0_1():
    centre, low, high = I.centre_interval(np.array([0.999, 1.0, 0.8]), "fewshot_acc_5shot")
    assert 0.0 <= low <= centre <= high == 1.0


def _exact_spearman_p(x, y):
    """Share of all n! pairings whose |rho| reaches the observed one."""
    obs = abs(stats.spearmanr(x, y).statistic)
    rhos = [abs(stats.spearmanr(x, np.array(p)).statistic) for p in itertools.permutations(y)]
    return np.mean(np.array(rhos) >= obs - 1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_spearman_permutation_p_value_matches_exact_enumeration(seed):
    rng = np.random.default_rng(seed)
    x = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0])  # ties, as a sweep has
    y = x * 0.3 + rng.normal(0, 1, len(x))
    exact = _exact_spearman_p(x, y)
    n_perm = 40_000
    got = I.spearman_permutation_p(x, y, n_perm=n_perm, rng=np.random.default_rng(9))
    se = np.sqrt(exact * (1 - exact) / n_perm)
    assert abs(got - exact) < 4 * se + 2 / n_perm


def test_a_permutation_p_value_is_never_zero():
    x = np.arange(10.0)
    p = I.spearman_permutation_p(x, x, n_perm=999, rng=np.random.default_rng(0))
    assert p == pytest.approx(1 / 1000)  # no random pairing of 10 reaches |rho| = 1 here


def _holm_by_definition(p):
    """Holm (1979): reject H_(k) when p_(j) <= alpha / (m - j + 1) for all j <= k; the
    adjusted p_(k) is max_{j<=k} min(1, (m - j + 1) p_(j))."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for k in range(m):
        out[order[k]] = max(min(1.0, (m - j) * p[order[j]]) for j in range(k + 1))
    return out


def test_holm_matches_its_definition_and_a_known_answer():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(I.adjust(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.uniform(0, 0.2, rng.integers(1, 30))
        np.testing.assert_allclose(I.adjust(q, "holm"), _holm_by_definition(list(q)))


def test_adjustment_leaves_untested_entries_out_of_the_family():
    p = np.array([0.01, np.nan, 0.02])
    adj = I.adjust(p, "bonferroni")
    assert np.isnan(adj[1]) and adj[0] == pytest.approx(0.02) and adj[2] == pytest.approx(0.04)
    np.testing.assert_allclose(I.adjust(p, "none"), p)
    with pytest.raises(ValueError):
        I.adjust(p, "fdr")
