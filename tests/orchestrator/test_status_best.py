"""``gcnc status`` of a search: the best trial so far, from each trial's latest row."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))  # synthetic_study

from synthetic_study import STALE, SyntheticSpec, search_spec, write_synthetic_study

from orchestrator import status
from orchestrator.status import BestSoFar, best_line, format_status, read_status
from studyfiles import StudyDir


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """test_acc = SEARCH_TEST_ACC[i] + 0.02 * epoch; t00009 diverged, t00011 running."""
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


def test_status_of_a_search_names_its_best_trial_so_far(search_dir):
    # t00009 reached 0.95 + 0.06 = 1.01 at epoch 3, but its latest row diverged: left out
    lines = status_lines(StudyDir.at(search_dir))
    assert lines[3] == (
        "best so far: test_acc = 0.96 at epoch 3, trial t00011 (train.lr=0.1, train.seed=2), "
        "still running"
    )
    assert lines[2].startswith("rows: ") and lines[4].startswith("driver: ")


def test_a_min_search_takes_the_smallest_latest_value(search_dir, tmp_path):
    lines = status_lines(respecified(search_dir, tmp_path, mode="min"))
    assert lines[3] == (
        "best so far: test_acc = 0.09 at epoch 2, trial t00006 (train.lr=0.05, train.seed=0), "
        "stopped early"
    )


def test_a_finished_trial_is_named_without_more():
    best = BestSoFar(
        "test_acc", "max", trial_id="t00008", value=0.6, epoch=8, status="done",
        params=(("train.lr", 0.05), ("train.seed", 2), ("model.name", "vgg11")),
    )  # fmt: skip
    assert best_line(best) == (
        "best so far: test_acc = 0.6 at epoch 8, trial t00008 "
        "(train.lr=0.05, train.seed=2, model.name=vgg11)"
    )


def test_the_best_value_is_read_from_the_latest_write_of_each_row(search_dir, tmp_path):
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
    want = latest.loc[latest["gc"].idxmax()]
    best = read_status(sdir).best
    assert (best.trial_id, best.epoch) == (want["trial_id"], want["epoch"])
    assert best.value == pytest.approx(want["gc"]) and best.value < STALE


def test_a_search_without_values_yet_says_so(search_dir, tmp_path):
    lines = status_lines(respecified(search_dir, tmp_path, metric="nc_bound"))
    assert lines[3] == "best so far: no nc_bound value yet"


def test_a_grid_study_has_no_best_line(tmp_path):
    root = write_synthetic_study(tmp_path / "grid", SyntheticSpec(name="grid"))
    status = read_status(StudyDir.at(root))
    assert status.best is None
    text = format_status(status)
    assert "best so far" not in text
    assert text == format_status(dataclasses.replace(status, best=None))
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
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
