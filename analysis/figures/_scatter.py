"""A scatter matrix of the trials' final quantities, each point's hover showing its config."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis import aggregate
from analysis.correlate import numeric_params, quantities
from analysis.figures._base import NotMeasured
from analysis.load import StudyResults
from studyfiles import schema


@dataclass(frozen=True)
class ScatterMatrixInfo:
    """One row per finished trial: the quantities, a colour value and a hover text."""

    dimensions: list[str]
    values: pd.DataFrame
    color_by: str | None
    color: np.ndarray | None
    color_label: str
    hover: list[str]


def _get_scatter_matrix_info(
    study: StudyResults, *, frame: pd.DataFrame | None = None
) -> ScatterMatrixInfo:
    """Final quantities per trial, coloured by the first numeric swept key."""
    frame = aggregate.final_rows(study) if frame is None else frame
    dims = quantities(study)
    if len(dims) < 2:
        raise NotMeasured("scatter matrix: fewer than two final quantities were measured")
    frame = frame.dropna(subset=dims, how="all").reset_index(drop=True)
    params = numeric_params(study)
    color_by = params[0] if params else None
    color, color_label = None, ""
    if color_by is not None:
        raw = frame[color_by].to_numpy(dtype=float)
        logged = bool(np.all(raw > 0) and raw.max() > 10 * raw.min())
        color = np.log10(raw) if logged else raw
        color_label = f"log10 {schema.label(color_by)}" if logged else schema.label(color_by)
    hover = [_hover(row, study.hyper_params) for _, row in frame.iterrows()]
    return ScatterMatrixInfo(dims, frame[dims], color_by, color, color_label, hover)


def _hover(row: pd.Series, params: list[str]) -> str:
    lines = [f"<b>{row['trial_id']}</b>"]
    lines += [f"{p} = {row[p]}" for p in params]
    config = row.get("config")
    if isinstance(config, str):
        try:
            lines += [f"{k} = {v}" for k, v in _flatten(json.loads(config)) if k not in params]
        except ValueError:
            lines.append("config: unreadable JSON")
    return "<br>".join(lines)


def _flatten(tree, prefix: str = "") -> list[tuple[str, object]]:
    if not isinstance(tree, dict):
        return [(prefix, tree)]
    out = []
    for key, value in tree.items():
        out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def plot_scatter_matrix(info: ScatterMatrixInfo) -> go.Figure:
    """Draw a :class:`ScatterMatrixInfo` as a Plotly SPLOM."""
    marker = {"size": 6, "opacity": 0.8}
    if info.color is not None:
        marker |= {
            "color": info.color,
            "colorscale": "Viridis",
            "showscale": True,
            "colorbar": {"title": {"text": info.color_label}},
        }
    dims = [{"label": schema.label(d), "values": info.values[d]} for d in info.dimensions]
    fig = go.Figure(
        go.Splom(
            dimensions=dims,
            text=info.hover,
            hovertemplate="%{text}<extra></extra>",
            marker=marker,
            diagonal={"visible": False},
            showupperhalf=False,
        )
    )
    size = max(500, 150 * len(dims))
    fig.update_layout(
        title="Final quantities per trial (hover: the trial's config)",
        height=size,
        template="plotly_white",
    )
    return fig
