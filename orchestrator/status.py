"""``gcnc status``: a study's progress from its directory alone (no Ray)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from orchestrator.book import is_abandoned
from orchestrator.lock import describe, live_holder
from orchestrator.parquet import concat, read_parquet
from orchestrator.space import trial_count
from orchestrator.spec import Study
from orchestrator.studydir import StudyDir


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


def count_rows(sdir: StudyDir) -> tuple[int, int]:
    """Distinct ``(trial_id, epoch)`` keys under ``metrics/``, and trials with any row."""
    tables = []
    for path in sdir.storage.files(sdir.metrics, suffix=".parquet"):
        with sdir.storage.fs.open_input_file(path) as source:
            file = pq.ParquetFile(source)
            tables.append(file.read(columns=["trial_id", "epoch"], use_threads=False))
    if not tables:
        return 0, 0
    keys = concat(tables).group_by(["trial_id", "epoch"]).aggregate([])
    return keys.num_rows, len(pc.unique(keys["trial_id"]))


def read_status(sdir: StudyDir) -> StudyStatus:
    """The status of the study at ``sdir``, read from its files."""
    info = sdir.read_info()
    trials: list[dict[str, Any]] = []
    if sdir.storage.is_file(sdir.trials_parquet):
        trials = read_parquet(sdir.storage, sdir.trials_parquet).to_pylist()
    abandoned = [t for t in trials if t["status"] == "error" and is_abandoned(t["error"])]
    live = [t for t in trials if t not in abandoned]
    by_status = Counter(str(t["status"]) for t in live)
    try:
        total = max(trial_count(Study.model_validate(info["spec"])), len(live))
    except (ValidationError, KeyError, TypeError):
        total = len(live)
    by_status["pending"] += total - len(live)
    rows, with_rows = count_rows(sdir)
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
    )


def format_status(st: StudyStatus) -> str:
    """Human-readable lines."""
    get = st.by_status.get
    lines = [
        f"study {st.name} ({st.spec_hash}) at {st.location}",
        f"trials: {st.total} — {get('done', 0)} done, {get('running', 0)} running, "
        f"{get('error', 0)} failed, {get('pending', 0)} pending; {st.diverged} diverged"
        + (f"; {st.abandoned} abandoned" if st.abandoned else ""),
        f"rows: {st.rows} metrics rows from {st.trials_with_rows} trials",
    ]
    if st.driver is not None:
        lines.append(f"driver: running ({st.driver})")
    elif get("running", 0) or get("pending", 0) or get("error", 0):
        lines.append(f"driver: none (finish it with: gcnc resume {st.location})")
    if get("running", 0) and st.driver is None:
        lines.append("(running as last recorded; a stopped driver leaves trials marked running)")
    lines += failure_lines(st.errors, limit=10)
    return "\n".join(lines)


def failure_lines(errors: dict[str, str | None], *, limit: int) -> list[str]:
    """``  <trial id>: <last line of its error>`` for the first ``limit`` failed trials."""
    lines = []
    for trial_id, error in sorted(errors.items())[:limit]:
        last = (error or "").strip().splitlines()
        lines.append(f"  {trial_id}: {last[-1] if last else 'failed'}")
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return lines
