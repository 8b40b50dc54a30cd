"""The studies a server was started on: each read live, with what the page derives from a
snapshot (its trial table, its results under some settings) cached until new data arrives.

The page names a study by its index into the list given at start; no path or name from the
browser reaches the filesystem.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.explore._trials import trial_table
from analysis.live import LiveStudy, Refresh
from analysis.load import ResultsError, StudyResults
from analysis.tables import Results, compute_results

_CACHED_RESULTS = 16  # Results kept (each study's latest snapshot under a few settings)


@dataclass(frozen=True)
class Checked:
    """The last look at a study: when, what it read, and any problem it met."""

    at: float
    refresh: Refresh


class StudyHub:
    """Live studies by index, refreshed together; thread-safe (Flask serves callbacks on
    several threads).

    Raises:
        ResultsError: a location that is not a study directory, or whose files cannot be
            read at start.
    """

    def __init__(
        self, locations: list[str], *, min_gap_s: float = 0.0, allow_missing: bool = False
    ) -> None:
        if not locations:
            raise ResultsError("no study directory given")
        self._live: list[LiveStudy] = []
        self._checked: list[Checked] = []
        for location in locations:
            start = time.perf_counter()
            live = LiveStudy(location, allow_missing=allow_missing)  # else refused now
            files = live.study.n_files
            loaded = Refresh(True, files, files, time.perf_counter() - start, None)
            self._live.append(live)
            self._checked.append(Checked(time.time(), loaded))
        self.locations = list(locations)
        self.versions = [0] * len(locations)
        self._min_gap_s = min_gap_s
        self._locks = [threading.Lock() for _ in locations]
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._cache_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._live)

    def index(self, value: object) -> int:
        """A study index from the page, checked; anything else is refused."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self):
            return value
        raise ValueError(f"no study {value!r}")

    def refresh(self) -> list[int]:
        """Read what is new in every study (not again within ``min_gap_s`` of the last
        look, so several open pages do not multiply the reads); the data versions."""
        for i, live in enumerate(self._live):
            if time.time() - self._checked[i].at < self._min_gap_s:
                continue
            with self._locks[i]:
                result = live.refresh()
                self._checked[i] = Checked(time.time(), result)
                if result.changed:
                    self.versions[i] += 1
        return list(self.versions)

    def study(self, i: int) -> StudyResults:
        """The latest good snapshot of study ``i``."""
        with self._locks[i]:
            return self._live[i].study

    def checked(self, i: int) -> Checked:
        return self._checked[i]

    def label(self, i: int) -> str:
        """The study's name, with its directory's last part when another has the same."""
        names = [self.study(k).name or _base(loc) for k, loc in enumerate(self.locations)]
        if names.count(names[i]) > 1:
            return f"{names[i]} ({_base(self.locations[i])}, #{i + 1})"
        return names[i]

    def cached(self, i: int, what: str, make, key: tuple = ()) -> Any:
        """``make(study)`` for study ``i``'s current snapshot, computed once per snapshot
        and ``key``; what was made from older snapshots is dropped."""
        version = self.versions[i]
        full = (i, version, what, key)
        with self._cache_lock:
            if full in self._cache:
                self._cache.move_to_end(full)
                return self._cache[full]
        value = make(self.study(i))
        with self._cache_lock:
            for stale in [k for k in self._cache if k[0] == i and k[1] < version]:
                del self._cache[stale]  # an older snapshot: let its frames go
            self._cache[full] = value
            while len(self._cache) > _CACHED_RESULTS:
                self._cache.popitem(last=False)
        return value

    def table(self, i: int) -> pd.DataFrame:
        """Study ``i``'s trial table (:func:`~analysis.explore._trials.trial_table`)."""
        return self.cached(i, "table", trial_table)

    def results(self, i: int, overrides: Mapping[str, Any] | None = None) -> Results:
        """Study ``i``'s results under its plan with ``overrides`` (None values ignored)."""
        changes = {k: v for k, v in (overrides or {}).items() if v is not None}
        key = tuple(sorted(changes.items()))
        return self.cached(i, "results", lambda s: compute_results(s, overrides=changes), key)


def _base(location: str) -> str:
    return os.path.basename(location.rstrip("/")) or location
