"""Figure data functions (tested against the metrics) and their thin drawing functions."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import aggregate, load_results
from analysis import figures as F
from analysis.correlate import study_correlations


def test_sweep_info_has_one_line_per_value_and_metric(lr_study):
    info = F._get_sweep_info(lr_study, "train.lr")
    assert info.metrics == ["gc", "geo_collapse", "nc_cdnv"]
    assert {(line.value, line.metric) for line in info.lines} == {
        (v, m) for v in (0.005, 0.02, 0.1) for m in info.metrics
    }
    line = next(li for li in info.lines if li.value == 0.02 and li.metric == "nc_cdnv")
    m = lr_study.metrics
    want = m[(m["train.lr"] == 0.02) & (m["epoch"] == 3)]["nc_cdnv"].to_numpy(float)
    assert line.mean[line.x == 3][0] == pytest.approx(np.exp(np.log(want).mean()))  # geo-mean
    assert line.low[3] < line.mean[3] < line.high[3]


def test_std_band_of_a_positive_quantity_is_a_factor_around_its_geometric_mean(lr_study):
    info = F._get_sweep_info(lr_study, "train.lr", band="std")
    line = info.lines[0]
    assert line.metric == "gc"
    np.testing.assert_allclose(line.high / line.mean, line.mean / line.low)
    assert (line.low > 0).all()
    assert info.band == "± 1 std"


def test_a_partly_measured_sweep_leaves_out_the_missing_metric_with_a_note(lr_study):
    info = F._get_sweep_info(lr_study, "train.lr", metrics=("gc", "gc_exact"))
    assert info.metrics == ["gc"]
    assert any("GC (exact)" in n for n in info.notes)


def test_progress_aligned_sweep_runs_along_the_loss_grid(lr_study):
    info = F._get_sweep_info(lr_study, "train.lr", align="train_loss")
    fig = F.plot_sweep(info)
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.autorange == "reversed"
    slow = next(li for li in info.lines if li.value == 0.005 and li.metric == "gc")
    fast = next(li for li in info.lines if li.value == 0.1 and li.metric == "gc")
    assert fast.x.min() < slow.x.min()  # the fast trials reach lower loss


def test_transfer_info_uses_source_gc_target_nc_and_five_shot(lr_study):
    info = F._get_transfer_info(lr_study, "train.lr")
    assert info.metrics == ["gc", "target_nc_cdnv", "fewshot_acc_5shot"]


def test_figures_for_unmeasured_metrics_raise_not_measured(source_only_dir):
    study = load_results(source_only_dir)
    with pytest.raises(F.NotMeasured, match="target_nc_cdnv"):
        F._get_transfer_info(study, "train.batch_size")
    with pytest.raises(F.NotMeasured, match="gc_exact"):
        F._get_robustness_info(study)
    with pytest.raises(F.NotMeasured, match="nc_bound"):
        F._get_bound_info(study)


def test_robustness_info_pairs_estimates_with_exact_gc(tmp_path):
    spec = SyntheticSpec(probes=(1, 16, 256), lrs=(0.01,), seeds=(0, 1, 2, 3), epochs=6)
    study = load_results(write_synthetic_study(tmp_path / "r", spec))
    info = F._get_robustness_info(study)
    assert list(info.points) == [f"projection(dist=sphere,probes={p})" for p in (1, 16, 256)]
    errors = info.summary["median_abs_rel_error"].to_numpy()
    assert errors[0] > errors[1] > errors[2]  # more probes, closer to the exact GC
    assert sum(len(p) for p in info.points.values()) == study.metrics["gc_exact"].notna().sum()


def test_estimates_without_a_label_are_grouped_as_unlabelled(tmp_path):
    spec = SyntheticSpec(probes=(4,), lrs=(0.01,), seeds=(0, 1), epochs=3, running=0)
    root = write_synthetic_study(tmp_path / "r", spec)
    path = os.path.join(root, "metrics", "trial_id=t00000", "compacted.parquet")
    table = pq.read_table(path)
    i = table.schema.get_field_index("gc_estimator")
    pq.write_table(table.set_column(i, "gc_estimator", pa.nulls(table.num_rows, pa.string())), path)
    info = F._get_robustness_info(load_results(root))
    assert sorted(info.points) == ["projection(dist=sphere,probes=4)", "unlabelled"]


def test_bound_info_counts_where_the_bound_holds(lr_study):
    info = F._get_bound_info(lr_study, param="train.lr")
    m = lr_study.metrics.dropna(subset=["nc_bound", "ncc_test_error"])
    assert info.n == len(m)
    assert info.holds == pytest.approx(np.mean(m["nc_bound"] >= m["ncc_test_error"]))
    assert info.non_vacuous == pytest.approx(np.mean(m["nc_bound"] < 1))
    assert sorted(info.stats) == [0.005, 0.02, 0.1]


def test_bound_bands_respect_each_quantitys_scale(lr_study):
    info = F._get_bound_info(lr_study, param="train.lr")
    m = lr_study.metrics.dropna(subset=["nc_bound", "ncc_test_error"])
    want = m[(m["train.lr"] == 0.02) & (m["epoch"] == 3)]
    part = info.stats[0.02].set_index(["metric", "epoch"])
    bound, error = part.loc[("nc_bound", 3)], part.loc[("ncc_test_error", 3)]
    logs = np.log(want["nc_bound"])
    assert bound["mean"] == pytest.approx(np.exp(logs.mean()))  # geometric mean
    half = np.log(bound["ci_high"]) - np.log(bound["mean"])
    assert np.log(bound["mean"]) - np.log(bound["ci_low"]) == pytest.approx(half)
    assert half == pytest.approx(
        stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    )
    assert error["mean"] == pytest.approx(want["ncc_test_error"].mean())
    every = pd.concat(info.stats.values())
    err = every[every["metric"] == "ncc_test_error"].dropna(subset=["ci_low"])
    assert len(err) and (err["ci_low"] >= 0).all() and (err["ci_high"] <= 1).all()
    assert (every[every["metric"] == "nc_bound"]["ci_low"].dropna() > 0).all()


def test_bound_figure_draws_kappa_beside_the_bound_and_says_what_the_bound_is(lr_study):
    assert "poincare_kappa" not in F._get_bound_info(lr_study).metrics
    m = lr_study.metrics
    study = dataclasses.replace(lr_study, metrics=m.assign(poincare_kappa=2.0 + m["epoch"]))
    info = F._get_bound_info(study)
    assert info.metrics == ["nc_bound", "ncc_test_error", "poincare_kappa"]
    fig = F.plot_bound(info)
    assert any(t.xaxis == "x2" and t.name and "κ̂" in t.name for t in fig.data)
    title = fig.layout.title.text
    assert "train-side" in title and "SPEC §3" in title
    assert f"bound ≥ error in {info.holds:.0%}" in title and "bound < 1 in" in title


def test_scatter_matrix_hover_shows_each_trials_config(lr_study):
    info = F._get_scatter_matrix_info(lr_study)
    finals = aggregate.final_rows(lr_study)
    assert len(info.hover) == len(finals) - finals["diverged"].sum()
    assert "train.lr = 0.005" in info.hover[0]
    assert "train.gc_reg.alpha = 0.0" in info.hover[0]  # from the config JSON
    assert "train.seed = 0" in info.hover[0]
    assert info.color_label == "log10 lr"
    assert info.dimensions[:3] == ["gc", "geo_collapse", "nc_cdnv"]


def test_heatmap_is_the_symmetric_matrix_of_the_table(lr_study):
    table = study_correlations(lr_study)
    info = F._get_correlation_heatmap_info(lr_study, table=table)
    assert info.names[0] == "train.lr"
    np.testing.assert_allclose(info.r, info.r.T, equal_nan=True)
    assert np.all(np.diag(info.r) == 1.0)
    i, j = info.names.index("gc"), info.names.index("nc_cdnv")
    want = table[(table.x == "gc") & (table.y == "nc_cdnv") & (table.method == "spearman")]["r"]
    assert info.r[i, j] == pytest.approx(want.iloc[0])


def test_drawing_thins_lines_but_not_statistics(lr_study):
    info = F._get_sweep_info(lr_study, "train.lr")
    fig = F.plot_sweep(info, max_points=4)
    means = [t for t in fig.data if t.mode == "lines" and t.fill is None]
    assert len(means) == len(info.lines)
    assert all(len(t.x) <= 4 for t in means)
    assert len(info.lines[0].x) == 11


@pytest.mark.parametrize("name", ["sweep", "transfer", "bound", "scatter", "heatmap"])
def test_every_plot_function_draws_traces(lr_study, name):
    draw = {
        "sweep": lambda: F.plot_sweep(F._get_sweep_info(lr_study, "train.lr")),
        "transfer": lambda: F.plot_transfer(F._get_transfer_info(lr_study, "train.lr")),
        "bound": lambda: F.plot_bound(F._get_bound_info(lr_study)),
        "scatter": lambda: F.plot_scatter_matrix(F._get_scatter_matrix_info(lr_study)),
        "heatmap": lambda: F.plot_correlation_heatmap(F._get_correlation_heatmap_info(lr_study)),
    }
    fig = draw[name]()
    assert len(fig.data) > 0 and fig.layout.title.text
