"""Measures against depth: each layer quantity at the final epoch or at matched training
progress, one line per swept value, layers from the input along x (SPEC "Across depth")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import aggregate, depth
from analysis.figures._base import NotMeasured, band, format_value, value_colors
from analysis.figures._curves import Line
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema
from studyfiles.schema import scale_of

AT = ("final", "matched")
_COLUMNS = 4  # panels per row


@dataclass(frozen=True)
class DepthInfo:
    """Everything :func:`plot_depth` draws: ``lines`` hold each quantity's centre and
    interval across seeds per layer (``x``: the layer's depth), ``ticks`` the layers'
    depths and names."""

    title: str
    param: str | None
    at: str
    metrics: list[str]
    lines: list[Line]
    ticks: list[tuple[int, str]]
    band: str
    notes: list[str] = field(default_factory=list)


def _get_depth_info(
    study: StudyResults,
    param: str | None,
    *,
    at: str = "final",
    metrics: Sequence[str] | None = None,
    options: Options | None = None,
) -> DepthInfo:
    """The depth figure's data: ``metrics`` (default: every layer quantity measured) per
    layer, one line per value of ``param``, at the final epoch or at matched progress
    (``at``), centred and bounded as the final values' table (:func:`analysis.depth.values`).

    Raises:
        NotMeasured: the study has no layers table, or (``matched``) no progress measure.
    """
    options = options or Options()
    if at not in AT:
        raise ValueError(f"unknown comparison {at!r}; known: {', '.join(AT)}")
    table = study.layers
    if table is None:
        raise NotMeasured("depth figure: this study measured no layers (metrics.layers)")
    if at == "matched" and not study.measured(options.progress_by):
        raise NotMeasured(f"depth figure at matched progress: no {options.progress_by}")
    stats = depth.values(study, options=options)
    stats = stats[(stats["at"] == at) & (stats["param"] == (param or "all trials"))]
    found = [m for m in (metrics or table.quantities()) if m in set(stats["metric"])]
    if not found:
        raise NotMeasured(f"depth figure: no layer measured {', '.join(metrics or ())}")
    lines = []
    for (value, metric), part in stats.groupby(["value", "metric"], sort=True):
        if metric not in found:
            continue
        part = part[part["n"] > 0].sort_values("layer")
        lines.append(
            Line(
                metric,
                value,
                format_value(param, value),
                part["layer"].to_numpy(dtype=float),
                part["mean"].to_numpy(dtype=float),
                part["ci_low"].to_numpy(dtype=float),
                part["ci_high"].to_numpy(dtype=float),
                part["n"].to_numpy(),
            )
        )
    lines.sort(key=lambda line: found.index(line.metric))  # panel by panel, values in order
    return DepthInfo(
        _title(param, at, stats, options),
        param,
        at,
        found,
        lines,
        [(layer.index, layer.label) for layer in table.layers],
        f"{options.confidence:.0%} CI",
        _notes(stats, found),
    )


def _title(param: str | None, at: str, stats, options: Options) -> str:
    over = f"over {schema.label(param)}" if param else "all trials"
    if at == "final":
        return f"Across depth, {over}: at the final epoch"
    level = stats["level"].dropna()
    where = (
        aggregate.progress_label(options.progress_by, float(level.iloc[0])) if len(level) else ""
    )
    return f"Across depth, {over}: at matched progress ({where})"


def _notes(stats, found: list[str]) -> list[str]:
    notes = [str(n) for n in dict.fromkeys(stats["slice"]) if n]
    linear = stats[(stats["n"] > 0) & ~stats["log"].astype(bool)]["metric"].unique()
    with_zeros = [schema.label(m) for m in found if m in linear and scale_of(m) == "positive"]
    if with_zeros:
        notes.append(
            f"{', '.join(with_zeros)}: the mean, not the geometric one, where a value is 0"
        )
    return notes


def plot_depth(info: DepthInfo) -> go.Figure:
    """Draw a :class:`DepthInfo`: one panel per quantity (a log axis for a positive one),
    one coloured line per swept value through the layers, its interval as a band."""
    cols = min(_COLUMNS, len(info.metrics))
    rows = math.ceil(len(info.metrics) / cols)
    grid = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[schema.label(m) for m in info.metrics],
        vertical_spacing=0.22 if rows > 1 else 0.1,
    )
    colors = value_colors([line.value for line in info.lines])
    traces = []
    for line in info.lines:
        panel = info.metrics.index(line.metric) + 1
        axes = {"xaxis": f"x{panel}", "yaxis": f"y{panel}"}
        color = colors[line.value]
        area = band(line.x, line.low, line.high, color=color, group=line.name)
        traces.append(area | axes | {"mode": "lines"})  # a band of few points: no markers
        traces.append(
            {
                "type": "scatter",
                "x": line.x,
                "y": line.mean,
                "mode": "lines+markers",
                "name": line.name,
                "legendgroup": line.name,
                "showlegend": panel == 1,
                "line": {"color": color},
                "customdata": np.stack([line.n, line.low, line.high], axis=-1),
                "hovertemplate": f"{line.name}<br>layer %{{x}}<br>centre=%{{y:.4g}} "
                "[%{customdata[1]:.3g}, %{customdata[2]:.3g}]<br>n=%{customdata[0]}"
                "<extra></extra>",
                **axes,
            }
        )
    fig = go.Figure(data=traces, layout=grid.layout)
    ticks = {"tickmode": "array", "tickvals": [k for k, _ in info.ticks]}
    fig.update_xaxes(ticktext=[name for _, name in info.ticks], **ticks)
    for panel, metric in enumerate(info.metrics, start=1):
        if scale_of(metric) == "positive":
            fig.layout[f"yaxis{panel if panel > 1 else ''}"].type = "log"
    subtitle = "; ".join(
        ["layers from the input; geometric mean over trials (mean for fractions)",
         f"band: {info.band}", *info.notes]
    )  # fmt: skip
    fig.update_layout(
        title={"text": f"{info.title}<br><sup>{subtitle}</sup>"},
        height=330 * rows + 90,
        margin={"t": 110},
        template="plotly_white",
    )
    return fig
