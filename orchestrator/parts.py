"""Part files: the rows of many finished trials, merged by the driver into few files.

A finished trial's rows first land in ``metrics/trial_id=<id>/compacted.parquet``. Each
time :data:`MERGE_TRIALS` more trials have ended (and once more when a run ends), the
driver merges the finished trials into ``metrics/part-<hex>.parquet`` files of at most
:data:`PART_ROWS` rows, sorted by ``(trial_id, epoch)``, a trial's rows never split between
two parts. A part that is not full yet is merged again with the next trials, so a study
ends up in few files of similar size.

A merge writes its new parts first and removes its inputs after, and every row keeps its
``written_at``: a merge stopped anywhere leaves each row readable, at worst twice with the
same values (the reader's dedup keeps one), and the next merge takes every copy in again
and leaves one. Each part names its trials in its key-value metadata (``gcnc.trials``),
so whether a trial was merged is read from the parts' footers, without listing trial folders.

The layers table (``layers/``) is merged the same way, by its own calls (``table="layers"``),
its rows sorted by ``(trial_id, epoch, layer)``.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from studyfiles import StudyDir
from studyfiles.layout import COMPACTED, METRICS_TABLE, PARTS_TRIALS_KEY, is_part, trial_of_folder
from studyfiles.schema import TABLE_KEYS
from studyfiles.storage import Storage
from studyfiles.tables import concat, latest_rows, read_parquet, write_verified

MERGE_TRIALS = 64  # finished trials that wait before the driver merges them
PART_ROWS = 100_000  # rows a part holds at most (unless one trial has more)
FULL = 0.9  # a part with fewer rows than this fraction of PART_ROWS takes more trials
_RETRIES = 3  # reads of files that a merge may remove meanwhile
T = TypeVar("T")


@dataclass(frozen=True)
class Part:
    """A part file: its path, the trials it holds and its number of rows."""

    path: str
    trials: frozenset[str]
    rows: int


def retrying(read: Callable[[], T]) -> T:
    """``read()``, again if a file it lists is removed before it is read (by a merge that
    wrote the file's rows elsewhere first)."""
    for _ in range(_RETRIES - 1):
        with contextlib.suppress(FileNotFoundError):
            return read()
    return read()


def list_parts(sdir: StudyDir, *, table: str = METRICS_TABLE) -> list[Part]:
    """Every part of the study's ``table`` whose footer can be read."""
    return retrying(lambda: _list_parts(sdir, table))


def _list_parts(sdir: StudyDir, table: str) -> list[Part]:
    paths = sdir.storage.files(sdir.table(table), suffix=".parquet", recursive=False)
    found = [_part(sdir.storage, path) for path in paths if is_part(path)]
    return [p for p in found if p is not None]


def _part(storage: Storage, path: str) -> Part | None:
    """A part's footer; None for a file whose footer cannot be read (readers name it)."""
    try:
        with storage.fs.open_input_file(path) as source:
            meta = pq.read_metadata(source)
        trials = json.loads((meta.metadata or {}).get(PARTS_TRIALS_KEY.encode(), b"[]"))
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException, ValueError):
        return None
    return Part(path, frozenset(trials), meta.num_rows)


def merged_rows(sdir: StudyDir, trial_id: str, *, table: str = METRICS_TABLE) -> pa.Table | None:
    """The rows of ``trial_id`` held by parts of ``table``, or None if no part holds it."""

    def read() -> pa.Table | None:
        holders = [p for p in _list_parts(sdir, table) if trial_id in p.trials]
        tables = [_trial_rows(sdir.storage, p.path, trial_id) for p in holders]
        return concat(tables) if tables else None

    return retrying(read)


def _trial_rows(storage: Storage, path: str, trial_id: str) -> pa.Table:
    """One trial's rows of a part, reading only the row groups that may hold them."""
    with storage.fs.open_input_file(path) as source:
        file = pq.ParquetFile(source)
        column = file.schema_arrow.get_field_index("trial_id")
        groups = [
            i
            for i in range(file.num_row_groups)
            if _may_hold(file.metadata.row_group(i).column(column).statistics, trial_id)
        ]
        table = file.read_row_groups(groups, use_threads=False)
    return table.filter(pc.equal(table["trial_id"], trial_id)).replace_schema_metadata(None)


def _may_hold(stats: pq.Statistics | None, value: str) -> bool:
    if stats is None or not stats.has_min_max:
        return True
    return stats.min <= value <= stats.max


@dataclass
class _Plan:
    """What one merge reads: parts to rewrite and trial folders' files."""

    parts: list[Part]
    folders: dict[str, list[str]]  # trial id -> its files


def merge_finished(
    sdir: StudyDir,
    *,
    min_trials: int = 1,
    part_rows: int = PART_ROWS,
    table: str = METRICS_TABLE,
) -> int:
    """Merge finished trials' rows of ``table`` into parts, if at least ``min_trials``
    trials wait.

    A trial waits when its folder holds ``compacted.parquet`` or when a part already holds
    it (files left by a merge that stopped, or a row written after the trial ended).

    Args:
        sdir: the study directory.
        min_trials: merge only when this many trials wait (parts that share a trial, left
            by a merge that stopped, are merged regardless).
        part_rows: the most rows of one part.
        table: ``"metrics"`` or ``"layers"``.

    Returns:
        The number of trials whose folders were merged.
    """
    plan = _plan(sdir, table, min_trials=min_trials, part_rows=part_rows)
    if plan is None:
        return 0
    tables, read_parts, read_files = [], [], {}
    for part in plan.parts:
        found = _try_read(sdir.storage, [part.path])
        if found is not None:
            tables.append(found)
            read_parts.append(part)
    for trial_id, files in plan.folders.items():
        found = _try_read(sdir.storage, files)  # a trial with an unreadable file stays put
        if found is not None:
            tables.append(found)
            read_files[trial_id] = files
    if not read_files and len(read_parts) < 2:
        return 0
    merged = concat([t.replace_schema_metadata(None) for t in tables])
    rows, _ = latest_rows(merged, key=TABLE_KEYS[table])
    for chunk in _chunks(rows, part_rows):
        trials = _trial_ids(chunk)
        path = sdir.part_file(uuid.uuid4().hex[:16], table=table)
        write_verified(sdir.storage, path, chunk, metadata={PARTS_TRIALS_KEY: json.dumps(trials)})
    _remove(sdir, read_parts, read_files)  # only now: every row is in the new parts, verified
    return len(read_files)


def _plan(sdir: StudyDir, table: str, *, min_trials: int, part_rows: int) -> _Plan | None:
    files = sdir.storage.files(sdir.table(table), suffix=".parquet")
    folders: dict[str, list[str]] = {}
    for path in files:
        trial_id = trial_of_folder(path)
        if trial_id is not None:
            folders.setdefault(trial_id, []).append(path)
    parts = list_parts(sdir, table=table)
    merged = [t for p in parts for t in p.trials]
    held = set(merged)
    waiting = {
        t: fs
        for t, fs in folders.items()
        if t in held or any(posixpath.basename(f) == COMPACTED for f in fs)
    }
    shared = len(merged) != len(held)  # a stopped merge left two copies
    if len(waiting) < min_trials and not shared:
        return None
    return _Plan(_parts_to_rewrite(parts, waiting, part_rows), waiting)


def _parts_to_rewrite(parts: Sequence[Part], waiting: Iterable[str], part_rows: int) -> list[Part]:
    """Parts not yet full, parts holding a waiting trial, and every part sharing a trial
    with one of those (so that after the merge each trial is in one part)."""
    trials = set(waiting)
    chosen = [p for p in parts if p.rows < FULL * part_rows or p.trials & trials]
    trials |= {t for p in chosen for t in p.trials}
    grew = True
    while grew:
        more = [p for p in parts if p not in chosen and p.trials & trials]
        chosen += more
        trials |= {t for p in more for t in p.trials}
        grew = bool(more)
    return chosen


def _try_read(storage: Storage, files: Sequence[str]) -> pa.Table | None:
    try:
        return concat([read_parquet(storage, f) for f in files])
    except (OSError, pa.ArrowException):
        return None


def _chunks(rows: pa.Table, part_rows: int) -> list[pa.Table]:
    """``rows`` (sorted by trial) cut between trials into tables of at most ``part_rows``
    rows (a trial with more rows is a table of its own)."""
    ids = rows["trial_id"].combine_chunks().dictionary_encode().indices.to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])  # each trial's first row
    ends = [*starts[1:], rows.num_rows]
    chunks, begin = [], 0
    for start, end in zip(starts, ends, strict=True):
        if end - begin > part_rows and start > begin:
            chunks.append(rows.slice(begin, start - begin))
            begin = start
    chunks.append(rows.slice(begin))
    return chunks


def _trial_ids(table: pa.Table) -> list[str]:
    return sorted(pc.unique(table["trial_id"]).to_pylist())


def _remove(sdir: StudyDir, parts: Sequence[Part], folders: dict[str, list[str]]) -> None:
    for part in parts:
        sdir.storage.delete(part.path)
    for files in folders.values():
        for path in files:
            sdir.storage.delete(path)
        if files:
            sdir.storage.remove_empty_folder(posixpath.dirname(files[0]))
