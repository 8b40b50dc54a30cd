"""Live reading: each refresh reads only new or changed files, and its snapshot is the study
``load_results`` gives for the same files, while a driver writes, rolls up, compacts and
merges them (through the orchestrator's own sink and merge, no Ray)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import synthetic_study as synthetic
from synthetic_study import STALE, SyntheticSpec, write_synthetic_study

import analysis.blocks
import analysis.load
from analysis import ResultsError, load_results
from analysis.live import LiveStudy
from orchestrator.parts import merge_finished
from studyfiles import Storage, StudyDir

# 9 trials: 5 merged and one compacted, 3 running (one restarted: superseded rows stay).
SPEC = SyntheticSpec(name="live", running=3, restarted=1, leftovers=1, merge_every=3)


class Driver:
    """Runs a synthetic study on as a driver does: running trials report evaluations
    (rolled up every ``roll_every`` writes), end (compacted) and are merged into parts."""

    def __init__(self, root: str, spec: SyntheticSpec = SPEC, *, roll_every: int = 4) -> None:
        self.sdir = StudyDir(Storage.open(root))
        with open(os.path.join(root, "study.json")) as fh:
            ctx = synthetic._row_context(spec, json.load(fh))
        reached = load_results(root).metrics.groupby("trial_id", observed=True)["epoch"].max()
        self.next = {str(t): int(e) + 1 for t, e in reached.items()}
        self.spec, self.ctx = dataclasses.replace(spec, roll_every=roll_every), ctx
        self.configs = {c["trial_id"]: c for c in synthetic._trial_configs(spec)}
        self.sinks = {t: self._sink(t) for t in self.configs}

    def _sink(self, trial_id: str):
        config = self.configs.get(trial_id, self.configs["t00000"]) | {"trial_id": trial_id}
        return synthetic._sink(self.sdir, self.ctx, self.spec, config)

    def evaluate(self, trial_id: str, **metrics) -> str:
        """The trial's next evaluation; returns its per-epoch file."""
        epoch = self.next.get(trial_id, 0)
        self.next[trial_id] = epoch + 1
        row = {"epoch": epoch, "step": 100 * epoch, "train_loss": 1 / (1 + epoch), "gc": 5.0}
        if trial_id not in self.sinks:  # a trial started after the first load
            self.sinks[trial_id] = self._sink(trial_id)
        self.sinks[trial_id].write(row | metrics)
        return self.sdir.epoch_file(trial_id, epoch)

    def finish(self, trial_id: str) -> None:
        self.sinks[trial_id].compact()

    def merge(self) -> None:
        merge_finished(self.sdir)


def assert_same(live: LiveStudy, root: str, *, allow_missing: bool = False) -> None:
    """The live snapshot is the study a full load of the directory gives (its rows read
    as one block, whatever size a test gives the live study's)."""
    with pytest.MonkeyPatch.context() as one_block:
        one_block.setattr(analysis.blocks, "BLOCK_ROWS", 10**9)
        got, full = live.study, load_results(root, allow_missing=allow_missing)
    pd.testing.assert_frame_equal(got.metrics, full.metrics)
    pd.testing.assert_frame_equal(got.trials, full.trials)
    assert got.warnings == full.warnings
    assert (got.n_files, got.n_duplicates, got.sweep_params, got.path) == (
        full.n_files,
        full.n_duplicates,
        full.sweep_params,
        full.path,
    )


def listed(root: str) -> dict[str, tuple]:
    return analysis.load.listing(StudyDir(Storage.open(root)))


def refreshed(live: LiveStudy, *, files_read: int) -> None:
    result = live.refresh()
    assert (result.changed, result.files_read, result.problem) == (True, files_read, None)


@pytest.fixture
def root(tmp_path) -> str:
    return write_synthetic_study(tmp_path / "s", SPEC)


@pytest.fixture
def parts_unkept(monkeypatch) -> None:
    """Files of 20 rows or more count as large: read with dictionaries, their rows kept
    only in the frame (the synthetic parts have 33)."""
    monkeypatch.setattr(analysis.load, "DECODE_AS_DICTIONARY", 20)


def test_the_first_load_is_load_results_and_a_refresh_finding_nothing_reads_nothing(root):
    live = LiveStudy(root)
    assert_same(live, root)
    study = live.study
    result = live.refresh()
    assert (result.changed, result.files_read, result.problem) == (False, 0, None)
    assert result.files_total == study.n_files == len(listed(root))
    assert live.study is study


@pytest.mark.parametrize("parts", ["kept", "unkept"])
def test_a_driver_writing_rolling_up_finishing_and_merging_is_followed_file_by_file(
    root, parts, request
):
    if parts == "unkept":
        request.getfixturevalue("parts_unkept")
    live, driver = LiveStudy(root), Driver(root)
    for _ in range(4):  # three per-epoch files, then the fourth rolled up with them
        driver.evaluate("t00008")
        refreshed(live, files_read=1)  # the new file, then the rewritten rolled.parquet
        assert_same(live, root)
    driver.finish("t00008")  # compacted.parquet written, the other files removed
    refreshed(live, files_read=1)
    assert_same(live, root)
    before = set(listed(root))
    driver.merge()  # new parts; the part not yet full and the trial folders removed
    new = set(listed(root)) - before
    refreshed(live, files_read=len(new))
    assert_same(live, root)
    assert "t00008" in set(live.study.metrics["trial_id"])


def test_a_merge_that_one_listing_half_saw_is_listed_again(root, monkeypatch):
    """A listing may walk ``metrics/`` before a merge writes its part and the trial folders
    after it removed them: the rows of files gone, which no file read now holds, are looked
    for in a second listing."""
    live, driver = LiveStudy(root), Driver(root)
    before = set(listed(root))
    driver.merge()
    parts = set(listed(root)) - before
    listing, listings = analysis.load.listing, []

    def half_seen(sdir):
        listings.append(listing(sdir))
        return (
            listings[-1]
            if len(listings) > 1
            else {p: s for p, s in listings[-1].items() if p not in parts}
        )

    monkeypatch.setattr(analysis.load, "listing", half_seen)
    refreshed(live, files_read=len(parts))
    assert len(listings) == 2
    assert_same(live, root)


def test_a_row_written_after_its_trial_was_merged_reads_that_part_again(root, parts_unkept):
    live, driver = LiveStudy(root), Driver(root)
    driver.next["t00001"] = 3  # a replayed evaluation, written after the merge
    driver.evaluate("t00001", gc=123.0)
    refreshed(live, files_read=2)  # the new file and the part whose t00001 rows it joins
    assert_same(live, root)
    rows = live.study.metrics.set_index(["trial_id", "epoch"])
    assert rows.loc[("t00001", 3), "gc"] == 123.0


def test_a_removed_file_brings_back_the_row_it_superseded(root):
    live = LiveStudy(root)
    trial = "t00006"  # restarted: its replayed per-epoch files supersede rolled-up rows
    epochs = sorted(f for f in os.listdir(os.path.join(root, "metrics", f"trial_id={trial}")))
    os.remove(os.path.join(root, "metrics", f"trial_id={trial}", epochs[0]))
    refreshed(live, files_read=0)
    assert_same(live, root)
    assert (live.study.metrics["gc"] == STALE).sum() == 1


def test_a_corrupt_file_is_named_not_raised_and_the_other_rows_stay(root):
    live, driver = LiveStudy(root), Driver(root)
    path = driver.evaluate("t00007")
    with open(path, "rb") as fh:
        good = fh.read()
    with open(path, "wb") as fh:
        fh.write(b"PAR1 not parquet")
    result = live.refresh()
    assert result.changed and result.files_read == 1
    assert path in result.problem
    assert any(path in w and "unreadable" in w for w in live.study.warnings)
    assert_same(live, root, allow_missing=True)
    again = live.refresh()  # tried again, still unreadable: named, nothing changed
    assert (again.changed, again.files_read) == (False, 1) and path in again.problem
    with open(path, "wb") as fh:
        fh.write(good)
    refreshed(live, files_read=1)
    assert_same(live, root)


def test_a_file_rolled_up_while_it_is_read_is_found_in_its_new_place(root, monkeypatch):
    live, driver = LiveStudy(root), Driver(root, roll_every=100)
    path = driver.evaluate("t00007")
    read_file = analysis.load._read_file

    def rolled_up_while_read(fs, p):
        if p == path and os.path.exists(p):
            driver.sinks["t00007"].roll()  # rolled.parquet rewritten, the file removed
        return read_file(fs, p)

    monkeypatch.setattr(analysis.load, "_read_file", rolled_up_while_read)
    result = live.refresh()
    assert not os.path.exists(path)
    assert (result.changed, result.files_read, result.problem) == (True, 2, None)
    assert_same(live, root)


def test_a_new_column_rebuilds_the_frame_with_it(root, parts_unkept):
    live, driver = LiveStudy(root), Driver(root)
    driver.evaluate("t00007", my_metric=0.5)
    parts = [f for f in os.listdir(os.path.join(root, "metrics")) if f.startswith("part-")]
    refreshed(live, files_read=1 + len(parts))  # every part read again for the new schema
    assert_same(live, root)
    assert live.study.metrics["my_metric"].notna().sum() == 1


def test_a_file_whose_column_types_disagree_is_named_and_left_out(root):
    live = LiveStudy(root)
    before = live.study.metrics
    folder = os.path.join(root, "metrics", "trial_id=t00007")
    table = pq.read_table(os.path.join(folder, "rolled.parquet"))
    path = os.path.join(folder, "epoch=00099.parquet")
    gc = table.schema.get_field_index("gc")
    pq.write_table(table.slice(0, 1).set_column(gc, "gc", table["gc"].cast("string")[:1]), path)
    with pytest.raises(ResultsError, match="'gc'"):
        load_results(root)
    result = live.refresh()
    assert result.changed and path in result.problem and "'gc'" in result.problem
    pd.testing.assert_frame_equal(live.study.metrics, before)


def test_a_null_in_an_integer_column_comes_and_goes_as_a_full_load_has_it(root):
    live, driver = LiveStudy(root), Driver(root)
    path = driver.evaluate("t00007", step=None)
    refreshed(live, files_read=1)
    assert_same(live, root)
    assert live.study.metrics["step"].dtype == "float64"
    os.remove(path)
    refreshed(live, files_read=0)
    assert_same(live, root)
    assert live.study.metrics["step"].dtype == "int64"


def test_a_study_whose_files_appear_after_the_first_load_fills_in(root):
    metrics, aside = os.path.join(root, "metrics"), os.path.join(root, "aside")
    os.rename(metrics, aside)
    live = LiveStudy(root)
    assert live.study.metrics.empty and any("no metrics files" in w for w in live.study.warnings)
    os.rename(aside, metrics)
    refreshed(live, files_read=len(listed(root)))
    assert_same(live, root)


def test_trials_parquet_is_read_again_when_it_changes(root):
    live = LiveStudy(root)
    path = os.path.join(root, "trials.parquet")
    trials = pq.read_table(path).to_pandas()
    trials.loc[trials["trial_id"] == "t00007", "status"] = "error"
    pq.write_table(pa.Table.from_pandas(trials, preserve_index=False), path)
    refreshed(live, files_read=0)
    assert_same(live, root)
    assert any("1 failed (t00007" in w for w in live.study.warnings)


def test_an_earlier_snapshot_stays_as_it_was(root):
    live, driver = LiveStudy(root), Driver(root)
    old = live.study
    kept = old.metrics.copy(deep=True)
    driver.evaluate("t00007")
    driver.evaluate("t00008")
    refreshed(live, files_read=2)
    assert live.study is not old and len(live.study.metrics) == len(kept) + 2
    pd.testing.assert_frame_equal(old.metrics, kept)


def test_an_earlier_snapshot_read_after_later_refreshes_is_as_it_was(root, monkeypatch):
    """A snapshot's frame is made when first read: made after two more refreshes (whose
    blocks share its unchanged ones), it is still the rows it was taken with."""
    monkeypatch.setattr(analysis.blocks, "BLOCK_ROWS", 12)
    live, driver = LiveStudy(root), Driver(root)
    driver.evaluate("t00007")
    refreshed(live, files_read=1)
    taken, expected = live.study, load_results(root).metrics
    for trial in ("t00007", "t00008"):
        driver.evaluate(trial)
        refreshed(live, files_read=1)
    _ = live.study.metrics  # the latest made first
    pd.testing.assert_frame_equal(taken.metrics, expected)
    assert_same(live, root)


def test_a_snapshot_read_by_several_threads_at_once_is_made_once(root):
    live, driver = LiveStudy(root), Driver(root)
    driver.evaluate("t00007")
    refreshed(live, files_read=1)
    study = live.study
    with ThreadPoolExecutor(max_workers=8) as pool:
        frames = list(pool.map(lambda _: study.metrics, range(8)))
    assert all(f is frames[0] for f in frames)
    assert_same(live, root)


def test_a_snapshot_pickles_with_its_rows(root):
    live, driver = LiveStudy(root), Driver(root)
    driver.evaluate("t00007")
    refreshed(live, files_read=1)
    copy = pickle.loads(pickle.dumps(live.study))  # not read before: made to be pickled
    pd.testing.assert_frame_equal(copy.metrics, load_results(root).metrics)
    assert copy.warnings == live.study.warnings


def test_a_uri_reads_like_a_path(root):
    live, driver = LiveStudy("file://" + root), Driver(root)
    driver.evaluate("t00007")
    refreshed(live, files_read=1)
    assert_same(live, "file://" + root)


def test_not_a_study_and_unreadable_files_at_the_start_are_refused(root, tmp_path):
    with pytest.raises(ResultsError, match=r"study\.json"):
        LiveStudy(str(tmp_path))
    path = os.path.join(root, "metrics", "trial_id=t00007", "rolled.parquet")
    with open(path, "wb") as fh:
        fh.write(b"not parquet")
    with pytest.raises(ResultsError, match="unreadable metrics files"):
        LiveStudy(root, allow_missing=False)
    live = LiveStudy(root)
    assert path in live.refresh().problem
    assert_same(live, root, allow_missing=True)


@pytest.mark.parametrize(
    ("seed", "block_rows", "look_every"), [(0, None, 1), (1, None, 1), (2, 3, 1), (3, 12, 4)]
)
def test_any_sequence_of_driver_steps_keeps_the_snapshot_a_full_load(
    root, seed, block_rows, look_every, monkeypatch
):
    """Seeds 2 and 3 hold the rows in blocks of a trial or two (a refresh replaces some,
    cuts and empties others), and seed 3 reads the frame only every fourth refresh (the
    blocks of several refreshes read whole at once)."""
    if seed % 2:
        monkeypatch.setattr(analysis.load, "DECODE_AS_DICTIONARY", 20)
    if block_rows:
        monkeypatch.setattr(analysis.blocks, "BLOCK_ROWS", block_rows)
    rng = random.Random(seed)
    live, driver = LiveStudy(root), Driver(root)
    running = ["t00006", "t00007", "t00008", "t00100", "t00101"]  # two start after the load
    for step_no in range(1, 31):
        step = rng.choice(["evaluate"] * 4 + ["finish", "merge", "remove"])
        if step == "evaluate" and running:
            driver.evaluate(rng.choice(running))
        elif step == "finish" and running:
            trial = running.pop(rng.randrange(len(running)))
            if trial in driver.sinks:
                driver.finish(trial)
        elif step == "merge":
            driver.merge()
        elif step == "remove":
            files = [p for p in listed(root) if "epoch=" in p]
            if files:
                os.remove(rng.choice(files))
        result = live.refresh()
        assert result.problem is None
        assert result.files_total == len(listed(root))
        if step_no % look_every == 0:
            assert_same(live, root)
