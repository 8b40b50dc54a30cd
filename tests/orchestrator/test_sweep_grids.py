"""A list of grids: one-at-a-time sweeps around a centre config, shared trials run once."""

from __future__ import annotations

import pytest
from gcnc_testkit import write_study

from orchestrator.search import trial_points
from orchestrator.studyfile import load_spec
from studyfiles import InputError

ONE_AT_A_TIME = """
[train]
lr = 0.02
batch_size = 64
epochs = 2
[sweep]
seeds = [0, 1]
[[sweep.grids]]
"train.lr" = [0.005, 0.02, 0.1]
[[sweep.grids]]
train.batch_size = [16, 64]
"""


def test_grids_run_side_by_side_and_the_shared_centre_runs_once(tmp_path):
    study = load_spec(write_study(tmp_path, ONE_AT_A_TIME))
    points = trial_points(study)
    seed0 = [p for p in points if p["train.seed"] == 0]
    assert seed0 == [
        {"train.lr": 0.005, "train.seed": 0},
        {"train.lr": 0.02, "train.seed": 0},  # the centre: lr 0.02, batch 64
        {"train.lr": 0.1, "train.seed": 0},
        {"train.batch_size": 16, "train.seed": 0},
    ]
    assert len(points) == 2 * len(seed0)
    assert study.sweep_params() == ["train.lr", "train.batch_size", "train.seed"]


def test_a_point_off_the_centre_is_not_merged_with_another(tmp_path):
    text = ONE_AT_A_TIME.replace("[16, 64]", "[16, 128]")
    points = trial_points(load_spec(write_study(tmp_path, text)))
    assert len(points) == 2 * 5


def test_grid_and_grids_together_are_refused(tmp_path):
    text = ONE_AT_A_TIME + '[sweep.grid]\n"train.l2" = [0.0, 0.1]\n'
    with pytest.raises(InputError, match="not both"):
        load_spec(write_study(tmp_path, text))


def test_a_bad_value_in_a_later_grid_names_that_table(tmp_path):
    text = ONE_AT_A_TIME.replace("[16, 64]", "[16, 0]")
    with pytest.raises(InputError) as info:
        load_spec(write_study(tmp_path, text))
    assert info.value.field.startswith("sweep.grids")
    assert "batch_size" in info.value.field


def test_an_empty_value_list_in_a_grid_is_refused(tmp_path):
    text = ONE_AT_A_TIME.replace("[16, 64]", "[]")
    with pytest.raises(InputError, match="no values"):
        load_spec(write_study(tmp_path, text))
