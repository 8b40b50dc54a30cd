"""Across depth: the layers table read beside the metrics, the claims at each layer in the
verdicts' family, the depth figures' data, and what the report and ``gcnc analyze`` show.

The synthetic studies plant an effect layer by layer: none at block1, the paper's trend at
block2, the reverse at block3; block4 is the embedding (its rows are the metrics').
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import (
    ResultsError,
    compute_results,
    format_tables,
    load_results,
    results_json,
    write_report,
)
from analysis import figures as F
from analysis.depth import verdicts_by_layer
from analysis.options import Options
from analysis.tables import depth_verdicts, family_line, headline
from analysis.verdicts import (
    INCONCLUSIVE,
    LAYER_COLUMNS,
    NOT_REPRODUCED,
    REPRODUCED,
    VERDICT_COLUMNS,
    claims_for,
    in_main_family,
    verdict_table,
)
from orchestrator import cli

BLOCKS = ("block1", "block2", "block3", "block4")
PLANTED = {"block1": INCONCLUSIVE, "block2": REPRODUCED, "block3": NOT_REPRODUCED}
SPEC = SyntheticSpec(
    name="depth",
    seeds=(0, 1, 2, 3, 4),
    layers=BLOCKS,
    layer_effects=(0.0, 1.0, -1.0),
)


@pytest.fixture(scope="module")
def layered_dir(tmp_path_factory) -> str:
    return write_synthetic_study(tmp_path_factory.mktemp("layered"), SPEC)


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory) -> str:
    """The same study without its layers table."""
    spec = dataclasses.replace(SPEC, name="plain", layers=(), layer_effects=())
    return write_synthetic_study(tmp_path_factory.mktemp("plain"), spec)


@pytest.fixture(scope="module")
def layered(layered_dir):
    study = load_results(layered_dir)
    return study, compute_results(study)


@pytest.fixture(scope="module")
def plain(plain_dir):
    study = load_results(plain_dir)
    return study, compute_results(study)


def _layer_rows(study_dir: str) -> pd.DataFrame:
    """The layers table as docs/schema.md tells a reader to read it, with pandas."""
    files = [
        os.path.join(d, f)
        for d, _, names in os.walk(os.path.join(study_dir, "layers"))
        for f in names
        if f.endswith(".parquet")
    ]
    raw = pd.concat([pq.read_table(f).to_pandas() for f in files])
    key = ["trial_id", "epoch", "layer"]
    latest = raw.sort_values("written_at", kind="stable").drop_duplicates(key, keep="last")
    return latest.sort_values(key).reset_index(drop=True)


def test_the_layers_table_reads_as_written_with_the_embedding_found(layered, layered_dir):
    study, _ = layered
    table = study.layers
    want = _layer_rows(layered_dir)
    assert len(table.rows) == len(want) > 0
    assert [(layer.name, layer.embedding) for layer in table.layers] == [
        ("block1", False), ("block2", False), ("block3", False), ("block4", True)
    ]  # fmt: skip
    assert [layer.name for layer in table.inner()] == ["block1", "block2", "block3"]
    assert table.quantities()[:3] == ["gc", "geo_collapse", "nc_cdnv"]
    assert set(table.rows["trial_status"]) == {"done", "running"}
    assert not [w for w in study.warnings if "layer" in w]


def test_a_study_without_a_layers_table_has_none_and_the_old_tables(plain):
    study, results = plain
    assert study.layers is None and results.depth_values is None
    assert list(results.verdicts.columns) == VERDICT_COLUMNS
    assert "depth" not in set(results.verdicts["group"])
    assert "depth" not in results_json(results)
    text = format_tables(study, results=results)
    assert "across depth" not in text.lower() and "of them across depth" not in family_line(results)


def test_the_claims_across_depth_come_out_as_planted_at_each_layer(layered):
    _, results = layered
    v = results.verdicts
    assert list(v.columns) == VERDICT_COLUMNS + LAYER_COLUMNS
    final = v[(v["at"] == "final epoch") & v["layer"].notna()]
    assert len(final) == 3 * 3  # GC, geometric collapse, NC at the three inner layers
    for name, planted in PLANTED.items():
        at_layer = final[final["layer_name"] == name]
        assert set(at_layer["verdict"]) == {planted}, (name, at_layer[["claim", "verdict"]])
        assert set(at_layer["group"]) == {"depth"}
        assert all(c.endswith(f" at {name}") for c in at_layer["claim"])
    assert set(final["layer"]) == {1, 2, 3}  # not the embedding: its claims are the metrics'


def test_the_claims_across_depth_join_the_family_and_leave_the_others_tests_as_they_were(
    layered, plain
):
    (_, with_layers), (_, without) = layered, plain
    v, w = with_layers.verdicts, without.verdicts
    n_layer_claims = int(v["layer"].notna().sum()) // 2  # each at both comparisons
    assert n_layer_claims == 9
    assert v["family"].max() == w["family"].max() + 2 * n_layer_claims == 22 + 18
    assert "(20 claims, 9 of them across depth, × 2 comparisons)" in family_line(with_layers)
    same = ["claim", "at", "n", "change_pct", "rho", "p_extremes", "p_spearman", "p"]
    on_metrics = v[v["layer"].isna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(on_metrics[same], w[same], check_dtype=False)
    assert (on_metrics["p_adj"] >= w["p_adj"]).all()  # a larger family, Holm


def test_each_layer_is_tested_on_its_values_at_the_embeddings_comparison_points(layered):
    study, results = layered
    v = results.verdicts
    row = v[(v["layer_name"] == "block2") & (v["y"] == "nc_cdnv") & (v["at"] == "final epoch")]
    rows = study.layers.rows
    final = rows[(rows["epoch"] == 10) & (rows["layer"] == 2) & (rows["trial_status"] == "done")]
    lo, hi = (final.loc[final["train.lr"] == x, "nc_cdnv"].to_numpy() for x in (0.005, 0.1))
    assert row["mean_from"].iloc[0] == pytest.approx(np.exp(np.log(lo).mean()))
    assert row["mean_to"].iloc[0] == pytest.approx(np.exp(np.log(hi).mean()))
    matched = v[(v["at"] != "final epoch") & v["layer"].notna()]
    assert set(matched["at"]) == set(v.loc[v["layer"].isna() & (v["at"] != "final epoch"), "at"])


def test_the_embeddings_values_at_matched_progress_are_the_metrics(layered):
    from analysis import depth

    study, _ = layered
    options = Options.from_plan(study.plan)
    point = depth.compared(study, options=options)["matched"]
    from analysis import aggregate

    matched, level = aggregate.matched_progress(study, ["nc_cdnv", "gc"], by="train_loss")
    assert point.level == level
    embedding = point.layer(4).set_index("trial_id")
    for q in ("nc_cdnv", "gc"):
        want = matched.set_index("trial_id")[q]
        np.testing.assert_allclose(embedding[q].reindex(want.index), want)


def test_a_plan_leaves_out_the_claims_across_depth_or_keeps_them_for_its_mechanisms(layered):
    study, _ = layered
    options = Options.from_plan(study.plan)
    without = claims_for(study, dataclasses.replace(options, claims=("train.lr", "chain")))
    assert not any(c.layer for c in without)
    lr_only = claims_for(study, dataclasses.replace(options, claims=("train.lr", "depth")))
    assert {c.group for c in lr_only} == {"train.lr", "depth"} and len(lr_only) == 6 + 9
    table = verdict_table(study, options=dataclasses.replace(options, claims=("chain",)))
    assert list(table.columns) == VERDICT_COLUMNS  # no claim across depth: the old columns


def test_the_headline_groups_the_claims_across_depth_by_mechanism(layered):
    _, results = layered
    head = headline(results)
    depth_rows = head[head["group"] == "lr across depth"]
    assert len(depth_rows) == 9
    assert depth_rows["claim"].iloc[0] == "↑ lr ⇒ lower GC (raw) at block1"


def test_the_verdicts_per_layer_set_each_claim_beside_its_embeddings(layered):
    _, results = layered
    table = depth_verdicts(results)
    assert list(table.columns) == [
        "claim",
        "at",
        "block1",
        "block2",
        "block3",
        "block4 (embedding)",
    ]
    assert len(table) == 3 * 2
    row = table[(table["claim"] == "↑ lr ⇒ lower NC (CDNV)") & (table["at"] == "final epoch")]
    assert row["block2"].iloc[0].startswith(f"{REPRODUCED} (")
    assert row["block3"].iloc[0].startswith(f"{NOT_REPRODUCED} (")
    assert row["block4 (embedding)"].iloc[0].startswith(f"{REPRODUCED} (")
    v = results.verdicts
    assert verdicts_by_layer(v[in_main_family(v)], None).empty


def test_layers_without_the_embedding_are_all_tested_beside_the_metrics_claims(tmp_path):
    spec = dataclasses.replace(
        SPEC,
        seeds=(0, 1, 2),
        layers=("block2", "block3"),
        layer_embedding=False,
        layer_effects=(1, 1),
    )
    study = load_results(write_synthetic_study(tmp_path, spec))
    assert study.layers.embedding() is None and len(study.layers.inner()) == 2
    results = compute_results(study)
    assert list(depth_verdicts(results).columns) == ["claim", "at", "block2", "block3", "embedding"]


def test_trials_with_layer_rows_missing_are_named_and_left_out_where_rows_are(tmp_path):
    # and a trial that diverged, whose evaluation at the divergence has no layer rows
    spec = dataclasses.replace(SPEC, layers_until={0: -1, 2: 4}, diverged=1)
    study = load_results(write_synthetic_study(tmp_path, spec))
    assert study.layers is not None  # read when first asked for, its warnings with it
    (warning,) = [w for w in study.warnings if "layer rows" in w]
    assert "2 of 15 trials" in warning and "t00000: none" in warning
    assert "t00002: to epoch 4 of 10" in warning
    v = compute_results(study).verdicts
    final = v[(v["at"] == "final epoch")]
    assert final.loc[final["layer"].isna(), "n"].max() == 13  # 14 finished, 1 diverged
    assert final.loc[final["layer"].notna(), "n"].max() == 11  # and 2 without layer rows


def test_an_unreadable_layers_file_is_refused_unless_missing_rows_are_allowed(tmp_path):
    study_dir = write_synthetic_study(tmp_path, SPEC)
    folder = os.path.join(study_dir, "layers")
    part = next(f for f in sorted(os.listdir(folder)) if f.startswith("part-"))
    with open(os.path.join(folder, part), "wb") as fh:
        fh.write(b"not parquet")
    with pytest.raises(ResultsError, match="unreadable layers files"):
        compute_results(load_results(study_dir))
    study = load_results(study_dir, allow_missing=True)
    compute_results(study)
    assert any("unreadable layers files skipped" in w and part in w for w in study.warnings)


def test_depth_info_has_each_measure_per_layer_one_line_per_value(layered, layered_dir):
    study, _ = layered
    info = F._get_depth_info(study, "train.lr")
    assert info.metrics == study.layers.quantities()
    assert {(line.value, line.metric) for line in info.lines} == {
        (v, m) for v in (0.005, 0.02, 0.1) for m in info.metrics
    }
    assert info.ticks == [(1, "block1"), (2, "block2"), (3, "block3"), (4, "block4 (embedding)")]
    line = next(li for li in info.lines if li.value == 0.1 and li.metric == "geo_collapse")
    np.testing.assert_array_equal(line.x, [1, 2, 3, 4])
    rows = _layer_rows(layered_dir)
    finished = rows[(rows["epoch"] == 10) & (rows["train.lr"] == 0.1)]
    want = finished.groupby("layer")["geo_collapse"].apply(lambda v: np.exp(np.log(v).mean()))
    np.testing.assert_allclose(line.mean, want.to_numpy())
    assert (line.low < line.mean).all() and (line.mean < line.high).all()
    assert info.title.endswith("at the final epoch")


def test_depth_info_at_matched_progress_reads_each_trial_at_the_matched_level(layered):
    study, results = layered
    info = F._get_depth_info(study, "train.lr", at="matched")
    at = results.verdicts.loc[results.verdicts["at"] != "final epoch", "at"].iloc[0]
    assert info.title.endswith(f"at matched progress ({at})")
    line = next(li for li in info.lines if li.value == 0.02 and li.metric == "nc_cdnv")
    v = results.verdicts
    embedding = v[(v["at"] == at) & (v["claim"] == "↑ lr ⇒ lower NC (CDNV)")]
    assert line.n[-1] == 5 and embedding["n"].iloc[0] == 14
    fig = F.plot_depth(info)
    assert len(fig.data) == 2 * len(info.lines) and fig.layout.title.text
    assert list(fig.layout.xaxis.ticktext) == [name for _, name in info.ticks]
    assert fig.layout.yaxis.type == "log"  # GC, a positive quantity


def test_depth_info_of_a_study_without_layers_is_not_measured(plain):
    study, _ = plain
    with pytest.raises(F.NotMeasured, match="no layers"):
        F._get_depth_info(study, "train.lr")


def test_the_report_shows_the_depth_figures_and_verdicts_only_where_layers_were_measured(
    layered_dir, plain_dir, tmp_path
):
    with open(write_report(layered_dir, output=str(tmp_path / "l.html")), encoding="utf-8") as fh:
        page = fh.read()
    for at in ("final", "matched"):
        assert f'id="fig-depth_train.lr_{at}"' in page
    assert "Across depth (primary)" in page and "block4 (embedding)" in page
    with open(write_report(plain_dir, output=str(tmp_path / "p.html")), encoding="utf-8") as fh:
        page = fh.read()
    assert "fig-depth" not in page and "Across depth" not in page


def test_gcnc_analyze_prints_and_writes_the_verdicts_across_depth(layered_dir, tmp_path, capsys):
    out = tmp_path / "v.json"
    assert cli.main(["analyze", layered_dir, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Verdicts across depth, per layer (primary)" in text
    assert "Values across depth" in text and "lr across depth" in text
    data = json.loads(out.read_text())
    assert [layer["name"] for layer in data["depth"]["layers"]] == list(BLOCKS)
    assert len(data["depth"]["verdicts"]) == 6
    layered_rows = [r for r in data["verdicts"] if r["layer"] is not None]
    assert len(layered_rows) == 18 and {r["group"] for r in layered_rows} == {"depth"}
    values = pd.DataFrame(data["depth"]["values"])
    assert set(values["at"]) == {"final", "matched"} and set(values["layer"]) == {1, 2, 3, 4}
