"""Numbers as short text for tables: shared by the tables, the search's answer and the report."""

from __future__ import annotations

import numpy as np


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, blank when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}g}"
    return str(value)


def interval(mid: float, low: float, high: float) -> str:
    """``mid [low, high]``; ``mid [low, ∞)`` for an interval with no upper bound (a ratio
    whose denominator may be 0); just ``mid`` without an interval."""
    if np.isfinite(low) and not np.isfinite(high) and np.isfinite(mid):
        return f"{fmt(mid)} [{fmt(low)}, ∞)"
    if not (np.isfinite(low) and np.isfinite(high)):
        return fmt(mid)
    return f"{fmt(mid)} [{fmt(low)}, {fmt(high)}]"


def listed(names: list[str], limit: int = 5) -> str:
    """The first ``limit`` of ``names``, comma-separated, and how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
