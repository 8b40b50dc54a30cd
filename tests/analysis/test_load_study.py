"""Loading: dedup on (trial_id, epoch), schema checks, unreadable files named, nulls kept."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synthetic_study import STALE, SyntheticSpec, write_synthetic_study

import analysis.blocks
import analysis.load
from analysis import ResultsError, compute_results, load_results
from studyfiles.plan import Plan, UnreadablePlan

# Finished trials only, none left over: t00000-t00007 merged into one part, t00008 compacted.
TIDY = SyntheticSpec(running=0, leftovers=0, restarted=0, stopped_merge=False, merge_every=4)


def _raw_rows(study_dir: str) -> pd.DataFrame:
    """Every row of every metrics file, read independently of the loader."""
    frames = []
    for folder, _, files in os.walk(os.path.join(study_dir, "metrics")):
        frames += [pq.read_table(os.path.join(folder, f)).to_pandas() for f in files]
    return pd.concat(frames, ignore_index=True)


def test_one_row_per_key_holding_the_latest_write(lr_study_dir, lr_study):
    raw = _raw_rows(lr_study_dir)
    latest = raw.sort_values("written_at").groupby(["trial_id", "epoch"]).tail(1)
    got = lr_study.metrics.set_index(["trial_id", "epoch"]).sort_index()
    want = latest.set_index(["trial_id", "epoch"]).sort_index()
    assert not got.index.duplicated().any()
    assert got.index.equals(want.index)
    np.testing.assert_array_equal(got["gc"].to_numpy(), want["gc"].to_numpy())
    assert (got["written_at"] == want["written_at"]).all()
    assert lr_study.n_duplicates == len(raw) - len(want) > 0
    assert (raw["gc"] == STALE).sum() == 2  # a restarted trial's superseded rows
    assert not (lr_study.metrics[["gc", "nc_cdnv", "train_loss"]] == STALE).any().any()


def _part(root: str) -> str:
    (name,) = [f for f in os.listdir(os.path.join(root, "metrics")) if f.startswith("part-")]
    return os.path.join(root, "metrics", name)


def test_a_later_per_epoch_file_wins_over_the_merged_row(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    merged = pq.read_table(_part(root)).to_pandas()
    row = merged[(merged["trial_id"] == "t00002") & (merged["epoch"] == 4)].copy()
    row["gc"] = 123.0
    row["written_at"] = row["written_at"] + pd.Timedelta(hours=1)
    folder = os.path.join(root, "metrics", "trial_id=t00002")
    os.makedirs(folder)
    pq.write_table(
        pa.Table.from_pandas(row, preserve_index=False), os.path.join(folder, "epoch=00004.parquet")
    )
    study = load_results(root)
    got = study.metrics.set_index(["trial_id", "epoch"]).loc[("t00002", 4), "gc"]
    assert got == 123.0
    assert study.n_duplicates == 1


def test_rows_are_sorted_by_trial_then_epoch(lr_study):
    m = lr_study.metrics
    keys = list(zip(m["trial_id"], m["epoch"], strict=True))
    assert keys == sorted(keys)


def test_unmeasured_columns_stay_null_never_zero(lr_study):
    assert lr_study.metrics["gc_exact"].isna().all()
    assert not lr_study.measured("gc_exact")
    assert lr_study.measured("nc_bound")


def test_trial_status_is_joined_and_config_stays_in_trials(lr_study):
    m = lr_study.metrics
    assert set(m["trial_status"]) == {"done", "running"}
    assert "config" not in m
    assert json.loads(lr_study.trials["config"].iloc[0])["train"]["lr"] == 0.005


def test_sweep_params_come_from_study_json(lr_study):
    assert lr_study.sweep_params == ["train.lr", "train.seed"]
    assert lr_study.hyper_params == ["train.lr"]
    assert lr_study.seed_param == "train.seed"


@pytest.mark.parametrize("block_rows", [None, 7])
def test_without_declared_sweep_params_the_dotted_columns_that_vary_are_swept(
    lr_study_dir, tmp_path, monkeypatch, block_rows
):
    """A study made before study.json declared its sweep: the dotted columns of the rows
    (with trials.parquet's joined) taking more than one value, counted over the frame here
    (and made from blocks of a trial or two)."""
    if block_rows:
        monkeypatch.setattr(analysis.blocks, "BLOCK_ROWS", block_rows)
    root = shutil.copytree(lr_study_dir, tmp_path / "old")
    meta = json.loads((root / "study.json").read_text())
    del meta["sweep_params"]
    (root / "study.json").write_text(json.dumps(meta))
    study = load_results(str(root))
    m = study.metrics
    assert study.sweep_params == [c for c in m if "." in c and m[c].nunique(dropna=True) > 1]
    assert "train.lr" in study.sweep_params


def test_a_truncated_file_is_named_and_with_allow_missing_the_rest_loads(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    bad = os.path.join(root, "metrics", "trial_id=t00008", "compacted.parquet")
    with open(bad, "r+b") as fh:
        fh.truncate(os.path.getsize(bad) // 2)
    with pytest.raises(ResultsError, match="rows missing for 1 trials \\(t00008\\)"):
        load_results(root)
    study = load_results(root, allow_missing=True)
    assert any(bad in w and "unreadable" in w for w in study.warnings)
    assert "t00008" not in set(study.metrics["trial_id"])
    assert study.metrics["trial_id"].nunique() == 8


def test_a_truncated_part_is_named_and_its_trials_are_missing(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    bad = _part(root)
    with open(bad, "r+b") as fh:
        fh.truncate(os.path.getsize(bad) - 100)
    study = load_results(root, allow_missing=True)
    assert any(bad in w and "unreadable" in w for w in study.warnings)
    assert set(study.metrics["trial_id"]) == {"t00008"}


def test_an_unreadable_file_is_refused_naming_it_and_the_trials_whose_rows_it_held(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)  # t00000-t00007 in one part
    bad = _part(root)
    with open(bad, "wb") as fh:
        fh.write(b"not parquet")
    with pytest.raises(ResultsError) as raised:
        load_results(root)
    message = str(raised.value)
    assert f"unreadable metrics files: {bad} (" in message
    assert "rows missing for 8 trials (t00000, t00001, t00002, t00003, t00004, t00005" in message
    assert "gcnc resume runs them again, or --allow-missing analyses the rest" in message
    study = load_results(root, allow_missing=True)
    assert any(bad in w and "rows missing for 8 trials" in w for w in study.warnings)
    assert set(study.metrics["trial_id"]) == {"t00008"}


def test_files_with_different_columns_are_unified(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    path = os.path.join(root, "metrics", "trial_id=t00008", "compacted.parquet")
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["fewshot_acc_5shot", "fewshot_ci_5shot"]), path)
    study = load_results(root)
    rows = study.metrics.set_index("trial_id")
    assert rows.loc["t00008", "fewshot_acc_5shot"].isna().all()
    assert rows.loc["t00001", "fewshot_acc_5shot"].notna().all()


def test_a_missing_fixed_column_reads_as_not_measured_with_a_warning(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    for folder, _, files in os.walk(os.path.join(root, "metrics")):
        for f in files:
            path = os.path.join(folder, f)
            pq.write_table(pq.read_table(path).drop_columns(["nc_bound"]), path)
    study = load_results(root)
    assert study.metrics["nc_bound"].isna().all()
    assert any("nc_bound" in w for w in study.warnings)


def test_a_missing_required_column_is_an_error_naming_it(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    for folder, _, files in os.walk(os.path.join(root, "metrics")):
        for f in files:
            path = os.path.join(folder, f)
            pq.write_table(pq.read_table(path).drop_columns(["written_at"]), path)
    with pytest.raises(ResultsError, match="written_at"):
        load_results(root)


def test_a_column_of_the_wrong_type_is_an_error(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    for folder, _, files in os.walk(os.path.join(root, "metrics")):
        for f in files:
            path = os.path.join(folder, f)
            t = pq.read_table(path)
            i = t.schema.get_field_index("gc")
            pq.write_table(t.set_column(i, "gc", t["gc"].cast(pa.string())), path)
    with pytest.raises(ResultsError, match="'gc'"):
        load_results(root)


def test_files_disagreeing_on_a_type_are_named(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    path = os.path.join(root, "metrics", "trial_id=t00008", "compacted.parquet")
    t = pq.read_table(path)
    i = t.schema.get_field_index("nc1")
    pq.write_table(t.set_column(i, "nc1", t["nc1"].cast(pa.string())), path)
    with pytest.raises(ResultsError, match="t00008"):
        load_results(root)


def test_no_study_json_is_an_error(tmp_path):
    with pytest.raises(ResultsError, match=r"study\.json"):
        load_results(str(tmp_path))


def test_a_uri_reads_like_a_path(lr_study_dir, lr_study):
    study = load_results("file://" + lr_study_dir)
    pd.testing.assert_frame_equal(study.metrics, lr_study.metrics)


def test_missing_trials_file_is_warned_and_trials_derived(tmp_path):
    root = write_synthetic_study(tmp_path / "s", SyntheticSpec())
    os.remove(os.path.join(root, "trials.parquet"))
    study = load_results(root)
    assert any("trials.parquet" in w for w in study.warnings)
    assert sorted(study.trials["trial_id"]) == sorted(study.metrics["trial_id"].unique())


def test_metrics_of_an_unknown_trial_and_another_spec_hash_are_warned(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    src = os.path.join(root, "metrics", "trial_id=t00008")
    dst = os.path.join(root, "metrics", "trial_id=zz")
    shutil.copytree(src, dst)
    path = os.path.join(dst, "compacted.parquet")
    t = pq.read_table(path).to_pandas()
    t["trial_id"], t["spec_hash"] = "zz", "0000000000000000"
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), path)
    study = load_results(root)
    assert any("no row in trials.parquet: zz" in w for w in study.warnings)
    assert any("another spec hash (0000000000000000)" in w for w in study.warnings)


def test_a_study_without_metrics_loads_empty_with_a_warning(tmp_path):
    (tmp_path / "study.json").write_text(json.dumps({"name": "e", "sweep_params": ["train.lr"]}))
    study = load_results(str(tmp_path))
    assert study.metrics.empty
    assert any("no metrics files" in w for w in study.warnings)


def test_a_study_whose_every_file_is_unreadable_loads_empty_naming_them(tmp_path):
    spec = SyntheticSpec(lrs=(0.01,), seeds=(0,), running=0, leftovers=0, restarted=0)
    root = write_synthetic_study(tmp_path / "s", spec)
    bad = os.path.join(root, "metrics", "trial_id=t00000", "compacted.parquet")
    with open(bad, "wb") as fh:
        fh.write(b"PAR1 garbage")
    study = load_results(root, allow_missing=True)
    assert study.metrics.empty
    assert any(bad in w for w in study.warnings)


def test_a_file_merged_away_while_it_is_read_is_found_in_its_new_file(tmp_path, monkeypatch):
    """A running study moves rows into new files (roll-ups, part files) and deletes the old
    ones; a file gone mid-read sends the loader back to list ``metrics/`` again."""
    root = write_synthetic_study(tmp_path / "s", TIDY)
    old = os.path.join(root, "metrics", "trial_id=t00008", "compacted.parquet")
    new = os.path.join(root, "metrics", "part-00000000000000ff.parquet")
    read_file = analysis.load._read_file

    def merged_while_read(fs, path):
        if path == old and os.path.exists(old):
            os.replace(old, new)  # the driver merges the trial just as it is read
        return read_file(fs, path)

    monkeypatch.setattr(analysis.load, "_read_file", merged_while_read)
    study = load_results(root)
    assert not os.path.exists(old) and os.path.exists(new)
    assert study.warnings == []
    assert study.metrics["trial_id"].nunique() == 9
    assert len(study.metrics) == len(_raw_rows(root))


def test_trials_that_did_not_finish_are_named_with_the_epoch_their_rows_reach(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    path = os.path.join(root, "trials.parquet")
    trials = pq.read_table(path).to_pandas()
    trials["config"] = json.dumps({"train": {"epochs": 10}})
    trials.loc[trials["trial_id"] == "t00001", "status"] = "interrupted"
    trials.loc[trials["trial_id"] == "t00002", "status"] = "stopped"
    trials.loc[trials["trial_id"] == "t00003", "status"] = "error"
    pending = trials[trials["trial_id"] == "t00000"].assign(trial_id="t00099", status="pending")
    pq.write_table(pa.Table.from_pandas(pd.concat([trials, pending]), preserve_index=False), path)
    study = load_results(root)
    (unfinished,) = [w for w in study.warnings if "have not finished" in w]
    assert unfinished == (
        "3 of 10 trials have not finished and are left out of every comparison: "
        "1 started and not ended (t00001 at epoch 10 of 10), 1 failed (t00003 at epoch 10 of "
        "10), 1 not started; gcnc resume finishes them"
    )
    (stopped,) = [w for w in study.warnings if "stopped early" in w]
    assert stopped == (
        "1 trial was stopped early by the scheduler (t00002 at epoch 10 of 10): left out of "
        "every comparison"
    )
    finals = analysis.aggregate.final_rows(study)
    matched, _ = analysis.aggregate.matched_progress(study, ["gc"])
    for compared in (finals, matched):
        assert not {"t00001", "t00002", "t00003"} & set(compared["trial_id"])


def _study_json(root: str) -> dict:
    with open(os.path.join(root, "study.json")) as fh:
        return json.load(fh)


def _edit_study_json(root: str, **changes) -> None:
    meta = _study_json(root) | changes
    with open(os.path.join(root, "study.json"), "w") as fh:
        json.dump(meta, fh)


def _plan_warnings(study) -> list[str]:
    return [w for w in study.warnings if "plan" in w]


def test_an_unreadable_plan_is_a_warning_and_makes_every_result_exploratory(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    spec = _study_json(root)["spec"]
    _edit_study_json(root, spec=None, plan={"alpha": 7})  # no spec: its plan is the plan
    study = load_results(root)
    assert isinstance(study.plan, UnreadablePlan)
    (warning,) = _plan_warnings(study)
    assert "(plan) is unreadable (analysis.alpha: 7.0 is not in" in warning
    assert warning.endswith("every result is exploratory")
    results = compute_results(study)
    assert results.label == "exploratory" and results.exploratory == ["plan=unreadable"]
    assert set(results.verdicts["role"]) == {"exploratory"}
    _edit_study_json(root, spec=spec | {"analysis": {"claims": "foo"}}, plan=None)
    study = load_results(root)
    assert isinstance(study.plan, UnreadablePlan)
    assert "(spec.analysis) is unreadable" in _plan_warnings(study)[0]


def test_the_plan_is_the_one_the_spec_hash_covers_and_a_differing_copy_is_named(tmp_path):
    root = write_synthetic_study(tmp_path / "s", TIDY)
    spec = _study_json(root)["spec"]
    hashed = Plan(alpha=0.01, comparison="final")
    _edit_study_json(root, spec=spec | {"analysis": hashed.as_dict()}, plan=hashed.as_dict())
    study = load_results(root)
    assert study.plan == hashed and not _plan_warnings(study)
    _edit_study_json(root, plan=Plan(alpha=0.1, comparison="final").as_dict())
    study = load_results(root)
    assert study.plan == hashed
    assert _plan_warnings(study) == [
        "study.json: its plan differs from its spec's analysis table, which the spec hash "
        "covers (alpha=0.1); the spec's is used"
    ]
    _edit_study_json(root, spec=spec)  # a resolved spec leaves the default plan out
    study = load_results(root)
    assert study.plan == Plan() and "(comparison=final, alpha=0.1)" in _plan_warnings(study)[0]
