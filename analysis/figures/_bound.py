"""The reconstructed NC bound against the NCC test error over training (SPEC 3, §4 E7)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from analysis import aggregate
from analysis.figures._base import band, format_value, measured, thin, value_colors
from analysis.load import StudyResults
from analysis.options import Options


@dataclass(frozen=True)
class BoundInfo:
    """Mean and band of ``nc_bound`` and ``ncc_test_error`` per group, plus how often it holds."""

    param: str | None
    stats: dict  # group value -> summarize() frame for both metrics, by epoch
    holds: float  # fraction of evaluations with bound >= error
    non_vacuous: float  # fraction of evaluations with bound < 1
    n: int


def _get_bound_info(
    study: StudyResults, *, param: str | None = None, options: Options | None = None
) -> BoundInfo:
    """Bound and error by epoch across seeds, per value of ``param`` (all trials if None)."""
    options = options or Options()
    measured(study, ["nc_bound", "ncc_test_error"], figure="bound figure", need=2)
    frame = study.metrics.dropna(subset=["nc_bound", "ncc_test_error"])
    group = frame[param] if param else np.zeros(len(frame))
    data = frame.assign(group=np.asarray(group))
    stats = aggregate.summarize(
        data, ["group", "epoch"], ["nc_bound", "ncc_test_error"], confidence=options.confidence
    )
    per_group = {g: part for g, part in stats.groupby("group", sort=True)}
    bound, error = frame["nc_bound"].to_numpy(float), frame["ncc_test_error"].to_numpy(float)
    holds = float(np.mean(bound >= error)) if len(frame) else float("nan")
    non_vacuous = float(np.mean(bound < 1.0)) if len(frame) else float("nan")
    return BoundInfo(param, per_group, holds, non_vacuous, len(frame))


def plot_bound(info: BoundInfo, *, max_points: int = 2000) -> go.Figure:
    """Bound (dashed) and NCC test error (solid) vs epoch, a band across seeds for each."""
    fig = go.Figure()
    colors = value_colors(list(info.stats))
    for value, part in info.stats.items():
        name = format_value(info.param, value)
        for metric, dash, label in (
            ("nc_bound", "dash", "bound"),
            ("ncc_test_error", "solid", "NCC test error"),
        ):
            sub = part[(part["metric"] == metric) & (part["n"] > 0)].sort_values("epoch")
            sub = sub.iloc[thin(len(sub), max_points)]
            group = f"{name} {label}"
            fig.add_trace(
                band(sub["epoch"], sub["ci_low"], sub["ci_high"], color=colors[value], group=group)
            )
            fig.add_trace(
                go.Scatter(
                    x=sub["epoch"],
                    y=sub["mean"],
                    mode="lines",
                    name=f"{label} ({name})",
                    legendgroup=group,
                    line={"color": colors[value], "dash": dash},
                )
            )
    subtitle = (
        f"bound ≥ error in {info.holds:.0%} and bound < 1 in {info.non_vacuous:.0%} "
        f"of {info.n} evaluations"
    )
    fig.add_hline(y=1.0, line={"color": "grey", "width": 1, "dash": "dot"})
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="error / bound")
    fig.update_layout(
        title={"text": f"Reconstructed NC bound vs NCC test error<br><sup>{subtitle}</sup>"},
        height=420,
        margin={"t": 90},
        template="plotly_white",
    )
    return fig
