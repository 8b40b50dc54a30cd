"""The driver's record of every trial, written to ``trials.parquet`` as trials change."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from orchestrator.sink import RowContext, cell, now
from studyfiles import StudyDir, schema
from studyfiles.errors import first_line
from studyfiles.schema import ARROW_TYPES
from studyfiles.tables import read_parquet, to_bytes


@dataclass
class TrialRecord:
    """One trial as ``trials.parquet`` holds it."""

    trial_id: str
    config: dict[str, Any]
    params: dict[str, Any]
    status: str = "pending"
    diverged: bool = False
    attempts: int = 0
    error: str | None = None
    epochs_done: int | None = None
    failed_runs: int = 0  # runs of the study in which the trial ended in error
    updated_at: Any = field(default_factory=now)
    cells: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    """Its row of ``trials.parquet`` as last written; None once it changed."""


ABANDONED = "abandoned"  # the error text of a trial the runner no longer knows


@dataclass(frozen=True)
class Counts:
    """How many trials are in each state; ``total`` includes those not proposed yet.

    ``done``: reached its last epoch (or diverged); ``stopped``: ended earlier by the
    scheduler; ``interrupted``: started, not ended (a resume continues it from its newest
    checkpoint); ``pending``: not started. ``abandoned`` trials (status ``error``) were
    proposed by a searcher after the runner's last snapshot of a run that was killed; a
    replacement trial ran in their place.
    """

    total: int
    done: int
    running: int
    failed: int
    diverged: int
    pending: int
    abandoned: int = 0
    stopped: int = 0
    interrupted: int = 0

    @property
    def ended(self) -> int:
        """Trials that will not run again: done or stopped by the scheduler."""
        return self.done + self.stopped


class TrialBook:
    """Trials by id, loaded from and flushed to ``trials.parquet``.

    Args:
        sdir: the study directory.
        ctx: the study's row context (for the hyperparameter columns).
        total: how many trials the study runs in all.
        min_interval_s: the least time between two writes of the file (``flush(force=True)``
            writes regardless); a write that takes longer than 1/50 of it stretches the
            next interval to 50 times the write's time, so that rewriting the file of a
            big study takes no more than 2 % of the driver's time.
    """

    def __init__(
        self, sdir: StudyDir, ctx: RowContext, *, total: int, min_interval_s: float = 2.0
    ) -> None:
        self.sdir, self.ctx, self.total = sdir, ctx, total
        self.min_interval_s = min_interval_s
        self._interval_s = min_interval_s
        self.trials: dict[str, TrialRecord] = {}
        self._dirty = False
        self._last_write = float("-inf")

    def load(self) -> None:
        """Read the trials an earlier run recorded (resuming); nothing if there is no file.

        A file that cannot be read is said on stderr and rebuilt: the runner's state and the
        trials' rows say again which trials ended.
        """
        storage = self.sdir.storage
        if not storage.is_file(self.sdir.trials_parquet):
            return
        try:
            rows = read_parquet(storage, self.sdir.trials_parquet).to_pylist()
        except (OSError, pa.ArrowException) as err:
            why = first_line(err)
            print(f"gcnc: {self.sdir.trials_parquet} is unreadable ({why}); it is rebuilt "
                  "from the trials' rows and the runner's state", file=sys.stderr)  # fmt: skip
            return
        for row in rows:
            params = {k: row.get(k) for k in self.ctx.param_types}
            rec = TrialRecord(row["trial_id"], json.loads(row["config"]), params)
            rec.status, rec.diverged, rec.attempts = row["status"], row["diverged"], row["attempts"]
            rec.error, rec.epochs_done = row["error"], row["epochs_done"]
            rec.failed_runs = int(row.get("failed_runs") or 0)  # absent from older files
            rec.updated_at = row["updated_at"]
            self.trials[rec.trial_id] = rec

    def declare(self, trial_id: str, config: dict[str, Any], params: Mapping[str, Any]) -> None:
        """Know of a trial (pending until it starts); a known trial is left as it is."""
        if trial_id not in self.trials:
            self.trials[trial_id] = TrialRecord(trial_id, config, dict(params))
            self._dirty = True

    def _update(self, trial_id: str, **changes: Any) -> TrialRecord:
        assert changes.get("status", "pending") in schema.STATUSES, changes
        rec = self.trials[trial_id]
        for key, value in changes.items():
            setattr(rec, key, value)
        rec.updated_at, rec.cells = now(), None
        self._dirty = True
        return rec

    def started(self, trial_id: str) -> None:
        rec = self.trials[trial_id]
        self._update(trial_id, status="running", attempts=rec.attempts + 1)

    def result(self, trial_id: str, *, epoch: int | None, diverged: bool) -> None:
        rec = self.trials[trial_id]
        self._update(
            trial_id,
            epochs_done=epoch if epoch is not None else rec.epochs_done,
            diverged=rec.diverged or diverged,
        )

    def finished(self, trial_id: str, *, epoch: int | None, stopped: bool = False) -> None:
        """The trial ended at ``epoch``: its last epoch (``done``), or earlier because the
        scheduler stopped it (``stopped``)."""
        rec = self.trials[trial_id]
        self._update(
            trial_id,
            status="stopped" if stopped else "done",
            error=None,
            epochs_done=epoch if epoch is not None else rec.epochs_done,
        )

    def failed(self, trial_id: str, error: str, *, retrying: bool) -> None:
        if retrying:
            self._update(trial_id, status="running", error=error)
            return
        runs = self.trials[trial_id].failed_runs + 1
        self._update(trial_id, status="error", error=error, failed_runs=runs)

    def rerun(self, trial_id: str) -> None:
        """A trial whose rows were lost: not started again yet."""
        self._update(trial_id, status="pending", epochs_done=None, error=None)

    def interrupted(self) -> None:
        """Trials left running when the run stops are ``interrupted``: started, not ended."""
        for rec in self.trials.values():
            if rec.status == "running":
                self._update(rec.trial_id, status="interrupted")

    def abandon(self, trial_id: str) -> None:
        """A trial that will never run again (see :class:`Counts`)."""
        self._update(
            trial_id,
            status="error",
            error=f"{ABANDONED}: its run was killed before "
            "the runner recorded it; a replacement trial ran instead",
        )

    def counts(self) -> Counts:
        recs = list(self.trials.values())
        by = Counter(rec.status for rec in recs)
        abandoned = sum(1 for r in recs if r.status == "error" and is_abandoned(r.error))
        diverged = sum(1 for rec in recs if rec.diverged)
        live = len(recs) - abandoned
        pending = by["pending"] + max(0, self.total - live)
        failed = by["error"] - abandoned
        return Counts(
            self.total,
            by["done"],
            by["running"],
            failed,
            diverged,
            pending,
            abandoned,
            stopped=by["stopped"],
            interrupted=by["interrupted"],
        )

    def flush(self, *, force: bool = False) -> bool:
        """Rewrite ``trials.parquet`` if anything changed; returns whether it wrote."""
        due = time.monotonic() - self._last_write >= self._interval_s
        if not self._dirty or not (force or due):
            return False
        started = time.monotonic()
        self.sdir.storage.write_bytes(self.sdir.trials_parquet, to_bytes(self.table()))
        self._dirty, self._last_write = False, time.monotonic()
        self._interval_s = max(self.min_interval_s, 50 * (self._last_write - started))
        return True

    def table(self) -> pa.Table:
        """Every trial as one row of ``trials.parquet`` (a trial's row is built again only
        when it changed)."""
        kinds = {**schema.TRIALS_HEAD, **self.ctx.param_types, **schema.TRIALS_TAIL}
        recs = sorted(self.trials.values(), key=lambda r: r.trial_id)
        for rec in recs:
            if rec.cells is None:
                rec.cells = self._cells(rec, kinds)
        columns = zip(*(rec.cells for rec in recs), strict=True) if recs else [()] * len(kinds)
        return pa.table({
            name: pa.array(list(values), type=ARROW_TYPES[kind])
            for (name, kind), values in zip(kinds.items(), columns, strict=True)
        })  # fmt: skip

    def _cells(self, rec: TrialRecord, kinds: Mapping[str, str]) -> tuple[Any, ...]:
        row = {
            "study": self.ctx.study,
            "trial_id": rec.trial_id,
            "status": rec.status,
            "diverged": rec.diverged,
            "attempts": rec.attempts,
            "error": rec.error,
            "config": json.dumps(rec.config, sort_keys=True),
            "epochs_done": rec.epochs_done,
            "failed_runs": rec.failed_runs,
            "updated_at": rec.updated_at,
            **rec.params,
        }
        return tuple(cell(row.get(name), kind) for name, kind in kinds.items())


def is_abandoned(error: str | None) -> bool:
    """Whether a trial's error text marks it abandoned (see :class:`Counts`)."""
    return bool(error) and str(error).startswith(ABANDONED)


def last_line(error: str | None) -> str:
    """The last non-empty line of an error text (the exception and its message)."""
    lines = (error or "").strip().splitlines()
    return lines[-1].strip() if lines else "failed"
