"""What every figure shares: the "not measured" signal, colours, bands and thinning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from plotly.colors import sample_colorscale

from analysis.load import StudyResults
from studyfiles import schema


class NotMeasured(LookupError):
    """The study did not measure what a figure needs; the message says what is missing."""


def measured(
    study: StudyResults, wanted: Sequence[str], *, figure: str, need: int = 1
) -> list[str]:
    """The measured subset of ``wanted``; raise :class:`NotMeasured` with fewer than ``need``."""
    found = [c for c in wanted if study.measured(c)]
    if len(found) < need:
        missing = ", ".join(c for c in wanted if c not in found)
        raise NotMeasured(f"{figure}: this study did not measure {missing}")
    return found


def format_value(param: str | None, value: object) -> str:
    """A legend entry such as ``lr=0.01``."""
    if param is None:
        return "all trials"
    shown = f"{value:g}" if isinstance(value, float | np.floating) else str(value)
    return f"{schema.label(param)}={shown}"


def value_colors(values: Sequence[object]) -> dict[object, str]:
    """One Viridis colour per value, in sorted order (darkest = smallest)."""
    ordered = sorted(set(values), key=_sort_key)
    if len(ordered) == 1:
        return {ordered[0]: "rgb(68, 1, 84)"}
    positions = np.linspace(0.0, 0.9, len(ordered))
    return dict(zip(ordered, sample_colorscale("Viridis", list(positions)), strict=True))


def _sort_key(value: object) -> tuple:
    return (
        (0, float(value), "")
        if isinstance(value, int | float | np.number)
        else (1, 0.0, str(value))
    )


def thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread items out of ``n`` (ends kept)."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def band(x, low, high, *, color: str, group: str) -> dict:
    """A filled band between ``low`` and ``high`` (gaps where undefined), as a trace dict."""
    x, low, high = (np.asarray(a, dtype=float) for a in (x, low, high))
    ok = np.isfinite(low) & np.isfinite(high)
    return {
        "type": "scatter",
        "x": np.concatenate([x[ok], x[ok][::-1]]),
        "y": np.concatenate([high[ok], low[ok][::-1]]),
        "fill": "toself",
        "fillcolor": color.replace("rgb(", "rgba(").replace(")", ", 0.2)"),
        "line": {"width": 0},
        "hoverinfo": "skip",
        "legendgroup": group,
        "showlegend": False,
    }
