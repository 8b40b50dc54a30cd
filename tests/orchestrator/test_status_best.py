"""``gcnc status`` of a search: its best ended trials, ranked as ``gcnc analyze`` ranks
them, and apart the best latest value of a trial not ended."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from gcnc_testkit import fresh_python

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))  # synthetic_study

from synthetic_study import STALE, SyntheticSpec, search_spec, write_synthetic_study

from analysis import load_results
from analysis.search import best_trials
from orchestrator import status
from orchestrator.status import TrialValue, format_status, read_status, trial_line
from studyfiles import StudyDir


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """test_acc = SEARCH_TEST_ACC[i] + 0.02 * epoch over 8 epochs; t00003 and t00006
    stopped at epochs 4 and 2, t00009 diverged, t00011 running at epoch 3."""
    return write_synthetic_study(tmp_path_factory.mktemp("search"), search_spec())


def respecified(root: str, tmp_path: Path, **search: object) -> StudyDir:
    """A copy of the study at ``root`` whose ``[search]`` is updated with ``search``."""
    copy = shutil.copytree(root, tmp_path / "copy")
    meta = json.loads((copy / "study.json").read_text())
    meta["spec"]["search"] |= search
    (copy / "study.json").write_text(json.dumps(meta))
    return StudyDir.at(str(copy))


def status_lines(sdir: StudyDir) -> list[str]:
    return format_status(read_status(sdir)).splitlines()


def test_status_of_a_search_gives_its_best_ended_trials(search_dir):
    """The running t00011 (0.96 at epoch 3) leads, but has not ended: it is named apart,
    not ranked. t00009 reached 1.01, and diverged: not ranked."""
    lines = status_lines(StudyDir.at(search_dir))
    assert lines[3:10] == [
        "search result (test_acc, max, each ended trial at its last evaluation): "
        "best 3 of 10 ranked",
        "  1. t00008: test_acc = 0.6 at epoch 8/8 (train.lr=0.05, train.seed=2)",
        "  2. t00007: test_acc = 0.56 at epoch 8/8 (train.lr=0.05, train.seed=1)",
        "  3. t00010: test_acc = 0.46 at epoch 8/8 (train.lr=0.1, train.seed=1)",
        "  not ranked: 1 ended without a test_acc value (diverged, or not measured)",
        "  not ended, not ranked: t00011: test_acc = 0.96 at epoch 3/8 "
        "(train.lr=0.1, train.seed=2), still running",
        f"  intervals across seeds: gcnc analyze {search_dir}",
    ]
    assert lines[2].startswith("rows: ") and lines[10].startswith("driver: ")


def test_a_min_search_ranks_a_trial_stopped_early_where_it_stopped(search_dir, tmp_path):
    lines = status_lines(respecified(search_dir, tmp_path, mode="min"))
    assert lines[4] == (
        "  1. t00006: test_acc = 0.09 at epoch 2/8 (train.lr=0.05, train.seed=0), stopped early"
    )


TARGETS = [("test_acc", "max"), ("test_acc", "min"), ("gc", "max"), ("nc_cdnv", "min")]


@pytest.mark.parametrize(("metric", "mode"), TARGETS)
def test_status_ranks_the_trials_gcnc_analyze_ranks(search_dir, tmp_path, metric, mode):
    sdir = respecified(search_dir, tmp_path, metric=metric, mode=mode)
    result = read_status(sdir).search
    want = best_trials(load_results(sdir.location), k=3)
    assert [t.trial_id for t in result.best] == list(want["trial_id"])
    assert [t.value for t in result.best] == pytest.approx(list(want["value"]))
    assert [t.epoch for t in result.best] == list(want["epoch"])
    assert result.ranked == len(best_trials(load_results(sdir.location), k=None))


def test_the_values_are_read_from_the_latest_write_of_each_row(search_dir, tmp_path):
    """Restarted trials leave superseded rows (``STALE`` gc) beside the ones that replaced
    them: a max search on gc must not see them."""
    sdir = respecified(search_dir, tmp_path, metric="gc", mode="max")
    raw = pd.concat(
        pd.read_parquet(os.path.join(folder, f))
        for folder, _, files in os.walk(os.path.join(sdir.location, "metrics"))
        for f in files
    )
    assert (raw["gc"] == STALE).any()
    rows = raw.sort_values("written_at").groupby(["trial_id", "epoch"]).tail(1)
    latest = rows.sort_values("epoch").groupby("trial_id").tail(1)
    latest = latest[~latest["diverged"] & latest["gc"].notna()]
    ended = latest[latest["trial_id"] != "t00011"]
    want = ended.loc[ended["gc"].idxmax()]
    best = read_status(sdir).search.best[0]
    assert (best.trial_id, best.epoch) == (want["trial_id"], want["epoch"])
    assert best.value == pytest.approx(want["gc"]) and best.value < STALE


def test_a_search_without_values_yet_says_so(search_dir, tmp_path):
    lines = status_lines(respecified(search_dir, tmp_path, metric="nc_bound"))
    assert lines[3] == (
        "search result (nc_bound, max, each ended trial at its last evaluation): "
        "no ended trial has a nc_bound value yet"
    )
    assert lines[4] == "  not ranked: 11 ended without a nc_bound value (diverged, or not measured)"
    assert lines[5].startswith("driver: ")


def test_a_finished_trial_is_named_without_more():
    trial = TrialValue(
        "t00008", 0.6, 8, status="done", epochs=8,
        params=(("train.lr", 0.05), ("train.seed", 2), ("model.name", "vgg11")),
    )  # fmt: skip
    assert trial_line(trial, "test_acc") == (
        "t00008: test_acc = 0.6 at epoch 8/8 (train.lr=0.05, train.seed=2, model.name=vgg11)"
    )


def test_a_grid_study_has_no_search_result(tmp_path):
    root = write_synthetic_study(tmp_path / "grid", SyntheticSpec(name="grid"))
    status = read_status(StudyDir.at(root))
    assert status.search is None
    text = format_status(status)
    assert "search result" not in text
    assert text == format_status(dataclasses.replace(status, search=None))
    assert text.splitlines()[3] == "driver: none"


def test_status_imports_neither_pandas_nor_the_analysis():
    """It reads Parquet through pyarrow alone (pyarrow may load pandas itself at run time,
    for a file's pandas metadata: that is not ours to avoid)."""
    tree = ast.parse(Path(status.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m.split(".")[0] for m in imported} & {"pandas", "analysis"}
    code = (
        "import sys\n"
        "import orchestrator.status\n"
        "print(sorted({'pandas', 'analysis'} & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
