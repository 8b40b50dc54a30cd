"""A killed driver of a 2,000-trial study, resumed: nothing lost, nothing twice, no
finished trial run again, at the size where the driver's writes of its trial book are
seconds apart; the resume's Tune experiment holds only the trials that had not ended."""

from __future__ import annotations

import json

import pytest
from gcnc_testkit import (
    assert_unchanged,
    finish,
    gcnc,
    kill_driver,
    raw_rows,
    read_rows,
    read_trials,
    sleep_study,
    starts,
    wait_for,
)

pytestmark = pytest.mark.slow

TRIALS = 2000


def done_trials(study_dir) -> set[str]:
    try:
        trials = read_trials(study_dir)
    except (OSError, ValueError):
        return set()
    return set(trials.loc[trials["status"] == "done", "trial_id"])


@pytest.mark.timeout(3000)
def test_a_killed_2000_trial_study_resumes_to_its_end(spawn, tmp_path):
    path = sleep_study(tmp_path, f"[sweep]\nseeds = {list(range(TRIALS))}\n", name="wide",
                       epochs=1, sleep_s=0.01, cpus=0.25)  # fmt: skip
    study_dir = tmp_path / "runs" / "wide"
    driver = gcnc(spawn, "run", str(path), "--storage", str(tmp_path / "runs"), "--no-report")
    wait_for(lambda: len(done_trials(study_dir)) >= 300, timeout_s=1500,
             what="300 trials done")  # fmt: skip
    kill_driver(driver)
    before = read_rows(study_dir)
    done_before = done_trials(study_dir)  # recorded done: their rows were compacted
    logged = len(starts(tmp_path))
    assert 300 <= len(done_before) < TRIALS, "killed after the study ended"

    out = finish(gcnc(spawn, "resume", str(study_dir), "--no-report"), timeout_s=2400)
    assert f"wide: {TRIALS}/{TRIALS} trials done" in out, out
    states = sorted((study_dir / "tune").glob("experiment_state-*.json"),
                    key=lambda p: p.stat().st_mtime)  # fmt: skip
    resumed = json.loads(states[-1].read_text())["trial_data"]  # the resume's experiment
    assert len(resumed) == TRIALS - len(done_before)  # the ended trials are not rebuilt
    trials = read_trials(study_dir)
    assert len(trials) == TRIALS and (trials["status"] == "done").all()
    rows = read_rows(study_dir)
    assert len(rows) == len(raw_rows(study_dir)) == TRIALS * 2  # one row per key, none lost
    assert_unchanged(before, rows)
    kept = before[before["trial_id"].isin(done_before)]  # finished rows were not rewritten
    assert_unchanged(kept, rows, columns=["written_at"])
    seed_of = dict(zip(trials["trial_id"], trials["train.seed"].astype(int), strict=True))
    finished = {seed_of[t] for t in done_before}
    again = {int(s["seed"]) for s in starts(tmp_path)[logged:]}
    assert not finished & again, f"finished trials ran again: {sorted(finished & again)[:10]}"
