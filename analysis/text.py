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
    """``mid [low, high]``, or just ``mid`` without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return fmt(mid)
    return f"{fmt(mid)} [{fmt(low)}, {fmt(high)}]"
