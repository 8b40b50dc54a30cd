"""The train-side NCC error bound against the NCC test error over training (SPEC 3, §4 E7).

``nc_bound = 4 (C − 1) · CDNV`` of the training sample (trainables.metrics.bounds): class
means and within-class variances of training data only, compared with the NCC error on
held-out data, so it can fail. The empirical Poincaré ratio ``κ̂ = max_c Var_c / GC_c``
(``poincare_kappa``) is drawn beside it where the study measured it.

Bands are 95 % (``options.confidence``) t-intervals across trials, each on its quantity's
scale (``schema.scale_of``): for a positive quantity (the bound, κ̂) the geometric mean
and the exponentiated interval of the mean log; for a fraction (the error) the mean and
the interval clipped to [0, 1] (``aggregate.summarize``); a bound or κ̂ of 0 or infinity,
which has no log, is left out of its band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import aggregate
from analysis.figures._base import band, format_value, measured, thin, value_colors
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema

BOUND, ERROR, KAPPA = "nc_bound", "ncc_test_error", "poincare_kappa"
_TITLE = "NCC error bound (train-side reconstruction, SPEC §3) vs NCC test error"
_DEFINITION = "bound = 4(C−1)·CDNV of the training sample: training-side only, so it can fail"


@dataclass(frozen=True)
class BoundInfo:
    """Centre and band per group and epoch of the bound, the NCC test error and (where
    measured) κ̂, plus how often the bound held."""

    param: str | None
    stats: dict  # group value -> frame: epoch, metric, n, mean, ci_low, ci_high
    metrics: list[str]  # nc_bound, ncc_test_error[, poincare_kappa]
    holds: float  # fraction of evaluations with bound >= error
    non_vacuous: float  # fraction of evaluations with bound < 1
    n: int


def _get_bound_info(
    study: StudyResults, *, param: str | None = None, options: Options | None = None
) -> BoundInfo:
    """Bound, error and κ̂ by epoch across trials, per value of ``param`` (all trials if None)."""
    options = options or Options()
    measured(study, [BOUND, ERROR], figure="bound figure", need=2)
    metrics = [BOUND, ERROR, *([KAPPA] if study.measured(KAPPA) else [])]
    frame = study.metrics.dropna(subset=[BOUND, ERROR])
    group = frame[param] if param else np.zeros(len(frame))
    data = frame[["epoch"]].assign(group=np.asarray(group))
    for m in metrics:  # a positive quantity's 0 or inf (κ̂ of a class with GC 0) has no log
        v = frame[m].to_numpy(dtype=float, na_value=np.nan)
        keep = np.isfinite(v) & ((v > 0) if schema.scale_of(m) == "positive" else True)
        data[m] = np.where(keep, v, np.nan)
    stats = aggregate.summarize(data, ["group", "epoch"], metrics, confidence=options.confidence)
    per_group = {g: part for g, part in stats.groupby("group", sort=True)}
    bound, error = frame[BOUND].to_numpy(float), frame[ERROR].to_numpy(float)
    holds = float(np.mean(bound >= error)) if len(frame) else float("nan")
    non_vacuous = float(np.mean(bound < 1.0)) if len(frame) else float("nan")
    return BoundInfo(param, per_group, metrics, holds, non_vacuous, len(frame))


def plot_bound(info: BoundInfo, *, max_points: int = 2000) -> go.Figure:
    """Bound (dashed) and NCC test error (solid) vs epoch on a log axis, κ̂ in a second
    panel where measured; a band across trials for each."""
    kappa = KAPPA in info.metrics
    fig = make_subplots(
        rows=1,
        cols=2 if kappa else 1,
        column_widths=[0.65, 0.35] if kappa else None,
        subplot_titles=["bound vs NCC test error", "Poincaré ratio κ̂"] if kappa else None,
    )
    colors = value_colors(list(info.stats))
    for value, part in info.stats.items():
        name = format_value(info.param, value)
        for metric, dash, label, col in (
            (BOUND, "dash", "bound", 1),
            (ERROR, "solid", "NCC test error", 1),
            (KAPPA, "dot", "κ̂", 2),
        ):
            if metric not in info.metrics:
                continue
            sub = part[(part["metric"] == metric) & (part["n"] > 0)].sort_values("epoch")
            sub = sub.iloc[thin(len(sub), max_points)]
            group = f"{name} {label}"
            low, high = (sub[c].where(sub[c] > 0) for c in ("ci_low", "ci_high"))  # log axis
            fig.add_trace(band(sub["epoch"], low, high, color=colors[value], group=group), 1, col)
            line = {"color": colors[value], "dash": dash}
            fig.add_trace(
                go.Scatter(
                    x=sub["epoch"],
                    y=sub["mean"],
                    mode="lines",
                    name=f"{label} ({name})",
                    legendgroup=group,
                    line=line,
                ),
                1,
                col,
            )
    fig.add_hline(y=1.0, line={"color": "grey", "width": 1, "dash": "dot"}, row=1, col=1)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(type="log", title_text="error / bound", row=1, col=1)
    if kappa:
        fig.update_yaxes(type="log", title_text="max_c Var_c / GC_c", row=1, col=2)
    fig.update_layout(
        title={"text": f"{_TITLE}<br><sup>{_DEFINITION}<br>{_subtitle(info)}</sup>"},
        height=520,
        margin={"t": 175},
        template="plotly_white",
    )
    return fig


def _subtitle(info: BoundInfo) -> str:
    return (
        f"bound ≥ error in {info.holds:.0%} and bound < 1 in {info.non_vacuous:.0%} "
        f"of {info.n} evaluations<br>bands: t-intervals across trials, geometric for the "
        "bound and κ̂, within [0, 1] for the error"
    )
