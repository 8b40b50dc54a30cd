"""Statistics across seeds, final rows, matched training progress and sweep slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import aggregate, load_results
from analysis.inference import centre_interval


def test_t_interval_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 7)
    low, high = aggregate.t_interval(x.mean(), x.std(ddof=1), len(x), confidence=0.9)
    want = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    np.testing.assert_allclose([low, high], want)


def test_t_interval_is_undefined_for_one_value():
    low, high = aggregate.t_interval(np.array([1.0]), np.array([np.nan]), np.array([1]))
    assert np.isnan(low).all() and np.isnan(high).all()


def test_summarize_matches_a_plain_groupby_and_skips_nulls():
    frame = pd.DataFrame(
        {"v": [1, 1, 1, 2, 2], "a": [1.0, 2.0, np.nan, 4.0, 8.0], "b": [0.0, 1.0, 2.0, 3.0, 3.0]}
    )
    out = aggregate.summarize(frame, ["v"], ["a", "b"]).set_index(["v", "metric"])
    assert out.loc[(1, "a"), "n"] == 2 and out.loc[(1, "a"), "mean"] == 1.5
    assert out.loc[(2, "a"), "std"] == pytest.approx(np.std([4.0, 8.0], ddof=1))
    assert out.loc[(1, "b"), "n"] == 3
    half = stats.t.ppf(0.975, 1) * np.std([4.0, 8.0], ddof=1) / np.sqrt(2)
    assert out.loc[(2, "a"), "ci_high"] == pytest.approx(6.0 + half)


def test_final_rows_take_each_finished_trials_last_epoch(lr_study):
    finals = aggregate.final_rows(lr_study)
    last = lr_study.metrics.groupby("trial_id")["epoch"].max()
    running = set(lr_study.trials.loc[lr_study.trials["status"] == "running", "trial_id"])
    assert running and not running & set(finals["trial_id"])
    assert (finals.set_index("trial_id")["epoch"] == last.loc[finals["trial_id"]]).all()
    assert "config" in finals


def test_a_diverged_trial_is_final_with_null_metrics(lr_study):
    finals = aggregate.final_rows(lr_study).set_index("trial_id")
    diverged = finals[finals["diverged"]]
    assert len(diverged) == 1
    assert diverged["gc"].isna().all()


def _toy_trial(loss, metric, trial="a"):
    n = len(loss)
    return pd.DataFrame({"trial_id": trial, "epoch": np.arange(n), "train_loss": loss, "m": metric})


def test_value_at_a_loss_level_interpolates_in_log_loss():
    frame = _toy_trial(1.0 / (np.arange(6) + 1.0), np.arange(6.0))  # loss 1/(e+1), m = e
    out = aggregate.at_levels(frame, "train_loss", [1.0 / 3.5], ["m"])
    w = (np.log(3.5) - np.log(3.0)) / (np.log(4.0) - np.log(3.0))
    assert out["m"].iloc[0] == pytest.approx(2.0 + w)


def test_progress_is_read_where_the_best_loss_first_reaches_the_level():
    loss = np.array([2.0, 1.0, 3.0, 0.5, 0.9, 0.25])  # a spike, then a new best at epoch 3
    out = aggregate.at_levels(
        _toy_trial(loss, np.arange(6.0)), "train_loss", [1.0, 0.5, 0.1], ["m"]
    )
    assert out["m"].tolist()[:2] == [1.0, 3.0]
    assert np.isnan(out["m"].iloc[2])  # never reached


def test_a_level_met_at_initialisation_reads_the_first_evaluation():
    out = aggregate.at_levels(
        _toy_trial(np.array([0.5, 0.2]), np.array([7.0, 9.0])), "train_loss", [2.0], ["m"]
    )
    assert out["m"].iloc[0] == 7.0


def test_accuracy_levels_interpolate_linearly():
    frame = pd.DataFrame(
        {"trial_id": "a", "epoch": [0, 1, 2], "train_acc": [0.1, 0.5, 0.9], "m": [0.0, 10.0, 30.0]}
    )
    out = aggregate.at_levels(frame, "train_acc", [0.7], ["m"])
    assert out["m"].iloc[0] == pytest.approx(20.0)


def test_matched_progress_uses_the_level_every_trial_reached(lr_study):
    matched, level = aggregate.matched_progress(lr_study, ["gc"], by="train_loss")
    finals = aggregate.final_rows(lr_study)
    rows = lr_study.metrics[lr_study.metrics["trial_id"].isin(finals["trial_id"])]
    assert level == pytest.approx(rows.groupby("trial_id")["train_loss"].min().max())
    assert matched["reached"].all()
    fast = matched.sort_values("train.lr")["epoch"].to_numpy()
    assert fast[0] > fast[-1]  # a larger lr reaches the same loss in fewer epochs


def test_a_lower_quantile_drops_the_least_trained_trials(lr_study):
    matched, level = aggregate.matched_progress(lr_study, ["gc"], quantile=0.5)
    _, full_level = aggregate.matched_progress(lr_study, ["gc"])
    assert level < full_level
    assert 0 < matched["reached"].sum() < len(matched)


def test_a_one_at_a_time_sweep_uses_the_centre_slice():
    rows = [(lr, 256) for lr in (0.01, 0.02, 0.05)] + [(0.01, b) for b in (64, 128)]
    frame = pd.DataFrame(rows, columns=["lr", "bs"])
    sub, note = aggregate.sweep_slice(frame, "lr", ["bs"])
    assert sorted(sub["lr"]) == [0.01, 0.02, 0.05] and set(sub["bs"]) == {256}
    assert note == "at bs=256"


def test_a_full_grid_is_pooled_over_the_other_keys():
    frame = pd.DataFrame([(lr, b) for lr in (0.01, 0.1) for b in (64, 256)], columns=["lr", "bs"])
    sub, note = aggregate.sweep_slice(frame, "lr", ["bs"])
    assert len(sub) == 4 and note == "pooled over bs"


def test_epoch_curves_are_geometric_means_over_seeds_for_a_positive_quantity(lr_study):
    curves, _ = aggregate.curves(lr_study, "train.lr", ["gc", "test_acc"], align="epoch")
    m = lr_study.metrics
    at = (m["train.lr"] == 0.02) & (m["epoch"] == 5)
    got = curves[(curves["param"] == 0.02) & (curves["x"] == 5)].set_index("metric")
    gc = m.loc[at, "gc"].dropna().to_numpy(float)
    assert got.loc["gc", "mean"] == pytest.approx(np.exp(np.log(gc).mean()))
    assert got.loc["gc", "n"] == len(gc) and got.loc["gc", "log"]
    acc = m.loc[at, "test_acc"].dropna().to_numpy(float)
    assert got.loc["test_acc", "mean"] == pytest.approx(acc.mean())
    assert not got.loc["test_acc", "log"]


def test_a_positive_quantity_gets_a_log_scale_interval_that_stays_above_zero():
    values = np.array([0.01, 0.02, 1.0])  # a t-interval of the mean would cross 0
    frame = pd.DataFrame({"g": [0, 0, 0], "gc": values})
    row = aggregate.summarize(frame, ["g"], ["gc"]).iloc[0]
    logs = np.log(values)
    half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / np.sqrt(3)
    assert row["mean"] == pytest.approx(np.exp(logs.mean()))
    assert row["ci_low"] == pytest.approx(np.exp(logs.mean() - half)) and row["ci_low"] > 0
    assert row["ci_high"] == pytest.approx(np.exp(logs.mean() + half))
    linear_low = values.mean() - stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert linear_low < 0  # the case the log scale is for


def test_an_accuracy_interval_stays_within_0_and_1():
    frame = pd.DataFrame({"g": [0, 0, 0], "test_acc": [0.99, 1.0, 0.6]})
    row = aggregate.summarize(frame, ["g"], ["test_acc"]).iloc[0]
    half = stats.t.ppf(0.975, 2) * np.std([0.99, 1.0, 0.6], ddof=1) / np.sqrt(3)
    assert row["mean"] + half > 1.0  # unclipped it would leave [0, 1]
    assert row["ci_high"] == 1.0 and row["ci_low"] == pytest.approx(row["mean"] - half)


def test_a_positive_quantity_with_a_zero_falls_back_to_the_linear_scale():
    frame = pd.DataFrame({"g": [0, 0, 0], "gc": [0.0, 1.0, 2.0]})
    row = aggregate.summarize(frame, ["g"], ["gc"]).iloc[0]
    assert not row["log"] and row["mean"] == pytest.approx(1.0)
    low, high = stats.t.interval(0.95, 2, loc=1.0, scale=stats.sem([0.0, 1.0, 2.0]))
    assert low < 0  # cut at 0: the mean of a quantity that cannot be negative
    assert row["ci_low"] == 0.0 and row["ci_high"] == pytest.approx(high)


def test_the_scale_is_decided_per_group_so_one_zero_leaves_the_other_groups_on_the_log_scale():
    values = [0.0, 0.05, 0.9, 0.01, 0.02, 1.0]
    frame = pd.DataFrame({"g": [0, 0, 0, 1, 1, 1], "gc": values})
    out = aggregate.summarize(frame, ["g"], ["gc"]).set_index("g")
    assert not out.loc[0, "log"] and out.loc[1, "log"]
    assert out.loc[0, "ci_low"] == 0.0 and out.loc[0, "mean"] == pytest.approx(np.mean(values[:3]))
    logs = np.log(values[3:])
    low, _ = stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs))
    assert out.loc[1, "ci_low"] == pytest.approx(np.exp(low)) and out.loc[1, "ci_low"] > 0


def test_summarize_agrees_with_centre_interval_in_every_group():
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"g": rng.integers(0, 12, 80), "gc": rng.exponential(1.0, 80)})
    frame["test_acc"] = rng.uniform(0.6, 1.0, 80)
    frame.loc[rng.random(80) < 0.05, "gc"] = 0.0
    out = aggregate.summarize(frame, ["g"], ["gc", "test_acc"]).set_index(["g", "metric"])
    for (g, metric), row in out.iterrows():
        want = centre_interval(frame.loc[frame["g"] == g, metric].to_numpy(), metric)
        np.testing.assert_allclose(row[["mean", "ci_low", "ci_high"]].to_numpy(float), want)
    gc_log = out.xs("gc", level="metric")["log"]
    assert gc_log.any() and not gc_log.all()  # groups with a zero and groups without


def test_negative_values_of_a_positive_quantity_are_warned_about_and_left_linear():
    frame = pd.DataFrame({"g": [0, 0, 0, 1, 1, 1], "gc": [-1.0, 0.1, 0.2, 1.0, 2.0, 4.0]})
    with pytest.warns(UserWarning, match="gc holds negative values"):
        out = aggregate.summarize(frame, ["g"], ["gc"]).set_index("g")
    assert not out["log"].any() and out.loc[0, "ci_low"] < 0


def test_progress_curves_share_one_grid_of_loss_levels(lr_study):
    curves, _ = aggregate.curves(lr_study, "train.lr", ["gc"], align="train_loss", n_levels=12)
    grids = curves.groupby("param")["x"].apply(lambda x: tuple(np.round(x, 12)))
    assert grids.nunique() == 1 and len(grids.iloc[0]) == 12


def test_unknown_alignment_is_rejected(lr_study):
    with pytest.raises(ValueError, match="known: epoch, step, train_loss, train_acc"):
        aggregate.curves(lr_study, "train.lr", ["gc"], align="wall")


def test_curves_of_a_grid_study_report_the_pooling(tmp_path):
    spec = SyntheticSpec(lrs=(0.01, 0.1), batch_sizes=(64, 256), seeds=(0, 1), epochs=3)
    study = load_results(write_synthetic_study(tmp_path / "g", spec))
    _, note = aggregate.curves(study, "train.lr", ["gc"])
    assert note == "pooled over train.batch_size"


def _reference_at(loss, y, level):
    """First reach of ``level`` by the running best loss, interpolated in log loss, by loop."""
    best, prev = np.inf, None
    for e in range(len(loss)):
        if not np.isfinite(loss[e]) or loss[e] >= best:
            continue
        best = loss[e]
        if np.isfinite(y[e]):
            if loss[e] <= level:
                if prev is None:
                    return y[e] if e == np.flatnonzero(np.isfinite(loss))[0] else np.nan
                (l0, y0) = prev
                w = (np.log(l0) - np.log(level)) / (np.log(l0) - np.log(loss[e]))
                return y0 + w * (y[e] - y0)
            prev = (loss[e], y[e])
    return np.nan


def test_vectorised_crossings_match_a_loop_on_random_trials():
    rng = np.random.default_rng(7)
    frames = []
    for t in range(30):
        n = int(rng.integers(1, 12))
        loss = np.exp(-np.cumsum(rng.normal(0.3, 0.5, n)))
        y = rng.normal(size=n)
        loss[rng.random(n) < 0.1] = np.nan
        y[rng.random(n) < 0.2] = np.nan
        frames.append(
            pd.DataFrame({"trial_id": f"t{t}", "epoch": np.arange(n), "train_loss": loss, "m": y})
        )
    frame = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0)  # any row order
    levels = [2.0, 1.0, 0.5, 0.2, 0.05]
    got = aggregate.at_levels(frame, "train_loss", levels, ["m"]).set_index(["trial_id", "level"])[
        "m"
    ]
    for t, part in frame.groupby("trial_id"):
        part = part.sort_values("epoch")
        for level in levels:
            want = _reference_at(part["train_loss"].to_numpy(), part["m"].to_numpy(), level)
            np.testing.assert_allclose(got.loc[(t, level)], want, err_msg=f"{t} at {level}")
