"""A study directory read as it grows: each refresh reads only the files new or changed.

:class:`LiveStudy` loads a study as :func:`~analysis.load.load_results` does, through the
same steps (:mod:`analysis.load`), and keeps what it needs to take the next look cheaply:

- of each metrics file, its signature (path, size, modification time, from the listing),
  the trials whose rows it holds and its schema; and, for a small file (a running trial's
  per-epoch or rolled-up rows, a finished trial's compacted ones), its rows. A part file's
  rows live only in the snapshot's blocks: keeping them again would double the memory.
- the deduplicated rows, sorted by trial then epoch, held in blocks of whole trials
  (:class:`~analysis.blocks.Blocks`).

A refresh lists ``metrics/`` and reads the files whose signature is new (unreadable ones
are tried again). The trials those files hold, or held before they changed or vanished,
are *affected*: their rows are rebuilt from every file holding them (small files from
memory, a part read again only if it holds an affected trial and did not change, which a
running driver never causes) and put in place of their old rows in the blocks holding
them; the other blocks are kept as they are. The study is made from the blocks as
:func:`~analysis.load.assemble` makes it: its warnings now, from what each block knows of
its rows; its frame (the blocks read whole, the trials joined) when first read, once per
snapshot. Where the files' schema changes (a new column), every row is rebuilt from the
files.

A running driver moves rows between files (docs/schema.md); a file it removed is found
again in the listing: when a file vanished while it was read, or a file whose trials no
new file holds has gone, ``metrics/`` is listed again (as ``load_results`` does, three
times at most). A file that cannot be read is named, never raised: its rows are left out
as ``load_results(..., allow_missing=True)`` leaves them out, and the other files' rows
stay. So the snapshot is the study ``load_results`` gives for the same files, except that
a file whose column types disagree with the others' is named and left out instead of
refusing the whole study.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis import load
from analysis.blocks import Blocks
from analysis.load import ResultsError, StudyResults
from studyfiles.errors import first_line


@dataclass(frozen=True)
class Refresh:
    """What one look at a live study found.

    Attributes:
        changed: the snapshot differs from the last one.
        files_read: metrics files read by this refresh (new or changed ones, unreadable
            ones tried again; rarely, a part holding a trial whose other rows moved).
        files_total: metrics files in the study now.
        seconds: how long the refresh took.
        problem: a file that could not be read this time, named (not raised).
    """

    changed: bool
    files_read: int
    files_total: int
    seconds: float
    problem: str | None


@dataclass(frozen=True)
class _File:
    """What a live study keeps of one readable metrics file."""

    signature: tuple
    trials: frozenset[str]
    schema: pa.Schema  # its columns, text as plain strings (analysis.load.plain_schema)
    rows: int  # rows with both keys
    unkeyed: int  # rows without
    big: bool  # read with dictionaries (a part): its rows are not kept
    table: pa.Table | None  # a small file's rows; None for a big one


@dataclass(frozen=True)
class _State:
    """One snapshot and what it was made from."""

    study: StudyResults
    rows: load.Rows
    files: dict[str, _File]
    bad: dict[str, str]  # unreadable files: path -> why
    meta: dict
    trials: tuple[pd.DataFrame | None, str | None]
    inputs: tuple  # signatures of study.json and trials.parquet
    listed: int  # metrics files listed


class LiveStudy:
    """A study directory (a local path or any ``pyarrow.fs`` URI) read as it grows.

    Args:
        location: the study directory.
        allow_missing: at the first load, go on without unreadable metrics files (named in
            the warnings) instead of refusing; a refresh always goes on.

    Raises:
        ResultsError: the directory is not a study, or (at the first load) its files cannot
            be analysed, as :func:`~analysis.load.load_results` refuses them.
    """

    def __init__(self, location: str, *, allow_missing: bool = True) -> None:
        self._sdir = load.study_dir(location)
        self._schemas: list[pa.Schema] = []  # the distinct schemas met, shared by files
        inputs = self._inputs()
        meta = load.read_meta(self._sdir)
        listing, results = load.list_and_read(self._sdir)
        bad = {p: load.reason(r) for p, r in zip(listing, results, strict=True) if _failed(r)}
        good = [(p, r) for p, r in zip(listing, results, strict=True) if not _failed(r)]
        del results
        files = {p: self._file(listing[p], table) for p, table in good}
        rows = load.metrics_rows(good, meta, listed=len(listing), where=self._where)
        trials = load.read_trials(self._sdir)
        study = load.assemble(
            self._sdir, meta, rows, trials, bad, len(listing), allow=allow_missing
        )
        self._state = _State(study, rows, files, bad, meta, trials, inputs, len(listing))

    @property
    def study(self) -> StudyResults:
        """The latest snapshot: a new object after each refresh that changed it, swapped in
        at the refresh's end (one being made is never seen half made). Snapshots are not
        changed afterwards, so an earlier one stays valid."""
        return self._state.study

    def refresh(self) -> Refresh:
        """Look again: read what is new or changed and rebuild the snapshot from it."""
        start = time.perf_counter()
        try:
            state, n_read, problems = self._next(self._state)
        except (OSError, pa.ArrowException, ResultsError) as exc:
            seconds = time.perf_counter() - start
            problem = f"{self._sdir.location} could not be read: {first_line(exc)}"
            return Refresh(False, 0, self._state.listed, seconds, problem)
        changed = state is not self._state
        self._state = state
        problem = "; ".join(problems) or None
        return Refresh(changed, n_read, state.listed, time.perf_counter() - start, problem)

    # -- one look ------------------------------------------------------------------------

    def _next(self, state: _State) -> tuple[_State, int, list[str]]:
        """The state after one look (``state`` itself if nothing changed), the files read
        and the problems met."""
        problems: list[str] = []
        inputs = self._inputs()
        meta, trials = state.meta, state.trials
        if inputs[0] != state.inputs[0]:
            try:
                meta = load.read_meta(self._sdir)
            except ResultsError as exc:  # the last one kept, and read again next time
                problems.append(str(exc))
                inputs = (state.inputs[0], inputs[1])
        if inputs[1] != state.inputs[1]:
            trials = load.read_trials(self._sdir)
        listing, reads = self._list_and_read(state)
        files, bad, fresh = self._sorted_out(state, listing, reads)
        self._check_new(files, fresh, bad)
        gone = [p for p in state.files if files.get(p) is not state.files[p]]
        if inputs == state.inputs and bad == state.bad and not gone and not fresh:
            return state, len(reads), _named(bad, problems)
        affected = set().union(*(state.files[p].trials for p in gone))
        affected |= set().union(*(files[p].trials for p in fresh))
        tables = dict(fresh)
        n_read = len(reads) + self._read_holders(state, files, tables, bad, affected)
        rows = self._rows(state.rows, meta, files, tables, affected, len(listing))
        study = load.assemble(self._sdir, meta, rows, trials, bad, len(listing), allow=True)
        new = _State(study, rows, files, bad, meta, trials, inputs, len(listing))
        return new, n_read, _named(bad, problems)

    def _list_and_read(self, state: _State) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """The listing of ``metrics/`` and the files read (path -> signature, table or why
        not): those not known at their signature. Listed again (as
        :func:`~analysis.load.list_and_read`) while a file vanished as it was read, or one
        has gone whose trials no file read now holds: their rows are in a file this listing
        may have missed."""
        reads: dict[str, tuple] = {}
        known = set(state.files) | set(state.bad)
        for attempt in range(load.LISTINGS):
            listing = load.listing(self._sdir)
            todo = [p for p, sig in listing.items() if not _known(p, sig, state, reads)]
            results = load.read_files(self._sdir.storage.fs, todo)
            reads.update((p, (listing[p], r)) for p, r in zip(todo, results, strict=True))
            if attempt == load.LISTINGS - 1:
                break
            gone = known - set(listing)
            moved = load.vanished(self._sdir.storage.fs, todo, results)
            if not moved and not _unexplained(gone, state, reads):
                break
            known = set(listing)
        return listing, reads

    def _sorted_out(
        self, state: _State, listing: dict[str, tuple], reads: dict[str, tuple]
    ) -> tuple[dict[str, _File], dict[str, str], dict[str, pa.Table]]:
        """The readable files listed (known ones kept as they were), the unreadable ones
        (path -> why) and the tables read now."""
        files: dict[str, _File] = {}
        bad: dict[str, str] = {}
        fresh: dict[str, pa.Table] = {}
        for path, sig in listing.items():
            if path in reads and reads[path][0] == sig:
                result = reads[path][1]
                if _failed(result):
                    bad[path] = load.reason(result)
                else:
                    files[path], fresh[path] = self._file(sig, result), result
            else:
                files[path] = state.files[path]
        return files, bad, fresh

    def _check_new(
        self, files: dict[str, _File], fresh: dict[str, pa.Table], bad: dict[str, str]
    ) -> None:
        """Move to ``bad`` each new file whose column types the others' cannot take (where
        ``load_results`` would refuse the whole study)."""
        if not fresh:
            return
        try:
            load.target_schema(_distinct(files), list(_named_schemas(files)), [])
            return
        except ResultsError:
            pass
        ok = {id(f.schema): (p, f.schema) for p, f in files.items() if p not in fresh}
        for path in sorted(fresh):
            schema = files[path].schema
            named = [*ok.values(), (path, schema)]
            try:
                load.target_schema([s for _, s in named], named, [])
            except ResultsError as exc:
                bad[path] = str(exc)
                del files[path], fresh[path]
                continue
            ok.setdefault(id(schema), (path, schema))

    def _read_holders(
        self,
        state: _State,
        files: dict[str, _File],
        tables: dict[str, pa.Table],
        bad: dict[str, str],
        affected: set[str],
    ) -> int:
        """Read again the unchanged parts that the new rows need (those holding affected
        trials; all of them where the schema changed) into ``tables``; one that cannot be
        read now goes to ``bad``, its trials affected. Returns the files read."""
        n_read = 0
        while True:
            whole = not self._target(files, [])[0].equals(state.rows.schema)
            need = [
                p
                for p, f in files.items()
                if f.big and p not in tables and (whole or f.trials & affected)
            ]
            if not need:
                return n_read
            n_read += len(need)
            for path, result in zip(
                need, load.read_files(self._sdir.storage.fs, need), strict=True
            ):
                if _failed(result):
                    bad[path] = load.reason(result)
                    affected |= files.pop(path).trials
                else:
                    tables[path] = result

    def _target(self, files: dict[str, _File], warnings: list[str]) -> tuple[pa.Schema, list[str]]:
        target = load.target_schema(_distinct(files), list(_named_schemas(files)), warnings)
        return target, warnings

    def _rows(
        self,
        old: load.Rows,
        meta: dict,
        files: dict[str, _File],
        tables: dict[str, pa.Table],
        affected: set[str],
        listed: int,
    ) -> load.Rows:
        """The rows of ``files`` (``tables``: those of the parts they need), the last
        rows ``old`` kept for the trials not ``affected``, where the schema is the same."""
        if not files:
            return load.metrics_rows([], meta, listed=listed, where=self._where)
        warnings = [] if listed else [f"no metrics files under {self._where}"]
        target, _ = self._target(files, warnings)
        unkeyed = sum(f.unkeyed for f in files.values())
        if unkeyed:
            warnings.append(load.unkeyed_warning(unkeyed))
        if not target.equals(old.schema):  # every row brought to the new schema
            frame, _ = load.to_frame(_conformed(files, tables, None, target), [])
            blocks = Blocks.of(frame, target)
        elif affected:
            holders = {p: f for p, f in files.items() if f.trials & affected}
            new, _ = load.to_frame(_conformed(holders, tables, affected, target), [])
            blocks = old.blocks.replaced(new, affected)
        else:
            blocks = old.blocks
        n_dup = sum(f.rows for f in files.values()) - len(blocks)
        return load.Rows(blocks, n_dup, warnings, target)

    # -- helpers -------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return load.metrics_location(self._sdir)

    def _inputs(self) -> tuple:
        """Signatures of ``study.json`` and ``trials.parquet``."""
        paths = [self._sdir.study_json, self._sdir.trials_parquet]
        return tuple(
            (i.type, i.size, i.mtime_ns) for i in self._sdir.storage.fs.get_file_info(paths)
        )

    def _file(self, signature: tuple, table: pa.Table) -> _File:
        keyed = pc.sum(load.keyed(table)).as_py() or 0
        big = table.num_rows >= load.DECODE_AS_DICTIONARY
        schema = self._shared(load.plain_schema(table.schema))
        trials = _trials_in(table)
        return _File(
            signature, trials, schema, keyed, table.num_rows - keyed, big, None if big else table
        )

    def _shared(self, schema: pa.Schema) -> pa.Schema:
        """``schema``, as the first equal one met (files' schemas are compared by identity)."""
        for known in self._schemas:
            if known.equals(schema):
                return known
        self._schemas.append(schema)
        return schema


def _failed(result: pa.Table | str) -> bool:
    return isinstance(result, str)


def _known(path: str, signature: tuple, state: _State, reads: dict[str, tuple]) -> bool:
    """Whether a file's rows at ``signature`` are known: read in this look, or readable
    and unchanged since the last (an unreadable one is tried again)."""
    if path in reads:
        return reads[path][0] == signature
    known = state.files.get(path)
    return known is not None and known.signature == signature


def _trials_in(table: pa.Table) -> frozenset[str]:
    trials: set[str] = set()
    for chunk in table["trial_id"].chunks:
        values = pc.unique(chunk)
        if pa.types.is_dictionary(values.type):
            values = values.dictionary.take(values.indices)
        trials.update(values.to_pylist())
    trials.discard(None)
    return frozenset(trials)


def _conformed(
    files: dict[str, _File], tables: dict[str, pa.Table], trials: set[str] | None, target
) -> pa.Table:
    """The rows of ``trials`` (None: all) in ``files`` (a part's from ``tables``) brought to
    ``target``, in the order :func:`~analysis.load.metrics_rows` takes them: files read
    with dictionaries first, then the others, each by path."""
    big, small = [], []
    for path in sorted(files):
        f = files[path]
        table = tables[path] if f.big else f.table
        if trials is not None and not f.trials <= trials:
            keep = pa.array(sorted(f.trials & trials), pa.string())
            table = table.filter(pc.is_in(table["trial_id"].cast(pa.string()), keep))
        (big if f.big else small).append(table)
    if not big and not small:
        return target.empty_table()
    return load.conformed(big, small, target)


def _distinct(files: dict[str, _File]) -> list[pa.Schema]:
    """The files' distinct schemas in the order :func:`~analysis.load.metrics_rows` meets
    them (files read with dictionaries first, then the others, each by path)."""
    order = sorted(files, key=lambda p: (not files[p].big, p))
    return list({id(files[p].schema): files[p].schema for p in order}.values())


def _named_schemas(files: dict[str, _File]):
    """One (path, schema) per distinct schema, to name files whose types disagree."""
    return {id(f.schema): (p, f.schema) for p, f in files.items()}.values()


def _named(bad: dict[str, str], problems: list[str]) -> list[str]:
    return [*problems, *(f"unreadable metrics file {p} ({why})" for p, why in bad.items())]


def _unexplained(gone: set[str], state: _State, reads: dict[str, tuple]) -> set[str]:
    """Trials of files ``gone`` that no file read in this look holds."""
    held = set().union(*(state.files[p].trials for p in gone if p in state.files))
    for _, result in reads.values():
        if held and not _failed(result):
            held -= _trials_in(result)
    return held
