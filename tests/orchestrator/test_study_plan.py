"""The study file's ``[analysis]`` table: read through the plan's checks, part of the spec
hash only where it departs from the defaults, recorded in ``study.json``."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from gcnc_testkit import write_study

from orchestrator import cli
from orchestrator.launch import stored_spec
from orchestrator.provenance import open_study_dir, study_info
from orchestrator.spec import AnalysisSpec, StudySpec, spec_hash
from orchestrator.studyfile import build_spec, load_spec
from studyfiles import InputError, StudyDir
from studyfiles.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
SWEEP = """
[train]
epochs = 2
[sweep]
seeds = [0, 1]
[sweep.grid]
train.lr = [0.01, 0.1]
[smoke]
sweep.seeds = [0]
"""
DEFAULTS = """
[analysis]
claims = "all"
comparison = "both"
progress_by = "train_loss"
progress_quantile = 1.0
alpha = 0.05
correction = "holm"
evidence = ["extremes", "spearman"]
require = "all"
"""


def _hash(study: StudySpec) -> str:
    return spec_hash(study.resolved())


def test_the_table_mirrors_the_plan_field_for_field_with_its_defaults():
    assert list(AnalysisSpec.model_fields) == [f.name for f in dataclasses.fields(Plan)]
    assert AnalysisSpec().plan() == Plan()


def test_a_plan_loads_with_its_values_and_defaults_for_the_rest(tmp_path):
    text = (
        SWEEP + '[analysis]\nclaims = ["train.lr", "chain"]\nalpha = 0.01\ncomparison = "final"\n'
    )
    study = load_spec(write_study(tmp_path, text))
    assert study.plan() == Plan(claims=("train.lr", "chain"), alpha=0.01, comparison="final")
    assert study.resolved()["analysis"] == study.plan().as_dict()
    assert load_spec(write_study(tmp_path, SWEEP, filename="none.toml")).plan() == Plan()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("alfa = 0.05", "alfa"),
        ('claims = "foo"', "claims"),
        ('comparison = "sometimes"', "comparison"),
        ("alpha = 0", "alpha"),
        ("alpha = 0.7", "alpha"),
        ('alpha = "x"', "alpha"),
        ("progress_quantile = 0", "progress_quantile"),
        ('correction = "fdr"', "correction"),
        ("evidence = []", "evidence"),
    ],
)
def test_a_bad_plan_names_its_key(tmp_path, table, key):
    with pytest.raises(InputError) as caught:
        load_spec(write_study(tmp_path, f"{SWEEP}[analysis]\n{table}\n"))
    assert caught.value.field == f"analysis.{key}"


def test_validate_refuses_a_bad_plan_in_one_line(tmp_path, capsys):
    path = write_study(tmp_path, f"{SWEEP}[analysis]\nalpha = 0.7\n")
    assert cli.main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "gcnc: error: analysis.alpha: 0.7 is not in [1e-06, 0.5) (use e.g. 0.05)"
    ]


def test_claims_on_a_key_the_study_does_not_vary_are_refused(tmp_path):
    with pytest.raises(InputError) as caught:
        load_spec(write_study(tmp_path, f'{SWEEP}[analysis]\nclaims = ["train.l2"]\n'))
    assert caught.value.field == "analysis.claims"
    assert "train.l2" in caught.value.problem and "train.lr" in caught.value.fix


def test_claims_across_depth_need_a_study_that_measures_layers(tmp_path):
    claims = '[analysis]\nclaims = ["train.lr", "depth"]\n'
    with pytest.raises(InputError) as caught:
        load_spec(write_study(tmp_path, f"{SWEEP}{claims}"))
    assert caught.value.field == "analysis.claims" and "metrics.layers" in caught.value.fix
    layers = '[model]\nname = "mlp"\n[metrics]\nlayers = "all"\n'
    study = load_spec(write_study(tmp_path, f"{SWEEP}{layers}{claims}", filename="l.toml"))
    assert study.plan().claims == ("train.lr", "depth")


def test_the_default_plan_leaves_the_resolved_spec_and_its_hash_as_they_were(tmp_path):
    plain = load_spec(write_study(tmp_path, SWEEP, filename="s.toml"))
    (tmp_path / "stated").mkdir()
    stated = load_spec(write_study(tmp_path / "stated", SWEEP + DEFAULTS, filename="s.toml"))
    before = plain.model_dump(mode="json")
    del before["analysis"]  # the spec as it resolved before studies declared plans
    assert plain.resolved() == stated.resolved() == before
    assert _hash(plain) == _hash(stated) == spec_hash(before)


def test_a_plan_listing_the_default_tests_in_another_order_is_the_default_plan(tmp_path):
    text = SWEEP + '[analysis]\nevidence = ["spearman", "extremes"]\nclaims = ["all"]\n'
    assert "analysis" not in load_spec(write_study(tmp_path, text)).resolved()


@pytest.mark.parametrize(
    "override", ["analysis.alpha=0.01", 'analysis.claims="chain"', "analysis.require=any"]
)
def test_another_plan_changes_the_hash(tmp_path, override):
    path = write_study(tmp_path, SWEEP)
    assert _hash(load_spec(path, overrides=[override])) != _hash(load_spec(path))


@pytest.mark.parametrize("path", sorted(ROOT.glob("studies/**/*.toml")), ids=lambda p: p.stem)
def test_a_study_files_stated_plan_leaves_its_hash_as_without_the_table(path):
    doc = tomllib.loads(path.read_text())
    doc.setdefault("name", path.stem)
    without = {k: v for k, v in doc.items() if k != "analysis"}
    assert _hash(build_spec(doc)) == _hash(build_spec(without))
    assert _hash(build_spec(doc, smoke=True)) == _hash(build_spec(without, smoke=True))


def test_set_overrides_the_plan_and_is_checked_like_the_file(tmp_path):
    path = write_study(tmp_path, SWEEP + DEFAULTS)
    assert load_spec(path, overrides=["analysis.alpha=0.01"]).plan().alpha == 0.01
    with pytest.raises(InputError) as caught:
        load_spec(path, overrides=["analysis.alpha=0.7"])
    assert caught.value.field == "analysis.alpha"


def test_the_smoke_table_may_change_the_plan_and_a_bad_value_there_names_it(tmp_path):
    path = write_study(tmp_path, SWEEP + "analysis.progress_quantile = 0.5\n")
    assert load_spec(path, smoke=True).plan().progress_quantile == 0.5
    assert load_spec(path).plan().progress_quantile == 1.0
    bad = write_study(tmp_path, SWEEP + "analysis.alpha = 2\n", filename="bad.toml")
    with pytest.raises(InputError) as caught:
        load_spec(bad)
    assert caught.value.field == "smoke.analysis.alpha"


@pytest.mark.parametrize("table", ["", '[analysis]\nclaims = "train.lr"\nalpha = 0.01\n'])
def test_study_json_records_the_plan_and_a_resume_reads_back_the_same_spec(tmp_path, table):
    study = load_spec(write_study(tmp_path, SWEEP + table, filename="s.toml"))
    sdir = StudyDir.of(str(tmp_path / "runs"), "s")
    assert not open_study_dir(sdir, study)[1]
    stored = json.loads((tmp_path / "runs" / "s" / "study.json").read_text())
    assert stored["plan"] == study.plan().as_dict()
    assert Plan.from_mapping(stored["plan"]) == study.plan()
    resumed = stored_spec(stored)  # what `gcnc resume` runs
    assert resumed.plan() == study.plan() and _hash(resumed) == stored["spec_hash"]
    assert open_study_dir(sdir, resumed)[1]


def test_study_json_of_a_study_without_a_table_holds_the_default_plan(tmp_path):
    info = study_info(load_spec(write_study(tmp_path, SWEEP)))
    assert info["plan"] == Plan().as_dict()
    assert "analysis" not in info["spec"]
