"""What a search study optimised, as its resolved spec (``study.json``'s ``spec``) says:
read by ``gcnc status`` and by the analysis alike."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: A trial's statuses once it will not run again (docs/schema.md): it reached its last epoch
#: (or diverged), or the scheduler stopped it. Only these are ranked as a search's result.
ENDED: tuple[str, ...] = ("done", "stopped")


@dataclass(frozen=True)
class SearchTarget:
    """What a search optimised: ``metric`` toward ``mode`` over the keys of its space."""

    metric: str
    mode: str  # "min" or "max"
    params: tuple[str, ...]  # the search space's dotted keys
    algorithm: str
    scheduler: str | None  # the early-stopping scheduler's type ("asha"), or None

    def best_first(self, values: Iterable[tuple[str, Any]]) -> list[tuple[str, float]]:
        """``(trial id, value)`` pairs ranked as the search's result is ranked: toward
        ``mode``, ties by trial id; a pair without a finite value is left out."""
        finite = [(str(t), float(v)) for t, v in values if _finite(v)]
        sign = -1.0 if self.mode == "max" else 1.0
        return sorted(finite, key=lambda pair: (sign * pair[1], pair[0]))


def search_target(spec: Any) -> SearchTarget | None:
    """The search's metric and mode (the scheduler's where the search names none); None
    for a spec without a search, or a search without a metric and mode."""
    search = spec.get("search") if isinstance(spec, Mapping) else None
    if not isinstance(search, Mapping):
        return None
    scheduler = spec.get("scheduler") or {}
    metric = search.get("metric") or scheduler.get("metric")
    mode = search.get("mode") or scheduler.get("mode")
    if not metric or mode not in ("min", "max"):
        return None
    return SearchTarget(
        metric=str(metric),
        mode=str(mode),
        params=tuple(str(k) for k in search.get("space") or ()),
        algorithm=str(search.get("algorithm") or "tpe"),
        scheduler=str(scheduler.get("type") or "asha") if scheduler else None,
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
