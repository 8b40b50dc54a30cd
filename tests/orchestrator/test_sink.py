"""Metrics rows, layers rows and trials.parquet against docs/schema.md; idempotent writes;
compaction."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from gcnc_testkit import raw_rows, read_rows

from orchestrator.book import TrialBook
from orchestrator.sink import RowContext, TrialSink, layer_table, row_table
from studyfiles import StudyDir
from studyfiles.schema import ALWAYS_PARAMS, LAYER_METRICS
from studyfiles.tables import read_table

SCHEMA_MD = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
MD_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp[ns, UTC]": pa.timestamp("ns", tz="UTC"),
}
PARAM_TYPES = {
    "train.lr": "double",
    "train.batch_size": "int64",
    "train.l2": "double",
    "train.gc_reg.alpha": "double",
    "train.seed": "int64",
}


def schema_table(title: str) -> list[tuple[str, str]]:
    """``(column, type)`` rows of the docs/schema.md table under the heading ``title``."""
    text = SCHEMA_MD.read_text()
    section = text.split(f"## `{title}`", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", section, flags=re.M)


def expand(rows: list[tuple[str, str]], shots: tuple[int, ...]) -> dict[str, str]:
    """The columns of a table, few-shot columns grouped by ``k`` (acc, then ci)."""
    out: dict[str, str] = {}
    per_k = [(name, typ) for name, typ in rows if "<k>" in name]
    for name, typ in rows:
        if name == "<dotted key>":
            out.update({k: "by value" for k in PARAM_TYPES})
        elif per_k and name == per_k[0][0]:
            for k in shots:
                out.update({n.replace("<k>", str(k)): t for n, t in per_k})
        elif "<k>" not in name:
            out[name] = typ
    return out


def ctx(**kw) -> RowContext:
    base = dict(
        study="s",
        spec_hash="h" * 16,
        code_version="gcnc test",
        param_types=dict(PARAM_TYPES),
        shots=(1, 5),
    )
    return RowContext(**(base | kw))


PARAMS = {
    "train.lr": 0.1,
    "train.batch_size": 64,
    "train.l2": 0.0,
    "train.gc_reg.alpha": 0.0,
    "train.seed": 3,
}


def test_a_row_has_the_schema_columns_in_order_with_their_types():
    row = row_table(ctx(), "t00001", PARAMS, {"epoch": 2, "step": 20, "train_loss": 0.5})
    expected = expand(schema_table("metrics/**.parquet"), (1, 5))
    assert row.schema.names == list(expected)
    for name, typ in expected.items():
        want = MD_TYPES.get(typ) or {"double": pa.float64(), "int64": pa.int64()}[PARAM_TYPES[name]]
        assert row.schema.field(name).type == want, name


def test_unmeasured_metrics_are_null_never_zero():
    row = row_table(
        ctx(),
        "t1",
        PARAMS,
        {"epoch": 0, "step": 0, "train_loss": 0.0, "gc": float("nan"), "diverged": False},
    )
    values = row.to_pylist()[0]
    assert values["train_loss"] == 0.0
    assert values["gc"] is None  # non-finite is not a measurement
    assert values["nc_cdnv"] is None and values["fewshot_acc_5shot"] is None
    assert all(values[k] == v for k, v in PARAMS.items())


def test_extra_metrics_a_trainable_reports_are_kept():
    row = row_table(ctx(), "t1", PARAMS, {"epoch": 1, "step": 1, "nc2_equiangular": 0.25})
    assert row.column("nc2_equiangular").to_pylist() == [0.25]


def test_trials_table_matches_the_schema(tmp_path):
    book = TrialBook(StudyDir.of(str(tmp_path), "s"), ctx(), total=2)
    book.declare("t00000", {"train": {"lr": 0.1}}, PARAMS)
    book.started("t00000")
    book.result("t00000", epoch=3, diverged=True)
    book.failed("t00000", "boom", retrying=False)
    table = book.table()
    expected = expand(schema_table("trials.parquet"), ())
    assert table.schema.names == list(expected)
    row = table.to_pylist()[0]
    assert (row["status"], row["diverged"], row["attempts"], row["error"], row["epochs_done"]) == (
        "error",
        True,
        1,
        "boom",
        3,
    )
    assert book.counts().pending == 1  # the second trial is not known yet


def test_trials_file_round_trips(tmp_path):
    sdir = StudyDir.of(str(tmp_path), "s")
    book = TrialBook(sdir, ctx(), total=1, min_interval_s=0.0)
    book.declare("t00000", {"a": 1}, PARAMS)
    book.started("t00000")
    assert book.flush()
    assert not book.flush()  # nothing changed
    again = TrialBook(sdir, ctx(), total=1)
    again.load()
    assert again.trials["t00000"].attempts == 1 and again.trials["t00000"].status == "running"
    assert again.trials["t00000"].config == {"a": 1}


@pytest.fixture
def sink(tmp_path) -> TrialSink:
    return TrialSink(StudyDir.of(str(tmp_path), "s"), ctx(), "t00007", PARAMS)


def test_rewriting_an_epoch_replaces_its_row(sink):
    sink.write({"epoch": 1, "step": 10, "train_loss": 1.0})
    sink.write({"epoch": 1, "step": 10, "train_loss": 0.5})
    folder = Path(sink.sdir.trial_folder("t00007"))
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=00001.parquet"]
    assert read_rows(sink.sdir.location)["train_loss"].tolist() == [0.5]


def test_compaction_merges_into_one_file_and_keeps_the_latest_rows(sink):
    for epoch in range(4):
        sink.write({"epoch": epoch, "step": epoch, "train_loss": float(epoch)})
    before = read_rows(sink.sdir.location)
    assert sink.compact() == 4
    folder = Path(sink.sdir.trial_folder("t00007"))
    assert [p.name for p in folder.iterdir()] == ["compacted.parquet"]
    pd.testing.assert_frame_equal(read_rows(sink.sdir.location), before)
    sink.write({"epoch": 2, "step": 2, "train_loss": 9.0})  # a replay after compaction
    assert read_rows(sink.sdir.location)["train_loss"].tolist() == [0.0, 1.0, 9.0, 3.0]
    assert sink.compact() == 4
    assert [p.name for p in folder.iterdir()] == ["compacted.parquet"]
    assert read_rows(sink.sdir.location)["train_loss"].tolist() == [0.0, 1.0, 9.0, 3.0]


def test_a_running_trial_rolls_its_per_epoch_files_up(tmp_path):
    sink = TrialSink(StudyDir.of(str(tmp_path), "s"), ctx(), "t00001", PARAMS, roll_every=4)
    for epoch in range(10):
        sink.write({"epoch": epoch, "step": epoch, "train_loss": float(epoch)})
    folder = Path(sink.sdir.trial_folder("t00001"))
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch=00008.parquet",
        "epoch=00009.parquet",
        "rolled.parquet",
    ]
    assert read_rows(sink.sdir.location)["train_loss"].tolist() == [float(e) for e in range(10)]
    assert sink.rows().num_rows == 10


def test_a_replay_after_a_roll_up_wins_and_is_rolled_up_in_turn(tmp_path):
    sdir = StudyDir.of(str(tmp_path), "s")
    first = TrialSink(sdir, ctx(), "t00001", PARAMS, roll_every=4)
    for epoch in range(6):
        first.write({"epoch": epoch, "step": epoch, "train_loss": 1.0})
    again = TrialSink(sdir, ctx(), "t00001", PARAMS, roll_every=4)  # restarted at epoch 1
    for epoch in range(2, 4):
        again.write({"epoch": epoch, "step": epoch, "train_loss": 2.0})
    assert read_rows(sdir.location)["train_loss"].tolist() == [1.0, 1.0, 2.0, 2.0, 1.0, 1.0]
    assert len(raw_rows(sdir.location)) == 8  # epochs 2 and 3: rolled up, and replayed
    for epoch in range(4, 6):
        again.write({"epoch": epoch, "step": epoch, "train_loss": 2.0})
    folder = Path(sdir.trial_folder("t00001"))
    assert [p.name for p in folder.iterdir()] == ["rolled.parquet"]
    assert read_rows(sdir.location)["train_loss"].tolist() == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert again.compact() == 6
    assert [p.name for p in folder.iterdir()] == ["compacted.parquet"]
    assert read_rows(sdir.location)["train_loss"].tolist() == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_a_finished_trial_is_recognised_only_with_the_same_params(sink, tmp_path):
    sink.write({"epoch": 0, "step": 0, "train_loss": 1.0})
    assert sink.finished_row() is None  # not compacted: not finished
    sink.write({"epoch": 1, "step": 5, "train_loss": 0.5})
    sink.compact()
    assert sink.finished_row()["epoch"] == 1
    other = TrialSink(sink.sdir, ctx(), "t00007", PARAMS | {"train.lr": 0.2})
    assert other.finished_row() is None and other.has_foreign_rows()
    other.clear()
    assert sink.rows() is None


def test_always_present_params_are_the_schema_s_first_four_and_the_seed():
    assert tuple(PARAM_TYPES) == ALWAYS_PARAMS


# ------------------------------------------------------------------ the layers table

LAYERS = [
    {"layer": 1, "layer_name": "block1", "layer_dim": 8, "gc": 0.5, "nc_cdnv": 2.0},
    {"layer": 2, "layer_name": "block2", "layer_dim": 16, "gc": 1.5, "nc_cdnv": float("nan")},
]


def evaluation(epoch: int, loss: float = 1.0, **layer) -> dict:
    """A trainable's row of ``epoch`` with its two layer rows (``layer`` updates both)."""
    return {"epoch": epoch, "step": 10 * epoch, "train_loss": loss,
            "layers": [r | layer for r in LAYERS]}  # fmt: skip


def test_layer_rows_have_the_schema_columns_in_order_with_their_types():
    table = layer_table(ctx(), "t00001", PARAMS, {"epoch": 2, "step": 20}, LAYERS)
    expected = expand(schema_table("layers/**.parquet"), (1, 5))
    assert table.schema.names == list(expected)
    for name, typ in expected.items():
        want = MD_TYPES.get(typ) or {"double": pa.float64(), "int64": pa.int64()}[PARAM_TYPES[name]]
        assert table.schema.field(name).type == want, name
    rows = table.to_pylist()
    assert [(r["layer"], r["layer_name"], r["layer_dim"]) for r in rows] == [
        (1, "block1", 8),
        (2, "block2", 16),
    ]
    assert rows[1]["nc_cdnv"] is None and rows[0]["geo_collapse"] is None  # never 0
    assert rows[0]["written_at"] == rows[1]["written_at"]
    assert {r["step"] for r in rows} == {20} and {r["train.lr"] for r in rows} == {0.1}


def test_the_trainable_s_layer_quantities_are_the_layers_table_s_columns():
    from trainables.evaluate import LAYER_QUANTITIES

    assert set(LAYER_QUANTITIES) <= set(LAYER_METRICS)
    assert next(iter(LAYER_METRICS)) == "layer_dim"


def test_an_evaluation_s_layer_rows_land_in_the_layers_table_before_its_row(sink, monkeypatch):
    written = []
    write_bytes = type(sink.sdir.storage).write_bytes
    monkeypatch.setattr(
        type(sink.sdir.storage),
        "write_bytes",
        lambda self, path, data: (written.append(path), write_bytes(self, path, data))[1],
    )
    sink.write(evaluation(0))
    assert [Path(p).relative_to(sink.sdir.location).parts[0] for p in written] == [
        "layers",
        "metrics",
    ]
    assert "layers" not in read_rows(sink.sdir.location).columns
    got = read_rows(sink.sdir.location, "layers")
    assert got[["epoch", "layer", "layer_name", "gc"]].values.tolist() == [
        [0, 1, "block1", 0.5],
        [0, 2, "block2", 1.5],
    ]
    assert (got["spec_hash"] == "h" * 16).all() and (got["train.seed"] == 3).all()


def test_a_study_without_layers_writes_no_layers_table(sink):
    sink.write({"epoch": 0, "step": 0, "train_loss": 1.0})
    sink.compact()
    assert not Path(sink.sdir.layers).exists()


def test_layer_rows_are_replaced_rolled_up_and_compacted_with_the_trial(tmp_path):
    sdir = StudyDir.of(str(tmp_path), "s")
    first = TrialSink(sdir, ctx(), "t00001", PARAMS, roll_every=4)
    for epoch in range(6):
        first.write(evaluation(epoch, gc=1.0))
    again = TrialSink(sdir, ctx(), "t00001", PARAMS, roll_every=4)  # restarted at epoch 2
    for epoch in range(3, 7):
        again.write(evaluation(epoch, gc=2.0))
    rows = read_rows(sdir.location, "layers")
    assert len(rows) == 7 * 2  # one per (epoch, layer)
    assert rows.groupby("epoch")["gc"].first().tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    table, bad = read_table(sdir, "layers")
    assert bad == {} and table.num_rows == 14
    assert table.select(["epoch", "layer", "gc"]).to_pandas().equals(rows[["epoch", "layer", "gc"]])
    assert again.compact() == 7
    for folder in (sdir.trial_folder("t00001"), sdir.trial_folder("t00001", table="layers")):
        assert [p.name for p in Path(folder).iterdir()] == ["compacted.parquet"]
    pd.testing.assert_frame_equal(read_rows(sdir.location, "layers"), rows)
    again.remove_unmerged()
    assert read_table(sdir, "layers") == (None, {})


def test_layer_rows_of_an_abandoned_trial_are_foreign_rows_and_cleared(sink):
    sink.write(evaluation(0))
    other = TrialSink(sink.sdir, ctx(), "t00007", PARAMS | {"train.lr": 0.2})
    assert other.has_foreign_rows()
    other.clear()
    assert read_table(sink.sdir, "layers") == (None, {})
