"""How a trial talks to whoever runs it: metrics and checkpoints out, a checkpoint in.

The orchestrator writes each row and checkpoint to the study directory, resumes a trial
from its newest checkpoint there, and passes each row on to Ray Tune as a result; tests and
single-trial runs use :class:`MemoryReporter`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol


class Reporter(Protocol):
    """The trial's side of the runner."""

    def restore(self) -> dict[str, Any] | None:
        """The last checkpoint state to resume from, or None for a fresh start."""

    def report(self, metrics: Mapping[str, Any], *, checkpoint: Mapping[str, Any]) -> None:
        """Receive one evaluation's metrics and the state to resume after it."""


class MemoryReporter:
    """Keeps every report in memory; can start from a given checkpoint state.

    Args:
        start_from: a checkpoint state (as passed to ``report``) to resume from.
        stop_after: raise :class:`TrialInterrupted` after this many reports, to simulate
            a trial killed right after a checkpoint.
    """

    def __init__(
        self,
        start_from: Mapping[str, Any] | None = None,
        *,
        stop_after: int | None = None,
    ) -> None:
        self._start_from = copy.deepcopy(dict(start_from)) if start_from is not None else None
        self._stop_after = stop_after
        self.rows: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []

    def restore(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._start_from)

    def report(self, metrics: Mapping[str, Any], *, checkpoint: Mapping[str, Any]) -> None:
        self.rows.append(dict(metrics))
        self.checkpoints.append(copy.deepcopy(dict(checkpoint)))
        if self._stop_after is not None and len(self.rows) >= self._stop_after:
            raise TrialInterrupted(f"stopped after {len(self.rows)} reports")

    @property
    def last_checkpoint(self) -> dict[str, Any] | None:
        return self.checkpoints[-1] if self.checkpoints else None


class TrialInterrupted(RuntimeError):
    """Raised by :class:`MemoryReporter` to simulate a trial killed mid-run."""
