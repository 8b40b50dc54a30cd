"""A study that measures every layer, through ``gcnc run`` with the real trainable: its
layers table, the last layer equal to the metrics table, and a killed driver's resume.

Every driver runs in a session of its own (``spawn``), reaped at the end of the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gcnc_testkit import (
    finish,
    gcnc,
    kill_driver,
    raw_rows,
    read_rows,
    read_trials,
    run_study,
    wait_for,
    write_study,
)

from studyfiles import StudyDir
from studyfiles.tables import read_table

pytestmark = pytest.mark.slow

# The quickstart's model and data, short: 2 trials of 6 epochs, every layer measured.
DEPTH = """
name = "depth"
[data]
name = "digits"
source_classes = [0, 1, 2, 3, 4]
target_classes = [5, 6, 7, 8, 9]
[model]
name = "vgg11"
width = 8
[train]
lr = 0.05
batch_size = 64
epochs = 6
device = "cpu"
[metrics]
layers = "all"
gc_batches = 1
gc_batch_size = 64
nc_per_class = 50
fewshot_shots = [5]
fewshot_episodes = 50
[sweep]
seeds = [0, 1]
[resources]
cpus_per_trial = 1
"""
BLOCKS = ["block1", "block2", "block3", "block4", "block5"]
SHARED = ["gc", "geo_collapse", "nc_cdnv", "nc1", "target_nc_cdnv", "fewshot_acc_5shot",
          "fewshot_ci_5shot", "ncc_test_error"]  # fmt: skip
KEY = ["trial_id", "epoch", "layer"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, ray_tmpdir) -> Path:
    """The study run once without a stop."""
    folder = tmp_path_factory.mktemp("depth")
    run_study(write_study(folder, DEPTH), folder / "runs", timeout_s=600)
    return folder / "runs" / "depth"


def test_every_layer_of_every_evaluation_is_one_row_of_the_merged_layers_table(uninterrupted):
    rows = read_rows(uninterrupted, "layers")
    assert len(rows) == len(raw_rows(uninterrupted, "layers")) == 2 * 7 * 5  # trials, evaluations
    assert [p.name[:5] for p in (uninterrupted / "layers").iterdir()] == ["part-"]
    assert rows.groupby(["trial_id", "epoch"])["layer_name"].agg(list).map(
        tuple
    ).unique().tolist() == [tuple(BLOCKS)]
    assert rows["layer"].tolist() == [1, 2, 3, 4, 5] * 14
    assert rows.groupby("layer")["layer_dim"].first().tolist() == [8, 16, 32, 64, 64]
    assert rows[SHARED].notna().all().all() and (rows["gc_estimator"] == "exact").all()
    metrics = read_rows(uninterrupted)
    assert "layers" not in metrics.columns and "layer" not in metrics.columns
    both = rows.merge(metrics, on=["trial_id", "epoch"], suffixes=("", "_m"))
    for column in ["step", "spec_hash", "code_version", "train.lr", "train.seed", "study"]:
        assert (both[column] == both[f"{column}_m"]).all(), column
    last = both[both["layer"] == 5]
    for column in SHARED:  # the embedding's row holds the metrics row's values
        assert np.array_equal(last[column].to_numpy(), last[f"{column}_m"].to_numpy()), column
    inner = both[both["layer"] < 5]
    assert not np.allclose(inner["gc"], inner["gc_m"])  # the layers measure something else
    table, bad = read_table(StudyDir.at(str(uninterrupted)), "layers")
    assert bad == {}
    pd.testing.assert_frame_equal(
        table.to_pandas()[KEY + SHARED], rows[KEY + SHARED], check_dtype=False
    )


def test_a_killed_driver_s_resume_leaves_the_layers_table_an_uninterrupted_run_writes(
    uninterrupted, spawn, tmp_path
):
    path = write_study(tmp_path, DEPTH)
    study_dir = tmp_path / "runs" / "depth"
    driver = gcnc(spawn, "run", str(path), "--storage", str(tmp_path / "runs"), "--no-report")

    def some_epochs_in() -> bool:
        assert driver.poll() is None, "the driver ended before it could be killed"
        rows = read_rows(study_dir, "layers")
        return not rows.empty and rows["epoch"].max() >= 2

    wait_for(some_epochs_in, timeout_s=300, what="a trial some epochs in")
    kill_driver(driver)
    before = read_rows(study_dir, "layers")
    assert before["epoch"].max() < 6 or len(before) < 2 * 7 * 5  # it stopped mid-study

    finish(gcnc(spawn, "resume", str(study_dir), "--no-report"), timeout_s=600)
    assert (read_trials(study_dir)["status"] == "done").all()
    assert len(raw_rows(study_dir)) == 2 * 7  # exactly one metrics row per (trial, epoch)
    assert (
        len(raw_rows(study_dir, "layers")) == 2 * 7 * 5
    )  # and one layer row per (trial, epoch, layer)
    after, reference = read_rows(study_dir, "layers"), read_rows(uninterrupted, "layers")
    pd.testing.assert_frame_equal(after[KEY + SHARED], reference[KEY + SHARED])
    kept = before.merge(after, on=KEY, suffixes=("_b", "_a"))
    assert len(kept) == len(before)  # every layer row written before the kill is still there
    for column in SHARED:
        assert np.array_equal(kept[f"{column}_b"], kept[f"{column}_a"], equal_nan=True), column
