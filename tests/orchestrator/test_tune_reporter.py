"""What of a trial's rows reaches Tune: the keys it acts on, and, for a grid without a
scheduler, a result every few seconds instead of one per epoch."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from gcnc_testkit import write_study

from orchestrator.cluster import tuner
from orchestrator.studyfile import load_spec
from orchestrator.trial import SETUP_FAILED

ROW = {"epoch": 3, "step": 30, "diverged": False, "train_loss": 0.5, "test_acc": 0.8,
       "gc": 1.5, "nc_cdnv": 0.2, "trial_id": "t00001", "note": float("nan")}  # fmt: skip
SEARCH = """
[search]
algorithm = "random"
metric = "test_acc"
mode = "max"
budget = 4
[search.space]
train.lr = {loguniform = [0.001, 0.1]}
"""


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """What the reporter passes to ``tune.report``, in order."""
    out: list[dict] = []
    monkeypatch.setattr(tuner.tune, "report", lambda metrics: out.append(dict(metrics)))
    return out


def test_a_grid_gives_tune_only_the_epoch_and_divergence(tmp_path):
    study = load_spec(write_study(tmp_path, "[sweep]\nseeds = [0, 1]\n"))
    assert tuner.tune_keys(study) == {"epoch", "diverged", SETUP_FAILED}
    assert tuner.report_every_s(study) == tuner.REPORT_EVERY_S > 0


def test_a_search_with_a_scheduler_gives_tune_its_metrics_on_every_row(tmp_path, sent):
    text = SEARCH + '[scheduler]\nmetric = "train_loss"\nmode = "min"\n'
    study = load_spec(write_study(tmp_path, text))
    keys = tuner.tune_keys(study)
    assert keys == {"epoch", "diverged", SETUP_FAILED, "test_acc", "train_loss"}
    assert tuner.report_every_s(study) == 0.0
    reporter = tuner.TuneReporter(keys, tuner.report_every_s(study))
    for epoch in range(3):
        reporter.report_result({**ROW, "epoch": epoch})
    assert sent == [{"epoch": e, "diverged": False, "train_loss": 0.5, "test_acc": 0.8}
                    for e in range(3)]  # fmt: skip


def test_a_throttled_trial_sends_its_first_row_and_then_one_per_interval(monkeypatch, sent):
    clock = iter([100.0, 100.5, 101.0, 106.0, 106.1, 106.2])
    monkeypatch.setattr(tuner.time, "monotonic", lambda: next(clock))
    reporter = tuner.TuneReporter(frozenset({"epoch", "diverged", SETUP_FAILED}), 5.0)
    for epoch in range(4):  # at 100, 100.5, 101, 106 s
        reporter.report_result({**ROW, "epoch": epoch})
    assert [r["epoch"] for r in sent] == [0, 3]
    reporter.report_result({**ROW, "epoch": 4, "diverged": True})  # at once, whenever
    reporter.report_result({SETUP_FAILED: "ValueError: bad"})
    assert sent[2:] == [{"epoch": 4, "diverged": True}, {SETUP_FAILED: "ValueError: bad"}]


def test_a_throttled_trial_passes_its_next_row_on_at_once_once_tune_asked_it_to_stop(
    monkeypatch, sent
):
    clock = iter([100.0, 100.5, 101.0])
    monkeypatch.setattr(tuner.time, "monotonic", lambda: next(clock))
    session = SimpleNamespace(stop_event=threading.Event())
    monkeypatch.setattr(tuner._tune_session, "get_session", lambda: session)
    reporter = tuner.TuneReporter(frozenset({"epoch", "diverged", SETUP_FAILED}), 5.0)
    reporter.report_result({**ROW, "epoch": 0})
    reporter.report_result({**ROW, "epoch": 1})  # within the interval: kept back
    session.stop_event.set()  # the run is being stopped: Tune stops its trials
    reporter.report_result({**ROW, "epoch": 2})  # passed on (Tune's report ends the trial)
    assert [r["epoch"] for r in sent] == [0, 2]


def test_outside_a_tune_trial_no_stop_is_asked():
    assert tuner.asked_to_stop() is False
