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


def _with_values(study, lr: float, epoch: int, **columns: list[float]):
    """``study`` with the trials at ``lr`` given ``columns``' values at ``epoch``."""
    m = study.metrics.copy()
    at = (m["train.lr"] == lr) & (m["epoch"] == epoch)
    for name, values in columns.items():
        m.loc[at, name] = values
    return dataclasses.replace(study, metrics=m)


def _line(info, value, metric):
    return next(li for li in info.lines if li.value == value and li.metric == metric)


def test_std_band_of_an_accuracy_stays_within_0_and_1(lr_study):
    acc = np.array([1.0, 1.0, 1.0, 0.6])  # mean 0.9, std 0.2: the band would reach 1.1
    study = _with_values(lr_study, 0.02, 3, fewshot_acc_5shot=acc)
    line = _line(F._get_transfer_info(study, "train.lr", band="std"), 0.02, "fewshot_acc_5shot")
    at = line.x == 3
    assert line.mean[at][0] == pytest.approx(0.9)
    assert line.high[at][0] == 1.0 and line.low[at][0] == pytest.approx(0.9 - acc.std(ddof=1))


def test_bands_of_a_positive_quantity_holding_a_zero_stay_above_0(lr_study):
    gc = np.array([0.0, 0.5, 20.0, 24.0])  # mean 11.1, std 12.7
    study = _with_values(lr_study, 0.02, 3, gc=gc)
    for band in ("ci", "std"):
        info = F._get_sweep_info(study, "train.lr", band=band)
        line = _line(info, 0.02, "gc")
        at = line.x == 3
        assert line.mean[at][0] == pytest.approx(gc.mean())  # the mean, as the note says
        assert line.low[at][0] == 0.0 and (line.low > 0).sum() == len(line.x) - 1
        assert any("GC (raw): the mean, not the geometric one" in n for n in info.notes)
    half = stats.t.ppf(0.975, 3) * stats.sem(gc)
    assert line.high[at][0] == pytest.approx(gc.mean() + gc.std(ddof=1))  # std band
    ci = _line(F._get_sweep_info(study, "train.lr"), 0.02, "gc")
    assert ci.high[at][0] == pytest.approx(gc.mean() + half)


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


def test_bound_figure_checks_each_bound_against_its_error_and_counts_what_bands_leave_out(
    lr_study,
):
    m = lr_study.metrics
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.3, 0.9, len(m))
    geocol = (1.3 * m["nc_bound"]).to_numpy(float, na_value=np.nan, copy=True)
    measured_rows = np.flatnonzero(~np.isnan(geocol))
    geocol[measured_rows[:2]], geocol[measured_rows[2]] = 0.0, np.inf  # no log: left out
    study = dataclasses.replace(
        lr_study,
        metrics=m.assign(
            fewshot_acc_5shot=acc,
            fewshot_nc_bound=(1 - acc) * rng.choice([0.5, 2.0], len(m)),  # holds about half
            geocol_bound=geocol,
            poincare_kappa=2.0 + m["epoch"],
        ),
    )
    info = F._get_bound_info(study, param="train.lr")
    assert info.metrics == [
        *("nc_bound", "ncc_test_error", "geocol_bound"),
        *("fewshot_nc_bound", "fewshot_error_5shot", "poincare_kappa"),
    ]
    s = study.metrics
    for check, bound, error in zip(
        info.checks,
        (s["nc_bound"], s["geocol_bound"], s["fewshot_nc_bound"]),
        (s["ncc_test_error"], s["ncc_test_error"], 1 - s["fewshot_acc_5shot"]),
        strict=True,
    ):
        both = bound.notna() & error.notna()
        assert check.n == both.sum()
        assert check.holds == pytest.approx(np.mean(bound[both] >= error[both]))
        assert check.non_vacuous == pytest.approx(np.mean(bound[both] < 1))
    assert 0.3 < info.checks[2].holds < 0.7  # the few-shot bound fails about half the time
    assert info.left_out == {
        "nc_bound": 0, "geocol_bound": 3, "fewshot_nc_bound": 0, "poincare_kappa": 0,
    }  # fmt: skip
    at = (s["train.lr"] == 0.02) & (s["epoch"] == 3)
    part = info.stats[0.02].set_index(["metric", "epoch"])
    few = part.loc[("fewshot_error_5shot", 3)]
    assert few["mean"] == pytest.approx(1 - s.loc[at, "fewshot_acc_5shot"].mean())
    assert 0 <= few["ci_low"] <= few["mean"] <= few["ci_high"] <= 1
    kept = s.loc[at, "geocol_bound"].to_numpy(float)
    kept = kept[np.isfinite(kept) & (kept > 0)]
    assert part.loc[("geocol_bound", 3), "mean"] == pytest.approx(np.exp(np.log(kept).mean()))

    fig = F.plot_bound(info)
    assert any(t.xaxis == "x2" and t.name and "5-shot error" in t.name for t in fig.data)
    assert any(t.xaxis == "x3" and t.name and "κ̂" in t.name for t in fig.data)
    title = fig.layout.title.text
    nc, geo, few_check = info.checks
    assert f"NC bound ≥ error in {nc.holds:.0%}" in title
    assert f"GeoCol bound ≥ error in {geo.holds:.0%}" in title
    assert f"few-shot bound ≥ 5-shot error in {few_check.holds:.0%}" in title
    assert "16(k−1)(1+1/n)" in title and "left out of the bands (no log): geocol_bound 3" in title


def test_a_sweep_figure_says_which_curves_end_early(tmp_path):
    from synthetic_study import SyntheticSpec, write_synthetic_study

    from analysis import load_results
    from analysis.figures._curves import _get_sweep_info

    spec = SyntheticSpec(name="asha-grid", stopped={0: 4, 1: 3}, running=1)
    study = load_results(write_synthetic_study(tmp_path / "s", spec))
    info = _get_sweep_info(study, "train.lr", metrics=["gc"])
    note = next(n for n in info.notes if "drawn up to where they stopped" in n)
    assert "2 stopped early by the scheduler" in note and "1 still running" in note
