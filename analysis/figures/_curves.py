"""Curves over training, one line per swept value with a band across seeds.

The paper's sweep figure (GC, geometric collapse, NC vs epoch; SPEC 4 E1–E5, E10) and its
transfer figure (source GC, target NC, few-shot accuracy; E8–E9) are both drawn here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import aggregate
from analysis import columns as C
from analysis.figures._base import band, format_value, measured, thin, value_colors
from analysis.inference import LIMITS
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema
from studyfiles.schema import scale_of


@dataclass(frozen=True)
class Line:
    """One metric's curve for one swept value: mean and band over trials at each x."""

    metric: str
    value: object
    name: str
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


@dataclass(frozen=True)
class CurvesInfo:
    """Everything :func:`plot_curves` draws."""

    title: str
    param: str | None
    align: str
    metrics: list[str]
    lines: list[Line]
    band: str
    notes: list[str] = field(default_factory=list)


def _get_sweep_info(
    study: StudyResults,
    param: str | None,
    *,
    metrics: Sequence[str] = C.SOURCE_METRICS,
    align: str = "epoch",
    band: str = "ci",
    options: Options | None = None,
) -> CurvesInfo:
    """The sweep figure's data: ``metrics`` vs ``align``, one line per value of ``param``."""
    found = measured(study, metrics, figure="sweep figure")
    title = f"Sweep over {schema.label(param)}" if param else "All trials"
    return _curves_info(study, param, found, list(metrics), title, align, band, options)


def _get_transfer_info(
    study: StudyResults,
    param: str | None,
    *,
    shots: int | None = None,
    align: str = "epoch",
    band: str = "ci",
    options: Options | None = None,
) -> CurvesInfo:
    """The transfer figure's data: source GC, target NC and few-shot accuracy (5-shot if any)."""
    fewshot = schema.fewshot_columns(c for c in study.metrics.columns if study.measured(c))
    if shots is not None:
        fewshot = [c for c in fewshot if c == f"fewshot_acc_{shots}shot"]
    elif "fewshot_acc_5shot" in fewshot:
        fewshot = ["fewshot_acc_5shot"]
    wanted = ["target_nc_cdnv", *(fewshot[:1] or [f"fewshot_acc_{shots or 5}shot"])]
    measured(study, wanted, figure="transfer figure")
    wanted = ["gc", *wanted]
    found = [m for m in wanted if study.measured(m)]
    title = f"Transfer over {schema.label(param)}" if param else "Transfer"
    return _curves_info(study, param, found, wanted, title, align, band, options)


def _curves_info(study, param, found, wanted, title, align, band_kind, options) -> CurvesInfo:
    options = options or Options()
    if align not in ("epoch", "step") and not study.measured(align):
        raise ValueError(f"cannot align by {align}: this study did not measure it")
    stats, note = aggregate.curves(
        study, param, found, align=align, n_levels=options.n_levels, confidence=options.confidence
    )
    lines = []
    for (value, metric), part in stats.groupby(["param", "metric"], sort=False):
        part = part[part["n"] > 0].sort_values("x")
        low, high = _band(part, band_kind, metric)
        x = part["x"].to_numpy(dtype=float)
        lines.append(
            Line(
                metric,
                value,
                format_value(param, value),
                x,
                part["mean"].to_numpy(),
                low,
                high,
                part["n"].to_numpy(),
            )
        )
    notes = [note] if note else []
    linear = stats[(stats["n"] > 0) & ~stats["log"].astype(bool)]["metric"].unique()
    with_zeros = [schema.label(m) for m in found if m in linear and scale_of(m) == "positive"]
    if with_zeros:
        notes.append(
            f"{', '.join(with_zeros)}: the mean, not the geometric one, where a trial's value is 0"
        )
    skipped = [m for m in wanted if m not in found]
    if skipped:
        notes.append(f"not measured, left out: {', '.join(schema.label(m) for m in skipped)}")
    short = _short_trials(study)
    if short:
        notes.append(
            f"{short} drawn up to where they stopped: later points rest on fewer trials (n)"
        )
    band_name = f"{options.confidence:.0%} CI" if band_kind == "ci" else "± 1 std"
    return CurvesInfo(title, param, align, found, lines, band_name, notes)


def _short_trials(study: StudyResults) -> str:
    """The trials whose curves end early (stopped by a scheduler, not yet ended), counted;
    "" when every trial ran to its end."""
    status = study.trials.get("status")
    if status is None:
        return ""
    counts = status[status.isin(("stopped", "running", "interrupted", "pending"))].value_counts()
    named = {"stopped": "stopped early by the scheduler", "running": "still running"}
    parts = [f"{n} {named.get(s, s)}" for s, n in counts.items() if n]
    return f"trials {', '.join(parts)}" if parts else ""


def _band(part, kind: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The band of ``part`` (one line's rows of :func:`aggregate.curves`), inside the
    quantity's range: the CI as given; ± 1 std around the mean, on the log scale a factor
    exp(± std) around the geometric mean, and otherwise cut to [0, 1] for a fraction and at
    0 for a positive quantity."""
    if kind == "ci":
        return part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float)
    if kind == "std":
        mean, std = part["mean"].to_numpy(dtype=float), part["std"].to_numpy(dtype=float)
        log = part["log"].to_numpy(dtype=bool)
        scale = scale_of(metric)
        floor, ceiling = LIMITS["nonnegative" if scale == "positive" else scale]
        low = np.where(log, mean * np.exp(-std), np.clip(mean - std, floor, ceiling))
        high = np.where(log, mean * np.exp(std), np.clip(mean + std, floor, ceiling))
        return low, high
    raise ValueError(f"unknown band {kind!r}; known: ci, std")


def plot_curves(info: CurvesInfo, *, max_points: int = 2000) -> go.Figure:
    """Draw a :class:`CurvesInfo`: one subplot per metric, one coloured line per value."""
    grid = make_subplots(
        rows=1, cols=len(info.metrics), subplot_titles=[schema.label(m) for m in info.metrics]
    )
    colors = value_colors([line.value for line in info.lines])
    traces = []
    for line in info.lines:
        col = info.metrics.index(line.metric) + 1
        axes = {"xaxis": f"x{col}", "yaxis": f"y{col}"}
        keep = thin(len(line.x), max_points)
        color = colors[line.value]
        traces.append(
            band(line.x[keep], line.low[keep], line.high[keep], color=color, group=line.name) | axes
        )
        traces.append(
            {
                "type": "scatter",
                "x": line.x[keep],
                "y": line.mean[keep],
                "mode": "lines",
                "name": line.name,
                "legendgroup": line.name,
                "showlegend": col == 1,
                "line": {"color": color},
                "customdata": line.n[keep],
                "hovertemplate": f"{line.name}<br>x=%{{x:.4g}}<br>mean=%{{y:.4g}}"
                "<br>n=%{customdata}<extra></extra>",
                **axes,
            }
        )
    fig = go.Figure(data=traces, layout=grid.layout)  # one validation pass for all traces
    _axes(fig, info)
    return fig


def _axes(fig: go.Figure, info: CurvesInfo) -> None:
    x_title = schema.label(info.align)
    if info.align == "train_loss":
        fig.update_xaxes(type="log", autorange="reversed", title_text=f"{x_title} (training →)")
    else:
        fig.update_xaxes(title_text=x_title)
    centre = (
        "geometric mean over trials (mean for fractions)"
        if any(scale_of(m) == "positive" for m in info.metrics)
        else "mean over trials"
    )
    subtitle = f"{centre}, band: {info.band}" + "".join(f"; {n}" for n in info.notes)
    fig.update_layout(
        title={"text": f"{info.title}<br><sup>{subtitle}</sup>"},
        height=380,
        margin={"t": 90},
        template="plotly_white",
    )


plot_sweep = plot_curves
plot_transfer = plot_curves
