"""A heatmap of rank correlations between final quantities and swept hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.correlate import study_correlations
from analysis.figures._base import NotMeasured
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema


@dataclass(frozen=True)
class HeatmapInfo:
    """Square matrices over ``names``; NaN where a pair was not computed."""

    method: str
    names: list[str]
    r: np.ndarray
    hover: np.ndarray  # str, r with its interval, n and p-value


def _get_correlation_heatmap_info(
    study: StudyResults,
    *,
    table: pd.DataFrame | None = None,
    method: str = "spearman",
    options: Options | None = None,
) -> HeatmapInfo:
    """The matrix of ``method`` correlations from ``table`` (computed if not given)."""
    table = study_correlations(study, options=options) if table is None else table
    sub = table[table["method"] == method]
    if sub.empty:
        raise NotMeasured("correlation heatmap: fewer than two quantities to correlate")
    seen = list(dict.fromkeys([*sub["x"], *sub["y"]]))
    names = [n for n in seen if not schema.is_metric_name(n) and n not in schema.KEY_COLUMNS]
    names += [n for n in seen if n not in names]
    pos = {n: i for i, n in enumerate(names)}
    r = np.full((len(names), len(names)), np.nan)
    hover = np.full(r.shape, "", dtype=object)
    np.fill_diagonal(r, 1.0)
    for row in sub.itertuples():
        i, j = pos[row.x], pos[row.y]
        r[i, j] = r[j, i] = row.r
        text = (
            f"{schema.label(row.x)} vs {schema.label(row.y)}<br>"
            f"r = {row.r:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]<br>"
            f"n = {row.n}, p = {row.p_value:.2g}"
        )
        hover[i, j] = hover[j, i] = text
    return HeatmapInfo(method, names, r, hover)


def plot_correlation_heatmap(info: HeatmapInfo) -> go.Figure:
    """Draw a :class:`HeatmapInfo` on a diverging scale from -1 to 1."""
    labels = [schema.label(n) for n in info.names]
    text = np.where(
        np.isfinite(info.r), np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(info.r)), ""
    )
    fig = go.Figure(
        go.Heatmap(
            z=info.r,
            x=labels,
            y=labels,
            zmin=-1,
            zmax=1,
            colorscale="RdBu_r",
            text=text,
            texttemplate="%{text}",
            customdata=info.hover,
            hovertemplate="%{customdata}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    size = max(420, 60 * len(labels) + 200)
    fig.update_layout(
        title=f"{info.method.capitalize()} correlations of final values (hover: bootstrap CI)",
        height=size,
        template="plotly_white",
    )
    return fig
