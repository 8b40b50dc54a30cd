"""A trial's own checkpoints: the newest readable one, kept few, never a stranger's."""

from __future__ import annotations

import pickle

import pytest
import torch

from orchestrator.checkpoints import CheckpointStore
from studyfiles import StudyDir

PARAMS = {"train.lr": 0.1, "train.seed": 0}


@pytest.fixture
def sdir(tmp_path) -> StudyDir:
    return StudyDir.of(str(tmp_path), "s")


def test_a_store_keeps_the_newest_two_and_loads_the_newest(sdir):
    store = CheckpointStore(sdir, "t00000", PARAMS)
    assert store.load() is None
    for epoch in range(4):
        store.save({"epoch": epoch}, epoch=epoch)
    assert [p.rsplit("/", 1)[1] for p in store.paths()] == ["epoch=00002.ckpt", "epoch=00003.ckpt"]
    assert store.load() == {"epoch": 3}
    store.prune(1)
    assert store.load() == {"epoch": 3} and len(store.paths()) == 1


def test_a_state_with_tensors_is_a_torch_file_the_user_can_load(sdir):
    store = CheckpointStore(sdir, "t00000", PARAMS)
    weights = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    store.save({"model": {"w": weights}, "epoch": 1}, epoch=1)
    (path,) = store.paths()
    with open(path, "rb") as fh:
        record = torch.load(fh, weights_only=False)
    assert record["trial_id"] == "t00000" and record["params"] == PARAMS
    assert torch.equal(record["state"]["model"]["w"], weights)
    assert torch.equal(store.load()["model"]["w"], weights)


def test_a_plain_state_is_a_pickle(sdir):
    store = CheckpointStore(sdir, "t00000", PARAMS)
    store.save({"epoch": 2, "wall_time_s": 1.5}, epoch=2)
    (path,) = store.paths()
    with open(path, "rb") as fh:
        assert pickle.load(fh)["state"] == {"epoch": 2, "wall_time_s": 1.5}


def test_a_checkpoint_of_other_params_under_the_id_is_removed_not_loaded(sdir):
    CheckpointStore(sdir, "t00000", {**PARAMS, "train.lr": 0.5}).save({"epoch": 3}, epoch=3)
    store = CheckpointStore(sdir, "t00000", PARAMS)
    assert store.load() is None
    assert store.paths() == []


def test_unreadable_checkpoints_are_passed_over(sdir, capsys):
    store = CheckpointStore(sdir, "t00000", PARAMS)
    store.save({"epoch": 1}, epoch=1)
    store.save({"epoch": 2}, epoch=2)
    newest = store.paths()[-1]
    with open(newest, "wb") as fh:
        fh.write(b"PK\x03\x04 cut off")
    assert store.load() == {"epoch": 1}
    assert "epoch=00002.ckpt is unreadable" in capsys.readouterr().err
    with open(store.paths()[0], "wb") as fh:
        fh.write(b"not a pickle")
    assert store.load() is None  # nothing readable: the trial starts afresh
