"""Showing a study's strings safely. Dash components escape text; Plotly does not quite:
it reads trace names, hover texts and tick labels as a small markup (``<a href>``,
``<span style>``, …). :func:`safe_figure` escapes every string of a figure but the few
harmless tags the analysis's own figures use for layout (``<br>``, ``<b>``, ``<sup>``, …)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import plotly.graph_objects as go

_HARMLESS = re.compile(r"&lt;(/?)(br|b|i|em|sup|sub|extra)\s*/?&gt;", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def escape_markup(text: str) -> str:
    """``text`` with ``<`` and ``>`` escaped, but for line breaks and bold, italic,
    superscript and subscript tags and Plotly's ``<extra>`` of a hover template (which carry no
    attributes, so no link or style)."""
    escaped = text.replace("<", "&lt;").replace(">", "&gt;")
    return _HARMLESS.sub(r"<\1\2>", escaped)


def safe_figure(fig: go.Figure | dict) -> dict:
    """The figure as a plain dict with every string escaped (:func:`escape_markup`); a
    trace's ``customdata`` is kept as it is unless its hover template shows it."""
    data = fig.to_plotly_json() if isinstance(fig, go.Figure) else fig
    traces = [_trace(t) for t in data.get("data", [])]
    return {**{k: _walk(v) for k, v in data.items() if k != "data"}, "data": traces}


def _trace(trace: dict) -> dict:
    shown = "customdata" in str(trace.get("hovertemplate", ""))
    kept = {} if shown or "customdata" not in trace else {"customdata": trace["customdata"]}
    return {**_walk({k: v for k, v in trace.items() if k not in kept}), **kept}


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return escape_markup(value)
    if isinstance(value, dict):
        return {k: _walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":
        return [_walk(v) for v in value.tolist()]
    return value


def safe_filename(name: str, *, default: str = "study") -> str:
    """A file name made of letters, digits, dots, dashes and underscores only."""
    return _UNSAFE_NAME.sub("_", name).strip("._")[:80] or default


def message_figure(text: str, *, height: int = 220) -> dict:
    """An empty figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, template="plotly_white", margin={"t": 20, "b": 20})
    return safe_figure(fig)
