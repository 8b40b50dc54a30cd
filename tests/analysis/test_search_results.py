"""A search's best trials: ranked by the search's metric at each trial's last evaluation."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from scipy import stats
from synthetic_study import SEARCH_TEST_ACC, search_spec, write_synthetic_study

from analysis import load_results
from analysis.load import StudyResults
from analysis.options import Options
from analysis.search import best_trials, format_best, search_note, search_target

LRS = {i: (0.01, 0.02, 0.05, 0.1)[i // 3] for i in range(12)}
LAST_EPOCH = {i: 8 for i in range(12)} | {3: 4, 6: 2}  # t00003, t00006 stopped early


def acc(i: int) -> float:
    """Trial i's test_acc at its last evaluation."""
    return SEARCH_TEST_ACC[i] + 0.02 * LAST_EPOCH[i]


# Ended trials with a value: not t00009 (diverged), not t00011 (running).
RANKED = sorted((i for i in range(11) if i != 9), key=lambda i: -acc(i))


@pytest.fixture(scope="module")
def search_study(tmp_path_factory: pytest.TempPathFactory) -> StudyResults:
    return load_results(write_synthetic_study(tmp_path_factory.mktemp("search"), search_spec()))


def with_spec(study: StudyResults, **changes: dict) -> StudyResults:
    """The same rows under a spec whose sections are updated with ``changes``."""
    meta = copy.deepcopy(study.meta)
    for section, values in changes.items():
        meta["spec"][section] = None if values is None else {**meta["spec"][section], **values}
    return dataclasses.replace(study, meta=meta)


def test_trials_are_ranked_by_their_value_at_their_last_evaluation(search_study):
    best = best_trials(search_study, k=None)
    assert list(best["trial_id"]) == [f"t{i:05d}" for i in RANKED]
    assert list(best["rank"]) == list(range(1, len(RANKED) + 1))
    np.testing.assert_allclose(best["value"], [acc(i) for i in RANKED])
    assert list(best["epoch"]) == [LAST_EPOCH[i] for i in RANKED]
    assert (best["epochs"] == 8).all()
    assert list(best["status"]) == ["stopped" if i in (3, 6) else "done" for i in RANKED]
    assert list(best["ran_to_end"]) == [i not in (3, 6) for i in RANKED]
    assert list(best["train.lr"]) == [LRS[i] for i in RANKED]
    assert list(best["train.seed"]) == [i % 3 for i in RANKED]


def test_k_keeps_the_best_ones(search_study):
    best = best_trials(search_study, k=3)
    assert list(best["trial_id"]) == ["t00008", "t00007", "t00010"]
    assert list(best.columns[:5]) == ["rank", "trial_id", "status", "train.lr", "train.seed"]


def test_a_min_search_ranks_the_smallest_first(search_study):
    best = best_trials(with_spec(search_study, search={"mode": "min"}), k=4)
    assert list(best["trial_id"]) == ["t00006", "t00000", "t00002", "t00003"]
    np.testing.assert_allclose(best["value"], [0.09, 0.26, 0.28, 0.29])
    assert list(best["epoch"]) == [2, 8, 8, 4]


def test_the_schedulers_metric_and_mode_stand_in_for_a_search_without_them(search_study):
    study = with_spec(
        search_study,
        search={"metric": None, "mode": None, "algorithm": "random"},
        scheduler={"metric": "test_acc", "mode": "min"},
    )
    target = search_target(study)
    assert (target.metric, target.mode, target.scheduler) == ("test_acc", "min", "asha")
    assert best_trials(study, k=1)["trial_id"].tolist() == ["t00006"]


def test_settings_run_with_several_seeds_get_a_t_interval_over_those_that_ran_to_the_end(
    search_study,
):
    best = best_trials(search_study, k=None, options=Options(confidence=0.9)).set_index("trial_id")
    by_lr = {0.01: [0, 1, 2], 0.02: [4, 5], 0.05: [7, 8]}  # stopped t00003, t00006 left out
    for lr, trials in by_lr.items():
        values = np.array([acc(i) for i in trials])
        half = stats.t.ppf(0.95, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
        for i in [j for j in range(11) if LRS[j] == lr and j != 9]:
            row = best.loc[f"t{i:05d}"]
            assert row["n_seeds"] == len(values)
            assert row["mean"] == pytest.approx(values.mean())
            assert row["ci_low"] == pytest.approx(values.mean() - half)
            assert row["ci_high"] == pytest.approx(values.mean() + half)
    lone = best.loc["t00010"]  # lr 0.1: t00009 diverged, t00011 still running
    assert lone["n_seeds"] == 1 and lone["mean"] == pytest.approx(acc(10))
    assert np.isnan(lone["ci_low"]) and np.isnan(lone["ci_high"])


def at_last_epoch(study: StudyResults, trials: list[int], **columns: list[float]):
    """The same study with ``trials``' values of ``columns`` replaced at epoch 8."""
    m = study.metrics.copy()
    for name, values in columns.items():
        for i, v in zip(trials, values, strict=True):
            m.loc[(m["trial_id"] == f"t{i:05d}") & (m["epoch"] == 8), name] = v
    return dataclasses.replace(study, metrics=m)


def test_an_accuracys_interval_across_seeds_stays_within_0_and_1(search_study):
    study = at_last_epoch(search_study, [7, 8], test_acc=[0.75, 1.0])
    row = best_trials(study, k=None).set_index("trial_id").loc["t00008"]
    values = np.array([0.75, 1.0])
    low, high = stats.t.interval(0.95, 1, loc=values.mean(), scale=stats.sem(values))
    assert low < 0 and high > 1  # the linear t-interval: 0.875 [-0.713, 2.46]
    assert row["mean"] == pytest.approx(0.875) and (row["ci_low"], row["ci_high"]) == (0.0, 1.0)


def test_a_positive_metrics_interval_across_seeds_is_on_the_log_scale(search_study):
    study = with_spec(search_study, search={"metric": "gc", "mode": "min"})
    m = study.metrics
    gc = m[m["trial_id"].isin(["t00000", "t00001", "t00002"]) & (m["epoch"] == 8)]["gc"]
    logs = np.log(gc.to_numpy(float))
    low, high = stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs))
    row = best_trials(study, k=None).set_index("trial_id").loc["t00001"]
    assert row["mean"] == pytest.approx(np.exp(logs.mean()))  # the geometric mean
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((np.exp(low), np.exp(high)))
    with_zero = at_last_epoch(study, [0], gc=[0.0])
    row = best_trials(with_zero, k=None).set_index("trial_id").loc["t00001"]
    values = np.array([0.0, *gc.to_numpy(float)[1:]])
    high = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))[1]
    assert row["mean"] == pytest.approx(values.mean())  # a zero: the mean, its interval ≥ 0
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.0, high))


def test_a_search_that_ran_each_setting_once_has_no_interval_and_says_so(tmp_path):
    spec = search_spec(
        seeds=(0,),
        diverged=0,
        stopped={},
        running=0,
        restarted=0,
        leftovers=0,
        search=search_spec().search | {"space": {"train.lr": {"choice": [0.01, 0.02, 0.05, 0.1]}}},
    )
    study = load_results(write_synthetic_study(tmp_path / "once", spec))
    best = best_trials(study)
    assert (best["n_seeds"] == 1).all() and best["ci_low"].isna().all()
    text = " ".join(format_best(study).split())
    assert "No interval across seeds: no setting (every searched key but train.seed)" in text
    assert "CI]" not in text


def test_format_best_prints_the_table_and_what_it_rests_on(search_study):
    lines = format_best(search_study, k=2).splitlines()
    assert lines[:2] == ["Best trials of the search (test_acc, max)", "=" * 41]
    assert lines[2].split()[:7] == ["rank", "trial", "status", "epoch", "train.lr", "train.seed",
                                    "test_acc"]  # fmt: skip
    assert lines[3].split() == ["1", "t00008", "done", "8/8", "0.05", "2", "0.6", "0.58",
                                "[0.326,", "0.834]", "(2)"]  # fmt: skip
    assert lines[4].split()[:7] == ["2", "t00007", "done", "8/8", "0.05", "1", "0.56"]
    text = " ".join(lines[5:])
    assert "at its last reported evaluation" in text
    assert "2 of 11 ended trials were stopped early by the scheduler" in text
    assert "without a test_acc value: t00009 (diverged)" in text
    assert "not ended: 1 running" in text
    assert "95% interval over the trials of the same setting" in text


def test_a_stopped_trial_shows_where_it_stopped(search_study):
    text = format_best(with_spec(search_study, search={"mode": "min"}), k=1)
    assert text.splitlines()[3].split()[:4] == ["1", "t00006", "stopped", "2/8"]


def test_a_grid_study_has_no_best_trials(lr_study):
    assert best_trials(lr_study).empty
    assert format_best(lr_study) == ""
    assert search_target(lr_study) is None
    assert search_note(lr_study) is None


def test_the_note_for_correlations_says_an_adaptive_search_chose_the_trials(search_study):
    note = search_note(search_study)
    assert note is not None and note.count(".") == 1 and note.endswith("coverage.")
    assert "the search (tpe on test_acc) chose them adaptively" in note
    assert "the scheduler (asha) stopped some early" in note
    without = search_note(with_spec(search_study, scheduler=None))
    assert "adaptively" in without and "scheduler" not in without


def test_no_note_where_the_settings_were_drawn_at_random_and_none_stopped(search_study):
    random = with_spec(search_study, search={"algorithm": "random"})
    assert "adaptively" not in search_note(random) and "scheduler (asha)" in search_note(random)
    assert search_note(with_spec(random, scheduler=None)) is None


def test_a_search_whose_metric_has_no_value_yet_says_so(search_study):
    study = with_spec(search_study, search={"metric": "nc_bound"})
    assert best_trials(study).empty
    text = format_best(study)
    assert "(no ended trial has a nc_bound value yet)" in text
    assert "Across seeds" not in text and "No interval" not in text
