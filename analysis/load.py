"""Read a study directory (docs/schema.md) into tidy pandas frames.

Every ``*.parquet`` under ``metrics/`` is read whole (a few at once, string columns decoded
as dictionaries), brought to one schema checked against the contract, and deduplicated on
``(trial_id, epoch)`` keeping the row with the latest ``written_at``. A file that cannot be
read is named in an error naming it and the trials whose rows it held (or, with
``allow_missing=True``, a warning): nothing is dropped in silence.

:func:`load_results` takes three steps, which :mod:`analysis.live` takes too, on the files
new since its last look: :func:`list_and_read`, :func:`metrics_rows` (the rows as
:class:`~analysis.study.Rows`: :func:`target_schema`, :func:`conformed`, :func:`to_frame`)
and :func:`~analysis.study.assemble` (the trials joined, the warnings, the
:class:`~analysis.study.StudyResults`, which this module gives its readers as its own).

The cost is about a millisecond per file plus the rows: the orchestrator merges finished
trials into large part files, so a study's files number a few per running trial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis.blocks import Blocks, sorted_categories
from analysis.study import ResultsError, Rows, StudyResults, assemble
from studyfiles import InputError, Storage, StudyDir, schema
from studyfiles.errors import first_line
from studyfiles.tables import latest_rows, read_parquet

_READERS = min(8, os.cpu_count() or 1)  # files read at once (reading releases the GIL)
LISTINGS = 3  # listings of metrics/ tried while a running study moves files under it
DECODE_AS_DICTIONARY = 4096  # rows from which a file's strings are decoded as dictionaries


def load_results(path_or_uri: str, *, allow_missing: bool = False) -> StudyResults:
    """Load a study directory from a local path or a ``pyarrow.fs`` URI.

    Args:
        path_or_uri: the study directory.
        allow_missing: go on without the rows of metrics files that cannot be read (named
            in the warnings, with the trials whose rows they held) instead of refusing; the
            same for layers files, when :attr:`StudyResults.layers` reads them.

    Raises:
        ResultsError: no ``study.json``, a required column missing, a column of the wrong
            type, or (unless ``allow_missing``) a metrics file that cannot be read.
    """
    sdir = study_dir(path_or_uri)
    meta = read_meta(sdir)
    listing, results = list_and_read(sdir)
    bad = {p: reason(r) for p, r in zip(listing, results, strict=True) if isinstance(r, str)}
    good = [(p, r) for p, r in zip(listing, results, strict=True) if not isinstance(r, str)]
    del results  # ``good`` holds the tables now, and metrics_rows lets them go
    rows = metrics_rows(good, meta, listed=len(listing), where=metrics_location(sdir))
    trials, note = read_trials(sdir)
    study = assemble(sdir, meta, rows, (trials, note), bad, len(listing), allow=allow_missing)
    study.refuse_unreadable = not allow_missing  # its layers table, read when asked for
    _ = study.metrics  # a full load hands back its frame made
    return study


# The steps of load_results, which analysis.live takes too: list and read the files, bring
# the rows to one schema and deduplicate them (Rows), then join the trials (assemble).


def study_dir(path_or_uri: str | os.PathLike) -> StudyDir:
    try:
        return StudyDir(Storage.open(os.fspath(path_or_uri)))
    except InputError as exc:
        raise ResultsError(exc.problem) from None


def read_meta(sdir: StudyDir) -> dict:
    """``study.json``. Raises :class:`ResultsError` where it is missing or unreadable."""
    where = sdir.storage.child("study.json").location
    if not sdir.exists():
        raise ResultsError(f"not a study directory: {where} is missing")
    try:
        meta = json.loads(sdir.storage.read_bytes(sdir.study_json))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{where} is not readable JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ResultsError(f"{where} must hold a JSON object")
    return meta


def metrics_location(sdir: StudyDir) -> str:
    return sdir.storage.child("metrics").location


def listing(sdir: StudyDir) -> dict[str, tuple]:
    """Every metrics file (path -> size and modification time), sorted by path; names
    starting with ``.`` or ``_`` are not data (as :meth:`studyfiles.Storage.files`). A
    folder removed while it is listed (a trial's, merged) sends the listing back to the
    start (:data:`LISTINGS` times at most)."""
    selector = pafs.FileSelector(sdir.metrics, recursive=True, allow_not_found=True)
    for attempt in range(LISTINGS):
        try:
            infos = sdir.storage.fs.get_file_info(selector)
            break
        except FileNotFoundError:
            if attempt == LISTINGS - 1:
                raise
    files = (i for i in infos if i.type == pafs.FileType.File)
    data = (i for i in files if i.base_name.endswith(".parquet") and i.base_name[0] not in "._")
    return {i.path: (i.size, i.mtime_ns) for i in sorted(data, key=lambda i: i.path)}


def list_and_read(sdir: StudyDir) -> tuple[dict[str, tuple], list[pa.Table | str]]:
    """The metrics files (:func:`listing`) and each one read (:func:`read_files`). A live
    study moves rows into new files as it runs: where a file vanished while it was read,
    its rows are in a file this listing missed, so ``metrics/`` is listed and read again
    (:data:`LISTINGS` times at most; then the vanished file is named as unreadable)."""
    for _ in range(LISTINGS):
        files = listing(sdir)
        results = read_files(sdir.storage.fs, list(files))
        if not vanished(sdir.storage.fs, files, results):
            break
    return files, results


def read_files(fs: pafs.FileSystem, paths: list[str]) -> list[pa.Table | str]:
    """Each file's table, or why it cannot be read (:func:`_read_file`), a few at once."""
    if len(paths) < 2:
        return [_read_file(fs, p) for p in paths]
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        return list(pool.map(lambda path: _read_file(fs, path), paths))


def vanished(fs: pafs.FileSystem, paths: Iterable[str], results: list[pa.Table | str]) -> bool:
    """Whether a file that could not be read is gone (rolled up or merged by a driver)."""
    failed = [p for p, r in zip(paths, results, strict=True) if isinstance(r, str)]
    return any(i.type == pafs.FileType.NotFound for i in fs.get_file_info(failed))


def reason(result: str) -> str:
    """Why a file could not be read, in one line."""
    return result.splitlines()[0]


def _read_file(fs, path: str) -> pa.Table | str:
    """One file, or why it cannot be read. A large file's string columns are decoded as
    dictionaries; a small file's plainly (they are encoded after, all small files at once)."""
    try:
        with fs.open_input_file(path) as fh:
            file = pq.ParquetFile(fh)
            if file.metadata.num_rows >= DECODE_AS_DICTIONARY:
                strings = [c.path for c in file.metadata.schema if c.logical_type.type == "STRING"]
                file = pq.ParquetFile(fh, metadata=file.metadata, read_dictionary=strings)
            return file.read(use_threads=False).replace_schema_metadata(None)
    except (OSError, pa.ArrowException) as exc:
        return f"{type(exc).__name__}: {exc}"


def metrics_rows(good: list[tuple[str, pa.Table]], meta: dict, *, listed: int, where: str) -> Rows:
    """The rows of the readable metrics files ``good`` (path, table, by path; emptied
    here, so that converting the rows frees them as it goes), of ``listed`` files found
    under ``where``.

    Raises:
        ResultsError: a required column missing, or a column of the wrong type.
    """
    warnings = [] if listed else [f"no metrics files under {where}"]
    if not good:
        table = _empty_metrics(meta)
        empty = table.schema
        frame, n_dup = to_frame(table, warnings)
        return Rows(Blocks.of(frame, empty), n_dup, warnings, empty)
    big = [t for _, t in good if t.num_rows >= DECODE_AS_DICTIONARY]
    small = [t for _, t in good if t.num_rows < DECODE_AS_DICTIONARY]
    small = [_concat(small, good)] if small else []  # strings read plainly: encoded at once
    target = target_schema([t.schema for t in (*big, *small)], good, warnings)
    good.clear()
    frame, n_dup = to_frame(conformed(big, small, target), warnings)
    return Rows(Blocks.of(frame, target), n_dup, warnings, target)


def _concat(tables: list[pa.Table], files: list[tuple[str, pa.Table]]) -> pa.Table:
    """The tables, columns matched by name; if their types disagree, two of the ``files``
    (path, table) that disagree are named."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise ResultsError(f"metrics files disagree on column types: {_conflict(files)}") from exc


def target_schema(
    schemas: list[pa.Schema], files: list[tuple[str, pa.Table | pa.Schema]], warnings: list[str]
) -> pa.Schema:
    """The schema every file's rows are brought to: the ``schemas`` unified (columns in
    order of first appearance), checked, with the fixed columns they lack added (named in
    ``warnings``), floats as float64, all-null columns typed as the schema says and strings
    as dictionaries (pandas gets categoricals).

    Raises:
        ResultsError: types that disagree (naming two of the ``files``: path, table or
            schema), a required column missing, or a column of the wrong type.
    """
    try:
        unified = pa.unify_schemas([plain_schema(s) for s in schemas], promote_options="permissive")
    except pa.ArrowException as exc:
        raise ResultsError(f"metrics files disagree on column types: {_conflict(files)}") from exc
    names = set(unified.names)
    missing = [c for c in (*schema.REQUIRED, *schema.ALWAYS_PARAMS) if c not in names]
    if missing:
        raise ResultsError(f"metrics files lack required columns: {', '.join(missing)}")
    for f in unified:
        kind = schema.kind_of(f.name)
        if kind is not None and not schema.accepts(kind, f.type):
            raise ResultsError(f"metrics column {f.name!r} has type {f.type}, expected {kind}")
    fixed = schema.fixed_columns()
    absent = [c for c in fixed if c not in names]
    if absent:
        warnings.append(f"metrics files lack columns (read as not measured): {', '.join(absent)}")
    fields = [*unified, *(pa.field(c, schema.ARROW_TYPES[fixed[c]]) for c in absent)]
    return pa.schema([pa.field(f.name, _target_type(f)) for f in fields])


def plain_schema(s: pa.Schema) -> pa.Schema:
    """``s`` without metadata, its text columns (dictionaries too) as ``string``."""
    if not any(pa.types.is_dictionary(f.type) or _is_text(f.type) for f in s) and not s.metadata:
        return s
    return pa.schema([pa.field(f.name, _plain(f.type)) for f in s])


def _plain(t: pa.DataType) -> pa.DataType:
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.string() if _is_text(t) else t


def _target_type(f: pa.Field) -> pa.DataType:
    kind = schema.kind_of(f.name)
    t = f.type
    if kind is not None and (pa.types.is_null(t) or (kind == "double" and t != pa.float64())):
        t = schema.ARROW_TYPES[kind]
    return _TEXT if _is_text(t) else t


_TEXT = pa.dictionary(pa.int32(), pa.string())  # text, as read_dictionary decodes it


def conformed(big: list[pa.Table], small: list[pa.Table], target: pa.Schema) -> pa.Table:
    """Tables of files brought to ``target`` and concatenated: ``big`` ones, read with
    dictionaries, one by one; ``small`` ones, read plainly, concatenated first."""
    if len(small) > 1:
        small = [pa.concat_tables(small, promote_options="permissive")]
    tables = [_conform(t, target) for t in (*big, *small)]
    return pa.concat_tables(tables).unify_dictionaries()


def _conform(table: pa.Table, target: pa.Schema) -> pa.Table:
    """``table`` with ``target``'s columns, in its order and of its types (absent: null)."""
    for i, f in enumerate(table.schema):
        want = target.field(f.name).type
        if f.type != want:
            column = table.column(i)
            column = (
                column.cast(_plain(f.type)).dictionary_encode()
                if want == _TEXT
                else column.cast(want)
            )
            table = table.set_column(i, f.name, column)
    for f in target:
        if f.name not in table.schema.names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    return table if table.schema.names == target.names else table.select(target.names)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _conflict(files: list[tuple[str, pa.Table | pa.Schema]]) -> str:
    """Name one column whose type differs between two files, with both files."""
    first: dict[str, tuple[str, pa.DataType]] = {}
    for path, table in files:
        for f in table if isinstance(table, pa.Schema) else table.schema:
            typ = _plain(f.type)
            if pa.types.is_null(typ):
                continue
            seen = first.setdefault(f.name, (path, typ))
            if seen[1] != typ and not (_numeric(seen[1]) and _numeric(typ)):
                return f"column {f.name!r} is {seen[1]} in {seen[0]} but {typ} in {path}"
    return "unknown column"


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _empty_metrics(meta: dict) -> pa.Table:
    """A metrics table with no rows: every fixed column, the hyperparameters and sweep keys."""
    cols = {c: pa.array([], schema.ARROW_TYPES[k]) for c, k in schema.fixed_columns().items()}
    for key in [*schema.ALWAYS_PARAMS, *meta.get("sweep_params", [])]:
        cols.setdefault(str(key), pa.array([], pa.float64()))
    return pa.table(cols)


def to_frame(table: pa.Table, warnings: list[str]) -> tuple[pd.DataFrame, int]:
    """The rows of ``table`` (unusable after) as a frame, one per ``(trial_id, epoch)``
    (:func:`_dedup`), categories sorted (:func:`sorted_categories`); and the rows dropped
    as superseded."""
    table, n_dup = _dedup(table, warnings)
    frame = table.to_pandas(self_destruct=True)  # frees each column once converted
    return sorted_categories(frame), n_dup


def _dedup(table: pa.Table, warnings: list[str]) -> tuple[pa.Table, int]:
    """One row per (trial_id, epoch) by the contract's rule (:func:`studyfiles.tables.
    latest_rows`); rows without either key are named and skipped."""
    valid = keyed(table)
    n_invalid = table.num_rows - pc.sum(valid).as_py() if table.num_rows else 0
    if n_invalid:
        warnings.append(unkeyed_warning(n_invalid))
        table = table.filter(valid)
    return latest_rows(table)


def keyed(table: pa.Table) -> pa.ChunkedArray:
    """Which rows have both keys, ``trial_id`` and ``epoch``."""
    return pc.and_(pc.is_valid(table["trial_id"]), pc.is_valid(table["epoch"]))


def unkeyed_warning(n: int) -> str:
    return f"{n} metrics rows without trial_id or epoch were skipped"


def read_trials(sdir: StudyDir) -> tuple[pd.DataFrame | None, str | None]:
    """``trials.parquet``, or None and why it could not be read."""
    where = sdir.storage.child("trials.parquet").location
    if not sdir.storage.is_file(sdir.trials_parquet):
        return None, f"{where} is missing; trials derived from the metrics"
    try:
        return read_parquet(sdir.storage, sdir.trials_parquet).to_pandas(), None
    except (OSError, pa.ArrowException) as exc:
        return None, f"{where} unreadable, trials derived from the metrics ({first_line(exc)})"
