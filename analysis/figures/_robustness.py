"""GC estimates against the exact GC on the same samples (SPEC 2.2, §4 E6)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures._base import measured, thin, value_colors
from analysis.load import StudyResults


@dataclass(frozen=True)
class RobustnessInfo:
    """Per estimator: every (exact, estimate) pair and a summary of their agreement."""

    points: dict[str, pd.DataFrame]  # estimator -> trial_id, epoch, gc_exact, gc
    summary: pd.DataFrame  # estimator, n, median_abs_rel_error, p90_abs_rel_error, mean_ratio


def _get_robustness_info(study: StudyResults) -> RobustnessInfo:
    """Rows holding both ``gc`` and ``gc_exact``, grouped by ``gc_estimator``."""
    measured(study, ["gc", "gc_exact"], figure="robustness figure", need=2)
    cols = ["trial_id", "epoch", "gc_estimator", "gc_exact", "gc"]
    rows = study.metrics[cols].dropna(subset=["gc", "gc_exact"])
    labels = rows["gc_estimator"].astype(object)
    rows = rows.assign(gc_estimator=labels.where(labels.notna(), "unlabelled"))
    points, summary = {}, []
    for name, part in sorted(
        rows.groupby("gc_estimator", observed=True), key=lambda kv: _natural(kv[0])
    ):
        points[str(name)] = part.drop(columns="gc_estimator").reset_index(drop=True)
        summary.append(_agreement(str(name), part))
    columns = ["estimator", "n", "median_abs_rel_error", "p90_abs_rel_error", "mean_ratio"]
    return RobustnessInfo(points, pd.DataFrame(summary, columns=columns))


def _natural(text: str) -> list:
    """Sort key that puts ``probes=8`` before ``probes=64``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def _agreement(name: str, part: pd.DataFrame) -> list:
    exact, est = part["gc_exact"].to_numpy(float), part["gc"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = est / exact
    rel = np.abs(ratio[np.isfinite(ratio)] - 1.0)
    if len(rel) == 0:
        return [name, len(part), np.nan, np.nan, np.nan]
    return [
        name,
        len(part),
        np.median(rel),
        np.quantile(rel, 0.9),
        float(np.mean(ratio[np.isfinite(ratio)])),
    ]


def plot_robustness(info: RobustnessInfo, *, max_points: int = 2000) -> go.Figure:
    """Estimate vs exact GC on log axes, one colour per estimator, with the line y = x."""
    fig = go.Figure()
    colors = value_colors(list(info.points))
    everything = [p for part in info.points.values() for p in (part["gc_exact"], part["gc"])]
    values = np.concatenate([v.to_numpy(float) for v in everything]) if everything else np.ones(1)
    values = values[values > 0]
    lo, hi = (values.min(), values.max()) if len(values) else (1e-3, 1.0)
    fig.add_trace(
        go.Scatter(
            x=[lo, hi],
            y=[lo, hi],
            mode="lines",
            name="estimate = exact",
            line={"color": "grey", "dash": "dash"},
        )
    )
    for name, part in info.points.items():
        keep = thin(len(part), max_points)
        sub = part.iloc[keep]
        fig.add_trace(
            go.Scatter(
                x=sub["gc_exact"],
                y=sub["gc"],
                mode="markers",
                name=name,
                marker={"color": colors[name], "size": 5, "opacity": 0.7},
                text=[f"{t} epoch {e}" for t, e in zip(sub["trial_id"], sub["epoch"], strict=True)],
                hovertemplate="%{text}<br>exact=%{x:.4g}<br>estimate=%{y:.4g}<extra>"
                + name
                + "</extra>",
            )
        )
    fig.update_xaxes(type="log", title_text="exact GC")
    fig.update_yaxes(type="log", title_text="estimated GC")
    fig.update_layout(title="GC estimates vs exact GC", height=480, template="plotly_white")
    return fig
