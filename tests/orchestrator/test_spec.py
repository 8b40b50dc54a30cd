"""StudySpec files that are valid: defaults, grid forms, overrides, smoke, hashing, study.json."""

from __future__ import annotations

import hashlib
import json

import pytest
from gcnc_testkit import write_study

from orchestrator import cli
from orchestrator.provenance import open_study_dir, study_info
from orchestrator.spec import spec_hash
from orchestrator.studyfile import load_spec
from studyfiles import InputError, StudyDir
from trainables.config import TrialConfig

GRID = """
[train]
epochs = 4
[sweep]
seeds = [0, 1]
[sweep.grid]
train.lr = [0.01, 0.1]
"train.batch_size" = [32, 64]
[smoke]
train.epochs = 1
sweep.seeds = [0]
"""


def test_defaults_are_the_trial_configs_and_the_name_is_the_file_stem(tmp_path):
    study = load_spec(write_study(tmp_path, "[train]\n", filename="plain.toml"))
    assert study.name == "plain"
    assert study.trainable == "gcnc"
    assert study.base_config() == TrialConfig().model_dump(mode="json")
    assert study.sweep is None and study.search is None and study.sweep_params() == []


def test_grid_keys_may_be_nested_or_quoted(tmp_path):
    study = load_spec(write_study(tmp_path, GRID))
    assert study.sweep.grid == {"train.lr": [0.01, 0.1], "train.batch_size": [32, 64]}
    assert study.sweep_params() == ["train.lr", "train.batch_size", "train.seed"]


def test_set_overrides_values_read_as_toml(tmp_path):
    path = write_study(tmp_path, GRID)
    study = load_spec(
        path,
        overrides=[
            "train.momentum=0.9",
            "sweep.grid.train.lr=[0.5]",
            'data.name="synthetic"',
            "metrics.fewshot=false",
        ],
    )
    assert study.train.momentum == 0.9
    assert study.sweep.grid["train.lr"] == [0.5]
    assert study.data.name == "synthetic"
    assert study.metrics.fewshot is False


def test_smoke_applies_its_table_then_the_overrides_and_renames(tmp_path):
    path = write_study(tmp_path, GRID, filename="grid.toml")
    study = load_spec(path, smoke=True, overrides=["train.epochs=2"])
    assert study.name == "grid-smoke"
    assert study.sweep.seeds == [0]
    assert study.train.epochs == 2  # --set wins over [smoke]


def test_spec_hash_is_sha256_of_canonical_json():
    spec = {"b": [1, 2.5], "a": {"y": None, "x": "s"}}
    canonical = '{"a":{"x":"s","y":null},"b":[1,2.5]}'
    assert spec_hash(spec) == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_spec_hash_ignores_key_order_and_catches_value_changes(tmp_path):
    a = write_study(tmp_path, "[train]\nlr = 0.1\nepochs = 3", filename="s.toml")
    first = study_info(load_spec(a))["spec_hash"]
    (tmp_path / "b").mkdir()
    b = write_study(tmp_path / "b", "[train]\nepochs = 3\nlr = 0.1", filename="s.toml")
    assert study_info(load_spec(b))["spec_hash"] == first
    changed = study_info(load_spec(a, overrides=["train.epochs=4"]))["spec_hash"]
    assert changed != first


def test_study_info_holds_the_schema_keys(tmp_path):
    info = study_info(load_spec(write_study(tmp_path, GRID)))
    assert set(info) == {
        "name",
        "spec",
        "spec_hash",
        "sweep_params",
        "seed_param",
        "plan",
        "code",
        "datasets",
        "code_version",
        "packages",
        "created_at",
    }
    assert info["seed_param"] == "train.seed"
    assert info["spec_hash"] == spec_hash(info["spec"])
    assert info["code_version"].startswith("gcnc ")
    assert {"python", "ray", "pyarrow", "torch"} <= set(info["packages"])
    json.dumps(info, allow_nan=False)  # plain JSON


def test_study_dir_is_created_then_resumed_and_a_different_spec_is_refused(tmp_path):
    path = write_study(tmp_path, GRID, filename="grid.toml")
    sdir = StudyDir.of(str(tmp_path / "runs"), "grid")
    info, existed = open_study_dir(sdir, load_spec(path))
    assert not existed and (tmp_path / "runs" / "grid" / "study.json").is_file()
    again, existed = open_study_dir(sdir, load_spec(path))
    assert existed and again == info
    with pytest.raises(InputError) as caught:
        open_study_dir(sdir, load_spec(path, overrides=["train.epochs=9"]))
    assert caught.value.field == "study.json"
    assert "train.epochs" in caught.value.problem
    assert json.loads((tmp_path / "runs" / "grid" / "study.json").read_text()) == info


def test_a_path_without_study_json_is_not_a_study_dir(tmp_path):
    with pytest.raises(InputError) as caught:
        StudyDir.at(str(tmp_path))
    assert caught.value.field == "STUDY_DIR"


def test_an_unwritable_storage_is_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the storage folder should be
    path = write_study(tmp_path, GRID, filename="grid.toml")
    with pytest.raises(InputError) as caught:
        open_study_dir(StudyDir.of(str(blocker), "grid"), load_spec(path))
    assert caught.value.field == "--storage"


def test_the_examples_in_the_spec_docstring_are_valid_study_files(tmp_path):
    import textwrap

    import orchestrator.spec as spec_module

    blocks = [b.split("\n\n", 1)[0] for b in spec_module.__doc__.split("::\n\n")[1:]]
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        study = load_spec(write_study(tmp_path, textwrap.dedent(block), filename=f"ex{i}.toml"))
        assert study.sweep is not None or study.search is not None


def test_the_tests_trainable_is_no_trainable_of_the_product(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, 'trainable = "testing.sleep"\n')
    monkeypatch.delenv("GCNC_TRAINABLES")
    assert cli.main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "gcnc: error: trainable: unknown trainable 'testing.sleep' "
        "(known: gcnc (more through GCNC_TRAINABLES))"
    )
    monkeypatch.setenv("GCNC_TRAINABLES", "testing.sleep")  # no module:function
    assert cli.main(["validate", str(path)]) == 2
    assert "GCNC_TRAINABLES: 'testing.sleep' is not name=module:function" in capsys.readouterr().err
    monkeypatch.setenv("GCNC_TRAINABLES", "mine=sleepy:run")
    assert cli.main(["validate", str(write_study(tmp_path, 'trainable = "mine"\n'))]) == 0
