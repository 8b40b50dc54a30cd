"""One schema entry per metric: a metric declared there reaches the writer, the search and
the analysis, with no other file touched."""

from __future__ import annotations

import pyarrow as pa
import pytest

import analysis
from orchestrator.sink import RowContext, TrialSink, row_table
from orchestrator.studyfile import build_spec
from studyfiles import InputError, StudyDir, schema
from studyfiles.schema import ALWAYS_PARAMS, Metric
from studyfiles.tables import to_bytes

PARAMS = {"train.lr": 0.1, "train.batch_size": 64, "train.l2": 0.0, "train.gc_reg.alpha": 0.0,
          "train.seed": 0}  # fmt: skip
TYPES = {"train.lr": "double", "train.batch_size": "int64", "train.l2": "double",
         "train.gc_reg.alpha": "double", "train.seed": "int64"}  # fmt: skip


@pytest.fixture
def new_metric(monkeypatch):
    """``nc5``, a metric the project does not have, declared in the schema alone."""
    monkeypatch.setitem(schema.METRICS, "nc5", Metric("double", "NC5 (made up)"))
    return "nc5"


def _search(metric: str) -> dict:
    return {
        "name": "s",
        "trainable": "gcnc",
        "search": {"metric": metric, "mode": "min", "budget": 2,
                   "space": {"train.lr": {"loguniform": [0.001, 0.1]}}},
    }  # fmt: skip


def test_a_metric_declared_in_the_schema_reaches_writer_search_and_analysis(tmp_path, new_metric):
    with pytest.raises(InputError, match="unknown metric 'nc6'"):
        build_spec(_search("nc6"))
    assert build_spec(_search(new_metric)).search.metric == new_metric
    assert new_metric in schema.searchable_names()

    sdir = StudyDir.of(str(tmp_path), "s")
    sdir.storage.write_bytes(sdir.study_json, b'{"name": "s", "sweep_params": ["train.lr"]}')
    ctx = RowContext("s", "hash", "test", dict(TYPES), shots=(5,))
    for trial, lr in (("t00000", 0.1), ("t00001", 0.2)):
        sink = TrialSink(sdir, ctx, trial, {**PARAMS, "train.lr": lr})
        for epoch in (0, 1):
            sink.write({"epoch": epoch, "step": epoch, "train_loss": 1.0, new_metric: lr + epoch})
        sink.compact()
    (row,) = sink.rows().slice(0, 1).to_pylist()[:1]
    assert sink.rows().schema.field(new_metric).type == pa.float64()

    study = analysis.load_results(sdir.location)
    assert study.measured(new_metric)
    assert study.metrics.groupby("trial_id")[new_metric].last().tolist() == [1.1, 1.2]
    assert schema.label(new_metric) == "NC5 (made up)"
    assert row[new_metric] == 0.2


def test_a_file_whose_metric_has_another_type_is_refused_by_the_analysis(tmp_path, new_metric):
    sdir = StudyDir.of(str(tmp_path), "s")
    sdir.storage.write_bytes(sdir.study_json, b'{"name": "s"}')
    ctx = RowContext("s", "hash", "test", dict(TYPES), shots=())
    row = row_table(ctx, "t00000", PARAMS, {"epoch": 0, "step": 0})
    row = row.set_column(row.schema.get_field_index(new_metric), new_metric, pa.array(["high"]))
    sdir.storage.write_bytes(sdir.epoch_file("t00000", 0), to_bytes(row))  # a string, not a double
    with pytest.raises(analysis.ResultsError, match=r"'nc5' has type .*string.*, expected double"):
        analysis.load_results(sdir.location)


def test_every_fixed_column_has_one_type_of_the_vocabulary():
    fixed = schema.fixed_columns()
    assert set(fixed.values()) <= set(schema.KINDS)
    assert list(fixed)[: len(schema.KEY_COLUMNS)] == list(schema.KEY_COLUMNS)
    assert schema.kind_of("fewshot_acc_5shot") == "double" and schema.kind_of("train.lr") is None
    assert set(ALWAYS_PARAMS) == set(TYPES)
