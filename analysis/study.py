"""A loaded study (:class:`StudyResults`) and how it is made from its rows and trials
(:func:`assemble`): ``trials.parquet`` joined to the rows, and every warning a reader of
the results needs (unreadable files, trials not finished or stopped early, rows of another
spec, trials without a row in ``trials.parquet``).

The rows come from :mod:`analysis.load` (a full load) or :mod:`analysis.live` (a live
study's refresh) as :class:`Rows`, held in blocks of whole trials
(:class:`~analysis.blocks.Blocks`): the warnings are made from what each block keeps of
itself, and the frame with the trials joined when :attr:`StudyResults.metrics` is first
read (:class:`JoinedRows`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis.blocks import Blocks
from studyfiles import InputError, StudyDir, schema
from studyfiles.plan import Plan, UnreadablePlan

if TYPE_CHECKING:
    from analysis.depth import LayerTable


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

    :func:`assemble` gives it its rows as :class:`JoinedRows`, held in blocks, and
    ``metrics`` is made from them when first read (once, under a lock): :func:`~analysis.
    load.load_results` reads it before returning; a live refresh (:mod:`analysis.live`)
    leaves it to the first reader, so a refresh that changed one block copies no other.
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
        if name == "metrics":  # not made yet (or made by another thread since the lookup)
            joined = self.__dict__.get("_joined")
            if joined is not None:
                self.__dict__["metrics"] = joined.frame()
                self.__dict__.pop("_joined", None)  # a plain dataclass from now on
            if "metrics" in self.__dict__:
                return self.__dict__["metrics"]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> dict:
        _ = self.metrics  # pickled with its frame made (the blocks' lock does not pickle)
        return self.__dict__

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
        values = set().union(*blocks.kept(("values", c), _value_counts(c)))  # dicts' keys
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
