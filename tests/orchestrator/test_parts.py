"""Finished trials merged into part files: same rows, read once, stopped merges, lookups."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from gcnc_testkit import raw_rows, read_rows

from orchestrator import parts
from orchestrator.parts import list_parts, merge_finished, merged_rows
from orchestrator.sink import RowContext, TrialSink
from orchestrator.status import count_rows
from studyfiles import StudyDir
from studyfiles.schema import ALWAYS_PARAMS
from studyfiles.storage import Storage
from studyfiles.tables import read_table

KINDS = ("double", "int64", "double", "double", "int64")
PARAMS = dict(zip(ALWAYS_PARAMS, (0.1, 64, 0.0, 0.0, 3), strict=True))


def ctx() -> RowContext:
    return RowContext("s", "h" * 16, "gcnc test", dict(zip(ALWAYS_PARAMS, KINDS, strict=True)), ())


@pytest.fixture
def sdir(tmp_path) -> StudyDir:
    return StudyDir.of(str(tmp_path), "s")


def finish(sdir: StudyDir, trial_id: str, epochs: int, *, seed: int = 3) -> TrialSink:
    """A trial that wrote ``epochs`` rows (rolled up on the way) and was compacted."""
    sink = TrialSink(sdir, ctx(), trial_id, PARAMS | {"train.seed": seed}, roll_every=4)
    for epoch in range(epochs):
        sink.write({"epoch": epoch, "step": 10 * epoch, "train_loss": 1.0 / (1 + epoch)})
    sink.compact()
    return sink


def metrics_entries(sdir: StudyDir) -> list[str]:
    return sorted(p.name for p in Path(sdir.metrics).iterdir())


def test_a_merge_keeps_every_row_once_in_part_files_and_removes_the_trial_folders(sdir):
    for i in range(5):
        finish(sdir, f"t{i:05d}", 3 + i, seed=i)
    before = read_rows(sdir.location)
    assert merge_finished(sdir) == 5
    names = metrics_entries(sdir)
    assert len(names) == 1 and parts.is_part(names[0])  # no trial folder is left
    pd.testing.assert_frame_equal(read_rows(sdir.location), before)
    assert len(raw_rows(sdir.location)) == len(before) == sum(3 + i for i in range(5))
    (part,) = list_parts(sdir)
    assert part.trials == {f"t{i:05d}" for i in range(5)} and part.rows == len(before)
    table = pq.read_table(part.path)
    keys = list(zip(table["trial_id"].to_pylist(), table["epoch"].to_pylist(), strict=True))
    assert keys == sorted(keys)


def test_merging_waits_for_enough_trials_and_leaves_running_ones_alone(sdir):
    finish(sdir, "t00000", 3)
    running = TrialSink(sdir, ctx(), "t00001", PARAMS, roll_every=4)
    for epoch in range(6):
        running.write({"epoch": epoch, "step": epoch})
    assert merge_finished(sdir, min_trials=2) == 0
    assert list_parts(sdir) == []
    assert merge_finished(sdir) == 1
    assert sorted(p.name for p in Path(sdir.trial_folder("t00001")).iterdir()) == [
        "epoch=00004.parquet",
        "epoch=00005.parquet",
        "rolled.parquet",
    ]
    assert not Path(sdir.trial_folder("t00000")).exists()


def test_parts_fill_up_to_their_size_without_splitting_a_trial(sdir):
    for i in range(4):
        finish(sdir, f"t{i:05d}", 4)
    merge_finished(sdir, part_rows=10)  # 16 rows: parts of 8 and 8
    assert sorted(p.rows for p in list_parts(sdir)) == [8, 8]
    for i in range(4, 6):
        finish(sdir, f"t{i:05d}", 1)
    merge_finished(sdir, part_rows=10)  # the parts not yet full take the new trials
    found = list_parts(sdir)
    assert sum(p.rows for p in found) == 18 and all(p.rows <= 10 for p in found)
    held = [t for p in found for t in p.trials]
    assert sorted(held) == [f"t{i:05d}" for i in range(6)]  # each trial in one part
    for p in found:
        ids = pq.read_table(p.path)["trial_id"].to_pylist()
        assert set(ids) == p.trials


def test_a_merge_stopped_before_removing_its_inputs_reads_once_and_is_cleaned_up(sdir, monkeypatch):
    for i in range(3):
        finish(sdir, f"t{i:05d}", 4, seed=i)
    merge_finished(sdir)
    for i in range(3, 5):
        finish(sdir, f"t{i:05d}", 4, seed=i)
    before = read_rows(sdir.location)
    with monkeypatch.context() as m:  # the merge writes its part, then the process dies
        m.setattr(Storage, "delete", lambda self, path: None)
        m.setattr(Storage, "remove_empty_folder", lambda self, folder: None)
        merge_finished(sdir)
    assert len(list_parts(sdir)) == 2  # the new part and the one it replaces
    assert len(raw_rows(sdir.location)) == 12 + 20 + 8  # old part, new part, 2 folders
    pd.testing.assert_frame_equal(read_rows(sdir.location), before)
    assert count_rows(sdir) == (20, 5)
    assert TrialSink(sdir, ctx(), "t00001", PARAMS | {"train.seed": 1}).finished_row() is not None

    merge_finished(sdir, min_trials=64)  # parts sharing trials are merged regardless
    (part,) = list_parts(sdir)
    assert part.rows == 20 and len(raw_rows(sdir.location)) == 20
    assert metrics_entries(sdir) == [Path(part.path).name]
    pd.testing.assert_frame_equal(read_rows(sdir.location), before)


def test_a_merged_trial_is_finished_with_its_last_row_and_only_for_its_params(sdir):
    finish(sdir, "t00007", 6)
    merge_finished(sdir)
    sink = TrialSink(sdir, ctx(), "t00007", PARAMS)
    last = sink.finished_row()
    assert last is not None and last["epoch"] == 5 and last["train_loss"] == pytest.approx(1 / 6)
    assert sink.rows().num_rows == 6 and not sink.has_foreign_rows()
    other = TrialSink(sdir, ctx(), "t00007", PARAMS | {"train.lr": 0.2})
    assert other.finished_row() is None and other.has_foreign_rows()
    with pytest.raises(RuntimeError, match="t00007"):
        other.clear()  # merged rows stay; the id is never given to other params
    assert TrialSink(sdir, ctx(), "t00008", PARAMS).finished_row() is None


def test_a_row_written_after_the_merge_wins_and_is_merged_next_time(sdir):
    finish(sdir, "t00000", 3)
    merge_finished(sdir)
    late = TrialSink(sdir, ctx(), "t00000", PARAMS)
    late.write({"epoch": 2, "step": 20, "train_loss": 9.0})
    assert read_rows(sdir.location)["train_loss"].tolist()[-1] == 9.0
    assert late.finished_row()["train_loss"] == 9.0
    assert merge_finished(sdir) == 1  # a merged trial's folder waits for the next merge
    assert read_rows(sdir.location)["train_loss"].tolist()[-1] == 9.0
    assert len(raw_rows(sdir.location)) == 3


def test_a_part_removed_between_listing_and_reading_is_looked_up_again(sdir, monkeypatch):
    finish(sdir, "t00000", 3)
    merge_finished(sdir)
    real, calls = parts._part, []

    def vanishing(storage, path):
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(path)  # a merge replaced it meanwhile
        return real(storage, path)

    monkeypatch.setattr(parts, "_part", vanishing)
    assert merged_rows(sdir, "t00000").num_rows == 3
    assert len(calls) == 2  # listed again after the part went missing


def test_status_counts_distinct_rows_across_parts_and_folders(sdir):
    for i in range(3):
        finish(sdir, f"t{i:05d}", 4, seed=i)
    merge_finished(sdir)
    running = TrialSink(sdir, ctx(), "t00003", PARAMS, roll_every=4)
    for epoch in range(5):
        running.write({"epoch": epoch, "step": epoch})
    running.write({"epoch": 1, "step": 1})  # a replay: the rolled row and this file share a key
    assert count_rows(sdir) == (12 + 5, 4)


def test_merging_works_the_same_on_an_object_store():
    storage = Storage(pafs._MockFileSystem(), "/bucket/runs/s", "mock://bucket/runs/s")
    assert not storage.renames  # single puts, no temporary files
    sdir = StudyDir(storage)
    for i in range(3):
        finish(sdir, f"t{i:05d}", 5, seed=i)
    assert merge_finished(sdir) == 3
    assert [p.rows for p in list_parts(sdir)] == [15]
    assert storage.files(sdir.metrics) == [list_parts(sdir)[0].path]
    sink = TrialSink(sdir, ctx(), "t00001", PARAMS | {"train.seed": 1})
    assert sink.finished_row()["epoch"] == 4
    assert count_rows(sdir) == (15, 3)


def test_the_layers_table_merges_into_parts_of_its_own_sorted_by_trial_epoch_and_layer(sdir):
    for i in range(3):
        sink = TrialSink(sdir, ctx(), f"t{i:05d}", PARAMS | {"train.seed": i}, roll_every=4)
        for epoch in range(5):
            layers = [{"layer": k, "layer_name": f"l{k}", "gc": float(epoch + k)} for k in (2, 1)]
            sink.write({"epoch": epoch, "step": epoch, "train_loss": 1.0, "layers": layers})
        sink.compact()
    before, _ = read_table(sdir, "layers")
    assert merge_finished(sdir, table="layers") == 3
    assert list_parts(sdir) == []  # the metrics table is merged by its own call
    (part,) = list_parts(sdir, table="layers")
    assert part.trials == {"t00000", "t00001", "t00002"} and part.rows == 3 * 5 * 2
    assert [p.name for p in Path(sdir.layers).iterdir()] == [Path(part.path).name]
    table = pq.read_table(part.path)
    keys = list(zip(*(table[c].to_pylist() for c in ("trial_id", "epoch", "layer")), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    after, bad = read_table(sdir, "layers")
    assert bad == {} and after.equals(before.replace_schema_metadata(None))
    assert merged_rows(sdir, "t00001", table="layers").num_rows == 10
    assert merge_finished(sdir) == 3 and len(list_parts(sdir)) == 1
