"""``gcnc status``: a study's progress from its directory alone (no Ray)."""

from __future__ import annotations

import json
import math
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from orchestrator import damage
from orchestrator.book import is_abandoned, last_line
from orchestrator.lock import describe, live_holder
from orchestrator.search import trial_count
from orchestrator.spec import StudySpec
from studyfiles import InputError, StudyDir
from studyfiles.errors import first_line
from studyfiles.tables import concat, latest_rows, read_parquet
from studyfiles.target import search_target

_ROW_KEYS = ("trial_id", "epoch", "written_at", "diverged")  # what a trial's latest row needs


@dataclass(frozen=True)
class BestSoFar:
    """A search's best value of its metric so far, over every trial's latest row."""

    metric: str
    mode: str  # "min" or "max"
    trial_id: str | None = None  # None: no trial has a finite value yet
    value: float | None = None
    epoch: int | None = None
    params: tuple[tuple[str, Any], ...] = ()  # the searched keys and the trial's values
    status: str | None = None  # the trial's status in trials.parquet


@dataclass(frozen=True)
class StudyStatus:
    """What ``gcnc status`` prints."""

    name: str
    location: str
    spec_hash: str
    total: int
    by_status: dict[str, int]
    diverged: int
    rows: int
    trials_with_rows: int
    errors: dict[str, str]  # trial id -> last error, for trials that failed
    abandoned: int = 0  # searcher trials replaced after a killed run (see orchestrator.book)
    driver: str | None = None  # the live driver running the study, described
    repeated: frozenset[str] = frozenset()  # failed trials that failed in two runs or more
    short: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    # ^ trial id -> (last epoch, epochs) for trials started and not ended
    unreadable: dict[str, str] = field(default_factory=dict)  # metrics file -> why
    lost: list[str] = field(default_factory=list)  # ended trials whose rows are not readable
    best: BestSoFar | None = None  # a search's best trial so far (None: not a search)

    @property
    def resumable(self) -> int:
        """Trials a resume would run: not started, interrupted, or failed in one run only."""
        get = self.by_status.get
        once = len(set(self.errors) - self.repeated)
        return get("pending", 0) + get("interrupted", 0) + get("running", 0) + once


def count_rows(sdir: StudyDir) -> tuple[int, int]:
    """Distinct ``(trial_id, epoch)`` keys under ``metrics/``, and trials with any row (a
    file that cannot be read is left out)."""
    return _counts(damage.scan(sdir))


def _counts(found: damage.Scan) -> tuple[int, int]:
    if found.keys is None:
        return 0, 0
    keys = found.keys.group_by(["trial_id", "epoch"]).aggregate([])
    return keys.num_rows, len(pc.unique(keys["trial_id"]))


def read_status(sdir: StudyDir) -> StudyStatus:
    """The status of the study at ``sdir``, read from its files."""
    info = sdir.read_info()
    trials: list[dict[str, Any]] = []
    if sdir.storage.is_file(sdir.trials_parquet):
        try:
            trials = read_parquet(sdir.storage, sdir.trials_parquet).to_pylist()
        except (OSError, pa.ArrowException) as err:
            raise InputError(
                sdir.trials_parquet,
                f"unreadable ({first_line(err)})",
                f"gcnc resume {shlex.quote(sdir.location)} rebuilds it from the trials' rows",
            ) from None
    abandoned = [t for t in trials if t["status"] == "error" and is_abandoned(t["error"])]
    live = [t for t in trials if t not in abandoned]
    by_status = Counter(str(t["status"]) for t in live)
    try:
        total = max(trial_count(StudySpec.model_validate(info["spec"])), len(live))
    except (ValidationError, KeyError, TypeError):
        total = len(live)
    by_status["pending"] += total - len(live)
    found = damage.scan(sdir)
    rows, with_rows = _counts(found)
    lost = _rows_lost(found, live) if found.unreadable else []
    short = {
        t["trial_id"]: (t["epochs_done"], _epochs(t.get("config")))
        for t in live
        if t["status"] in ("running", "interrupted")
    }
    return StudyStatus(
        name=str(info.get("name")),
        location=sdir.location,
        spec_hash=str(info.get("spec_hash")),
        total=total,
        by_status=dict(by_status),
        diverged=sum(1 for t in live if t["diverged"]),
        rows=rows,
        trials_with_rows=with_rows,
        errors={t["trial_id"]: t["error"] for t in live if t["status"] == "error"},
        abandoned=len(abandoned),
        driver=describe(holder) if (holder := live_holder(sdir)) is not None else None,
        unreadable=found.unreadable,
        lost=lost,
        repeated=frozenset(
            t["trial_id"] for t in live if t["status"] == "error" and _failed_runs(t) >= 2
        ),
        short=short,
        best=read_best(
            sdir,
            info.get("spec"),
            statuses={t["trial_id"]: t["status"] for t in live},
            skip={t["trial_id"] for t in abandoned},
        ),
    )


def read_best(
    sdir: StudyDir, spec: Any, *, statuses: Mapping[str, str], skip: Iterable[str] = ()
) -> BestSoFar | None:
    """The best value of a search's metric in its trials' latest rows (None: not a search).

    Every trial's latest row counts, whether the trial ended or not, except those of the
    ``skip`` trials; a row without a finite value, or of a trial that diverged, does not.
    """
    target = search_target(spec)
    if target is None:
        return None
    metric, mode, params = target.metric, target.mode, target.params
    rows = latest_per_trial(sdir, [metric, *params])
    wanted = ["trial_id", "epoch", "diverged", metric, *params]
    held = [c for c in wanted if rows is not None and c in rows.column_names]
    records = rows.select(held).to_pylist() if rows is not None else []
    skip = set(skip)
    candidates = [
        r
        for r in records
        if r["trial_id"] not in skip and not r.get("diverged") and _finite(r.get(metric))
    ]
    if not candidates:
        return BestSoFar(metric, mode)
    sign = -1.0 if mode == "max" else 1.0
    best = min(candidates, key=lambda r: (sign * float(r[metric]), str(r["trial_id"])))
    return BestSoFar(
        metric,
        mode,
        trial_id=str(best["trial_id"]),
        value=float(best[metric]),
        epoch=int(best["epoch"]),
        params=tuple((p, best.get(p)) for p in params),
        status=statuses.get(best["trial_id"]),
    )


def latest_per_trial(sdir: StudyDir, columns: list[str]) -> pa.Table | None:
    """Each trial's latest row (its last epoch, as last written) with ``columns`` where the
    files hold them, from every readable metrics file (``damage.scan`` names the others)."""
    tables = []
    for path in sdir.storage.files(sdir.metrics, suffix=".parquet"):
        try:
            with sdir.storage.fs.open_input_file(path) as source:
                file = pq.ParquetFile(source)
                held = set(file.schema_arrow.names)
                names = [c for c in dict.fromkeys([*_ROW_KEYS, *columns]) if c in held]
                tables.append(file.read(columns=names, use_threads=False))
        except (OSError, pa.ArrowException):  # moved by a running driver, or unreadable
            continue
    if not tables:
        return None
    table = concat(tables)
    if not {"trial_id", "epoch", "written_at"} <= set(table.column_names):
        return None
    table = table.filter(pc.and_(pc.is_valid(table["trial_id"]), pc.is_valid(table["epoch"])))
    if table.num_rows == 0:
        return None
    table, _ = latest_rows(table)  # sorted by trial, then epoch
    trials = table["trial_id"].combine_chunks()
    if not pa.types.is_dictionary(trials.type):
        trials = trials.dictionary_encode()
    codes = trials.indices.to_numpy(zero_copy_only=False)
    return table.filter(pa.array(np.r_[codes[1:] != codes[:-1], True]))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _rows_lost(found: damage.Scan, trials: list[dict[str, Any]]) -> list[str]:
    """Trials recorded as ended (or under way) whose readable rows stop short of the epoch
    recorded for them."""
    reach = found.reach()
    lost = []
    for t in trials:
        done = t.get("epochs_done")
        if t["status"] in ("pending", "error") or done is None:
            continue
        got = reach.get(t["trial_id"])
        if got is None or (got.last_epoch < done and not got.diverged):
            lost.append(t["trial_id"])
    return sorted(lost)


def _failed_runs(trial: dict[str, Any]) -> int:
    return int(trial.get("failed_runs") or 0)  # absent from files of older versions


def _epochs(config: str | None) -> int | None:
    try:
        return int(json.loads(config or "{}")["train"]["epochs"])
    except (ValueError, KeyError, TypeError):
        return None


def format_status(st: StudyStatus) -> str:
    """Human-readable lines."""
    get = st.by_status.get
    stopped = f"{get('stopped', 0)} stopped early, " if get("stopped", 0) else ""
    interrupted = f"{get('interrupted', 0)} interrupted, " if get("interrupted", 0) else ""
    lines = [
        f"study {st.name} ({st.spec_hash}) at {st.location}",
        f"trials: {st.total} — {get('done', 0)} done, {stopped}{get('running', 0)} running, "
        f"{interrupted}{get('error', 0)} failed, {get('pending', 0)} pending; "
        f"{st.diverged} diverged" + (f"; {st.abandoned} abandoned" if st.abandoned else ""),
        f"rows: {st.rows} metrics rows from {st.trials_with_rows} trials",
    ]
    if st.best is not None:
        lines.append(best_line(st.best))
    if st.driver is not None:
        lines.append(f"driver: running ({st.driver})")
    else:
        lines.append("driver: none")
        if get("running", 0):
            lines.append("(running as last recorded: its driver stopped without saying)")
    lines += damage_lines(st, limit=5)
    lines += short_lines(st.short, limit=5, running=st.driver is not None)
    lines += failure_lines(st.errors, limit=10, repeated=st.repeated)
    if st.driver is None:
        lines += next_steps(st)
    return "\n".join(lines)


_UNFINISHED = {  # a trial's status -> how the best line says it stands
    "running": "still running",
    "interrupted": "interrupted",
    "stopped": "stopped early",
    "error": "failed",
}


def best_line(best: BestSoFar) -> str:
    """``best so far: test_acc = 0.912 at epoch 30, trial t00007 (train.lr=0.01, …)``, and
    how the trial stands where it has not finished."""
    if best.trial_id is None:
        return f"best so far: no {best.metric} value yet"
    params = ", ".join(f"{k}={_short(v)}" for k, v in best.params)
    line = (
        f"best so far: {best.metric} = {_short(best.value)} at epoch {best.epoch}, "
        f"trial {best.trial_id}" + (f" ({params})" if params else "")
    )
    return line + (f", {_UNFINISHED[best.status]}" if best.status in _UNFINISHED else "")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def damage_lines(st: StudyStatus, *, limit: int) -> list[str]:
    """The metrics files that cannot be read, and the trials whose rows they held."""
    if not st.unreadable:
        return []
    lines = ["unreadable metrics files (their rows are missing):"]
    lines += [f"  {path}: {why}" for path, why in sorted(st.unreadable.items())[:limit]]
    if st.lost:
        shown = ", ".join(st.lost[:limit]) + (
            f" and {len(st.lost) - limit} more" if len(st.lost) > limit else ""
        )
        lines.append(f"rows missing for {len(st.lost)} trials: {shown}")
    lines.append(
        f"gcnc resume {shlex.quote(st.location)} moves the files aside and runs those trials again"
    )
    return lines


def short_lines(
    short: dict[str, tuple[int | None, int | None]], *, limit: int, running: bool
) -> list[str]:
    """``  t00003: at epoch 20 of 40`` for trials started and not ended (not finished: the
    analysis leaves them out of final-epoch comparisons)."""
    if not short:
        return []
    head = "started, not ended:" if running else "interrupted (a resume continues them):"
    lines = [head]
    for trial_id, (epoch, epochs) in sorted(short.items())[:limit]:
        reached = "no epoch yet" if epoch is None else f"at epoch {epoch}"
        lines.append(f"  {trial_id}: {reached}" + (f" of {epochs}" if epochs else ""))
    if len(short) > limit:
        lines.append(f"  ... and {len(short) - limit} more")
    return lines


def failure_lines(
    errors: dict[str, str | None], *, limit: int, repeated: frozenset[str] = frozenset()
) -> list[str]:
    """``  <trial id>: <last line of its error>`` for the first ``limit`` failed trials."""
    lines = []
    for trial_id, error in sorted(errors.items())[:limit]:
        again = " (failed in every run so far)" if trial_id in repeated else ""
        lines.append(f"  {trial_id}: {last_line(error)}{again}")
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return lines


def next_steps(st: StudyStatus) -> list[str]:
    """How to go on: a resume where it can help; where only trials that failed in more than
    one run are left, what a resume would need first."""
    lines = []
    if st.resumable:
        lines.append(f"finish it with: gcnc resume {shlex.quote(st.location)}")
    if st.repeated:
        n = len(st.repeated)
        lines.append(
            f"{n} trial{'s' if n > 1 else ''} failed again when resumed; resuming helps only "
            "once the cause named above is fixed"
        )
    return lines
