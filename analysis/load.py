"""Read a study directory (docs/schema.md) into tidy pandas frames.

Every ``*.parquet`` under ``metrics/`` is read whole (a few at once, string columns decoded
as dictionaries), brought to one schema checked against the contract, and deduplicated on
``(trial_id, epoch)`` keeping the row with the latest ``written_at``. A file that cannot be
read is named in an error naming it and the trials whose rows it held (or, with
``allow_missing=True``, a warning): nothing is dropped in silence.

:func:`load_results` takes three steps, which :mod:`analysis.live` takes too, on the files
new since its last look: :func:`list_and_read`, :func:`metrics_rows` (the rows as
:class:`Rows`: :func:`target_schema`, :func:`conformed`, :func:`to_frame`) and
:func:`assemble` (the trials joined, the warnings, the :class:`StudyResults`).

The cost is about a millisecond per file plus the rows: the orchestrator merges finished
trials into large part files, so a study's files number a few per running trial.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis.blocks import Blocks, sorted_categories
from studyfiles import InputError, Storage, StudyDir, schema
from studyfiles.errors import first_line
from studyfiles.plan import Plan, UnreadablePlan
from studyfiles.tables import latest_rows, read_parquet

if TYPE_CHECKING:
    from analysis.depth import LayerTable

_READERS = min(8, os.cpu_count() or 1)  # files read at once (reading releases the GIL)
LISTINGS = 3  # listings of metrics/ tried while a running study moves files under it
DECODE_AS_DICTIONARY = 4096  # rows from which a file's strings are decoded as dictionaries


class ResultsError(ValueError):
    """A study directory that cannot be analysed; the message names the file or column."""


@dataclass
class StudyResults:
    """A loaded study.

    Attributes:
        meta: ``study.json`` as a dict.
        metrics: one row per ``(trial_id, epoch)``, sorted by trial then epoch, with the trial's
            ``trial_status`` and ``trial_attempts`` joined from ``trials.parquet``. String
            columns (``trial_id``, ``study``, hashes, labels, ``trial_status``) are pandas
            categoricals, decoded straight from Parquet's dictionaries; their categories are
            the values present, sorted, so the same rows give the same frame whichever files
            held them. Categoricals are a saving, in memory more than in time: on the 1M-row
            benchmark the frame takes about 250 MB, against 350 MB with pyarrow-backed
            strings and 650 MB with Python strings (the pandas 2 default); loading and the
            aggregations differ by under 0.1 s. Group by them with ``observed=True``.
        trials: ``trials.parquet`` (derived from the metrics when that file is unreadable).
        warnings: every problem met while reading, each naming its file.
        sweep_params: the dotted keys the study varies (seed included).
        path: the study directory as given (absolute for a local path).
        n_files: metrics files read; n_duplicates: rows dropped as superseded.
        refuse_unreadable: whether a layers file that cannot be read makes :attr:`layers`
            raise (as :func:`load_results` does for metrics files unless ``allow_missing``)
            rather than warn.

    A study a live refresh made (:mod:`analysis.live`) is given its rows as
    :class:`JoinedRows`, held in blocks: ``metrics`` is made from them when first read
    (once, under a lock), so a refresh that changed one block does not copy the others
    for a reader that asks for the frame later, or never.
    """

    meta: dict
    metrics: pd.DataFrame  # or JoinedRows: made into the frame when first read
    trials: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    sweep_params: list[str] = field(default_factory=list)
    path: str = ""
    n_files: int = 0
    n_duplicates: int = 0
    refuse_unreadable: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.metrics, JoinedRows):  # read through __getattr__ until made
            self.__dict__["_joined"] = self.__dict__.pop("metrics")

    def __getattr__(self, name: str) -> Any:
        joined = self.__dict__.get("_joined")
        if name != "metrics" or joined is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        frame = joined.frame()
        self.__dict__["metrics"] = frame
        return frame

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def seed_param(self) -> str:
        return str(self.meta.get("seed_param", schema.SEED_PARAM))

    @cached_property
    def hyper_params(self) -> list[str]:
        """Swept keys other than the seed that take more than one value."""
        keys = [p for p in self.sweep_params if p != self.seed_param and p in self.metrics]
        return [p for p in keys if self.metrics[p].nunique(dropna=True) > 1]

    @cached_property
    def plan(self) -> Plan:
        """The study's analysis plan, as its spec hash covers it: ``study.json``'s
        ``spec.analysis``, or the defaults where ``spec`` has none (docs/schema.md: the
        resolved spec leaves the default plan out); its ``plan`` is a copy, checked against
        that. Without a ``spec``: ``plan``, else the defaults (a study made before plans).

        A plan that cannot be read is an :class:`~studyfiles.plan.UnreadablePlan`, from
        which every analysis departs (its results are exploratory), with a warning.
        """
        spec, copy = self.meta.get("spec"), self.meta.get("plan")
        hashed = isinstance(spec, dict)
        try:
            plan = Plan.from_mapping(spec.get("analysis") if hashed else copy)
        except InputError as err:
            where = "spec.analysis" if hashed else "plan"
            self.warnings.append(f"study.json: its analysis plan ({where}) is unreadable "
                                 f"({err}); every result is exploratory")  # fmt: skip
            return UnreadablePlan()
        if hashed and copy is not None:
            self._check_copy(plan, copy)
        return plan

    def _check_copy(self, plan: Plan, copy: Any) -> None:
        """Warn when ``study.json``'s ``plan`` is not the plan its spec holds."""
        try:
            differences = plan.differences(Plan.from_mapping(copy))
        except InputError as err:
            differences = [f"unreadable: {err}"]
        if differences:
            self.warnings.append(
                "study.json: its plan differs from its spec's analysis table, which the spec "
                f"hash covers ({', '.join(differences)}); the spec's is used"
            )

    def measured(self, column: str) -> bool:
        """Whether any row holds a value for ``column`` (null means "not measured")."""
        return column in self.metrics and bool(self.metrics[column].notna().any())

    @cached_property
    def layers(self) -> LayerTable | None:
        """The study's layers table (docs/schema.md) joined to its trials, read when first
        asked for; None where the study measured no layers (:mod:`analysis.depth`).

        Raises:
            ResultsError: a layers file that cannot be read, with ``refuse_unreadable``.
        """
        from analysis.depth import read_layers  # it builds on this module

        return read_layers(self)


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


@dataclass
class Rows:
    """A study's metrics rows before the trials are joined.

    Attributes:
        blocks: one row per ``(trial_id, epoch)``, sorted by both, held as blocks of whole
            trials (:class:`~analysis.blocks.Blocks`); text columns are categoricals.
        n_duplicates: rows dropped as superseded.
        warnings: what reading them met (no files, columns lacking, rows without keys).
        schema: the Arrow schema the files' rows were brought to (:func:`target_schema`).
    """

    blocks: Blocks
    n_duplicates: int
    warnings: list[str]
    schema: pa.Schema


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


def assemble(
    sdir: StudyDir,
    meta: dict,
    rows: Rows,
    trials: tuple[pd.DataFrame | None, str | None],
    bad: dict[str, str],
    n_files: int,
    *,
    allow: bool,
) -> StudyResults:
    """The study from its ``rows`` (left as they are), ``trials`` (:func:`read_trials`:
    where unreadable, derived from the rows) and the metrics files that could not be read,
    ``bad`` (path -> why), refused unless ``allow``; ``n_files`` metrics files in all.

    The warnings are made here, from what each block of rows knows of itself; the frame
    with the trials joined, when :attr:`StudyResults.metrics` is first read.

    Raises:
        ResultsError: ``bad`` files without ``allow``.
    """
    warnings = list(rows.warnings)
    blocks = rows.blocks
    table, note = trials
    if table is None:
        warnings.append(str(note))
        table = _derived_trials(blocks)
    reached = blocks.reached()
    if bad:
        _refuse_or_warn(bad, _rows_lost(table, reached), warnings, allow=allow)
    info = _trial_info(table, reached, warnings)
    if info is not None:
        _note_unfinished(info, reached, warnings)
    _check_provenance(blocks, meta, warnings)
    sweep = _sweep_params(meta, blocks, info, reached)
    metrics = JoinedRows(blocks, info)
    study = StudyResults(
        meta, metrics, table, warnings, sweep, sdir.location, n_files, rows.n_duplicates
    )
    _ = study.plan  # read now, so that a problem with it is among the warnings
    return study


class JoinedRows:
    """A study's metrics frame, made from its blocks when first asked for: the blocks read
    whole and each trial's status, attempts and sweep keys from ``trials.parquet`` joined
    to its rows (``info``: the trials by id; None joins nothing). Once made, the blocks are
    pointed at it (:meth:`~analysis.blocks.Blocks.rebase`): one copy of the rows is held."""

    def __init__(self, blocks: Blocks, info: pd.DataFrame | None) -> None:
        self._blocks, self._info = blocks, info
        self._frame: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def frame(self) -> pd.DataFrame:
        with self._lock:
            if self._frame is None:
                frame = self._blocks.frame()
                self._blocks.rebase(frame)
                if self._info is not None:
                    frame = _join_trials(frame, self._info)
                self._frame, self._info = frame, None
            return self._frame


def _derived_trials(blocks: Blocks) -> pd.DataFrame:
    keys = ["trial_id", *[c for c in blocks.columns if "." in c]]
    firsts = blocks.kept(("first rows", *keys), lambda f: f[keys].drop_duplicates("trial_id"))
    derived = pd.concat(firsts, ignore_index=True) if firsts else blocks.frame()[keys]
    derived = derived.reset_index(drop=True)
    derived["status"] = pd.Series([None] * len(derived), dtype="str")
    return derived


def _trial_info(
    trials: pd.DataFrame, reached: pd.Series | None, warnings: list[str]
) -> pd.DataFrame | None:
    """``trials`` by id, to be joined to the rows (None where it has no ``trial_id``);
    the trials with rows and no row there are named in ``warnings``."""
    if "trial_id" not in trials:
        warnings.append("trials.parquet has no trial_id column; trial status not joined")
        return None
    info = trials.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    orphans = sorted(reached.index.difference(info.index)) if reached is not None else []
    if orphans:
        shown = ", ".join(orphans[:5]) + (" …" if len(orphans) > 5 else "")
        warnings.append(f"{len(orphans)} trials have metrics but no row in trials.parquet: {shown}")
    return info


def _join_trials(metrics: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with each trial's values of ``info`` spread to its rows."""
    metrics = metrics.copy(deep=False)
    codes, uniques = pd.factorize(metrics["trial_id"])  # join per trial, then spread to rows
    uniques = np.asarray(uniques, dtype=object)
    pairs = [("status", "trial_status"), ("attempts", "trial_attempts")]
    pairs += [(c, c) for c in info if "." in c and c not in metrics]
    for src, dst in pairs:
        if src in info:
            metrics[dst] = _spread(info[src].reindex(uniques), codes)
    return metrics


def _spread(per_trial: pd.Series, codes: np.ndarray) -> pd.Categorical | np.ndarray:
    """A value per trial repeated on each of its rows (``codes``: each row's trial); text
    as a categorical."""
    if pd.api.types.is_numeric_dtype(per_trial.dtype):  # bool included
        return per_trial.to_numpy()[codes]
    values = pd.Categorical(per_trial)
    return pd.Categorical.from_codes(values.codes[codes], dtype=values.dtype)


def _rows_lost(trials: pd.DataFrame, reached: pd.Series | None) -> list[str]:
    """Trials whose readable rows stop short of the epoch ``trials.parquet`` records
    (``reached``: each trial's last epoch)."""
    if "epochs_done" not in trials or "trial_id" not in trials:
        return []
    lost = []
    for t, done in zip(trials["trial_id"], trials["epochs_done"], strict=True):
        got = reached.get(t) if reached is not None else None
        if pd.notna(done) and (got is None or pd.isna(got) or got < done):
            lost.append(str(t))
    return sorted(lost)


def _refuse_or_warn(
    bad: dict[str, str], lost: list[str], warnings: list[str], *, allow: bool
) -> None:
    """Name the unreadable files and the trials whose rows are missing: an error, or with
    ``allow`` a warning."""
    files = "; ".join(f"{path} ({why})" for path, why in sorted(bad.items()))
    shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
    trials = f"rows missing for {len(lost)} trials ({shown})" if lost else "rows of unknown trials"
    if not allow:
        raise ResultsError(
            f"unreadable metrics files: {files}; {trials}: gcnc resume runs them again, or "
            "--allow-missing analyses the rest"
        )
    warnings.append(f"unreadable metrics files skipped: {files}; {trials} left out")


_NOT_ENDED = ("running", "interrupted")


def _note_unfinished(info: pd.DataFrame, reached: pd.Series | None, warnings: list[str]) -> None:
    """Say which trials did not finish, each started one with the epoch its rows reach,
    and which the scheduler stopped early: every comparison leaves them out (only
    finished trials are compared, at their final epoch and at matched progress).
    ``info``: the trials by id (:func:`_trial_info`)."""
    if "status" not in info:
        return
    status = info["status"].astype("string")
    groups = [  # (trials, how they are described)
        (sorted(status.index[status.isin(_NOT_ENDED)]), "started and not ended"),
        (sorted(status.index[status == "error"]), "failed"),
    ]
    described = [
        f"{len(ids)} {label} ({_listed(ids, info, reached)})" for ids, label in groups if ids
    ]
    pending = int((status == "pending").sum())
    if pending:
        described.append(f"{pending} not started")
    unfinished = sum(len(ids) for ids, _ in groups) + pending
    if unfinished:
        warnings.append(
            f"{unfinished} of {len(info)} trials have not finished and are left out of "
            f"every comparison: {', '.join(described)}; gcnc resume finishes them"
        )
    stopped = sorted(status.index[status == "stopped"])
    if stopped:
        warnings.append(
            f"{len(stopped)} trial{'s were' if len(stopped) > 1 else ' was'} stopped early "
            "by the scheduler "
            f"({_listed(stopped, info, reached)}): left out of every comparison"
        )


def _listed(ids: list[str], info: pd.DataFrame, reached: pd.Series | None, limit: int = 5) -> str:
    shown = ", ".join(_at_epoch(t, info, reached) for t in ids[:limit])
    return shown + (f", … {len(ids) - limit} more" if len(ids) > limit else "")


def _at_epoch(trial_id: str, info: pd.DataFrame, reached: pd.Series | None) -> str:
    """``t00003 at epoch 20 of 40`` (the epochs from the trial's config, where known)."""
    epoch = reached.get(trial_id) if reached is not None else None
    if epoch is None or pd.isna(epoch):
        return f"{trial_id} with no rows"
    try:
        target = int(json.loads(info.at[trial_id, "config"])["train"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return f"{trial_id} at epoch {int(epoch)}"
    return f"{trial_id} at epoch {int(epoch)} of {target}"


def _check_provenance(blocks: Blocks, meta: dict, warnings: list[str]) -> None:
    expected = meta.get("spec_hash")
    if expected is None or "spec_hash" not in blocks.columns:
        return
    counts = blocks.kept(("values", "spec_hash"), _value_counts("spec_hash"))
    other = Counter()
    for each in counts:
        other.update({h: n for h, n in each.items() if h != expected})
    if other:
        hashes = ", ".join(sorted(other))
        warnings.append(f"{other.total()} metrics rows carry another spec hash ({hashes})")


def _sweep_params(
    meta: dict, blocks: Blocks, info: pd.DataFrame | None, reached: pd.Series | None
) -> list[str]:
    """The keys ``study.json`` declares swept; else (a study made before it declared them)
    the dotted columns of the rows, and of ``trials.parquet`` joined to them (``info``),
    that take more than one value."""
    declared = meta.get("sweep_params")
    if isinstance(declared, list):
        return [str(p) for p in declared]
    swept = []
    for c in (c for c in blocks.columns if "." in c):
        values = set().union(*blocks.kept(("values", c), lambda f, c=c: set(_value_counts(c)(f))))
        if len(values) > 1:
            swept.append(c)
    if info is not None and reached is not None:
        joined = info.reindex(pd.Index(reached.index, dtype=object))
        swept += [
            c for c in info if "." in c and c not in blocks.columns and joined[c].nunique() > 1
        ]
    return swept


def _value_counts(column: str):
    """A function of a block's rows: how many hold each value of ``column`` (nulls not)."""

    def counts(frame: pd.DataFrame) -> dict:
        held = frame[column].value_counts(dropna=True, sort=False)
        return {k: int(n) for k, n in held.items() if n}

    return counts
