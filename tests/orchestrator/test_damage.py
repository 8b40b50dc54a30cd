"""A damaged metrics file: named by status and analyze, its trials run again by resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from gcnc_testkit import VALUES, raw_rows, read_rows, read_trials, sleep_study, starts

from orchestrator import cli

pytestmark = pytest.mark.slow


def _split_part(study_dir: Path) -> tuple[Path, Path]:
    """Rewrite the study's one part as two (trials t00000-t00002, t00003-t00005), the layout
    of a bigger study; returns them."""
    (part,) = (study_dir / "metrics").glob("part-*.parquet")
    table = pq.read_table(part)
    halves = []
    for name, ids in (("a", ["t00000", "t00001", "t00002"]), ("b", ["t00003", "t00004", "t00005"])):
        rows = table.filter(pc.is_in(table["trial_id"], pa.array(ids)))
        rows = rows.replace_schema_metadata({"gcnc.trials": json.dumps(ids)})
        path = study_dir / "metrics" / f"part-{name * 16}.parquet"
        pq.write_table(rows, path)
        halves.append(path)
    part.unlink()
    return halves[0], halves[1]


def test_a_damaged_part_is_named_and_resume_runs_exactly_its_trials_again(
    ray_cluster, tmp_path, capsys
):
    path = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1, 2, 3, 4, 5]\n", epochs=3, sleep_s=0.0)
    study_dir = tmp_path / "runs" / "sleepy"
    assert cli.main(["run", str(path), "--storage", str(tmp_path / "runs"), "--no-report"]) == 0
    whole = read_rows(study_dir)
    _, damaged = _split_part(study_dir)
    with open(damaged, "r+b") as fh:
        fh.truncate(os.path.getsize(damaged) // 2)
    capsys.readouterr()

    assert cli.main(["status", str(study_dir)]) == 1
    out = capsys.readouterr().out
    assert f"  {damaged}: " in out
    assert "rows missing for 3 trials: t00003, t00004, t00005" in out
    assert cli.main(["analyze", str(study_dir)]) == 2
    err = capsys.readouterr().err
    assert f"unreadable metrics files: {damaged}" in err and "t00003, t00004, t00005" in err
    assert cli.main(["analyze", str(study_dir), "--allow-missing"]) == 0
    capsys.readouterr()

    logged = len(starts(tmp_path))
    assert cli.main(["resume", str(study_dir), "--no-report"]) == 0
    rerun = sorted((s["seed"], s["start_epoch"]) for s in starts(tmp_path)[logged:])
    assert rerun == [(3, 0), (4, 0), (5, 0)]  # exactly the lost trials, from their start
    assert (study_dir / "damaged" / damaged.name).is_file()  # kept, out of the way
    assert (read_trials(study_dir)["status"] == "done").all()
    assert len(read_rows(study_dir)) == len(raw_rows(study_dir)) == 6 * 4
    after = read_rows(study_dir)
    for column in VALUES:
        assert after[column].tolist() == whole[column].tolist(), column
    assert cli.main(["status", str(study_dir)]) == 0
