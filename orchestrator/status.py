"""``gcnc status``: a study's progress from its directory alone (no Ray)."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from orchestrator import damage
from orchestrator.book import is_abandoned, last_line
from orchestrator.lock import describe, live_holder
from orchestrator.search import trial_count
from orchestrator.spec import StudySpec
from studyfiles import InputError, StudyDir
from studyfiles.errors import first_line
from studyfiles.layout import LAYERS_TABLE
from studyfiles.schema import KEY, LAYER_KEY
from studyfiles.tables import latest_per_trial, read_parquet
from studyfiles.target import ENDED, SearchTarget, search_target


@dataclass(frozen=True)
class TrialValue:
    """A trial's value of a search's metric at its latest evaluation."""

    trial_id: str
    value: float
    epoch: int
    params: tuple[tuple[str, Any], ...] = ()  # the searched keys and the trial's values
    status: str | None = None  # the trial's status in trials.parquet
    epochs: int | None = None  # the epochs the trial was to run (its config's train.epochs)


@dataclass(frozen=True)
class SearchResult:
    """What a search found, ranked as ``gcnc analyze`` ranks it: its ended trials by the
    metric's value at their last evaluation, best first; apart from them, the best latest
    value of a trial not ended (running, interrupted or failed), which is not a result."""

    metric: str
    mode: str
    best: tuple[TrialValue, ...] = ()  # the best few ended trials, best first
    ranked: int = 0  # ended trials with a value (``best`` holds the first few)
    unvalued: int = 0  # ended trials without a finite value (diverged, or no row)
    leading: TrialValue | None = None  # the best latest value of a trial not ended
    unended: int = 0  # trials not ended with a value (``leading`` is the best of them)


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
    unreadable: dict[str, str] = field(default_factory=dict)  # metrics/layers file -> why
    lost: list[str] = field(default_factory=list)  # ended trials whose rows are not readable
    search: SearchResult | None = None  # a search's best trials (None: not a search)
    layer_rows: int = 0  # rows of the layers table (0: the study measures no layers)

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


def _counts(found: damage.Scan, key: tuple[str, ...] = KEY) -> tuple[int, int]:
    """Distinct ``key`` values among the rows ``found``, and trials with any row."""
    if found.keys is None:
        return 0, 0
    keys = found.keys.group_by(list(key)).aggregate([])
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
    found, layers = damage.scan(sdir), damage.scan(sdir, table=LAYERS_TABLE)
    rows, with_rows = _counts(found)
    unreadable = found.unreadable | layers.unreadable
    lost = _rows_lost(found, layers, live) if unreadable else []
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
        unreadable=unreadable,
        layer_rows=_counts(layers, LAYER_KEY)[0],
        lost=lost,
        repeated=frozenset(
            t["trial_id"] for t in live if t["status"] == "error" and _failed_runs(t) >= 2
        ),
        short=short,
        search=read_search(sdir, info.get("spec"), trials=live),
    )


def read_search(
    sdir: StudyDir, spec: Any, *, trials: Iterable[Mapping[str, Any]], k: int = 3
) -> SearchResult | None:
    """A search's ``k`` best ended trials and the best value of a trial not ended (None:
    not a search with a metric), from ``trials`` (``trials.parquet``'s rows, abandoned ones
    left out) and each trial's latest metrics row.

    A trial's value is its metric at its latest row, as the search judged it; a trial that
    diverged (in ``trials.parquet`` or that row) has none. Only the metric and the searched
    keys' columns of the metrics files are read.
    """
    target = search_target(spec)
    if target is None:
        return None
    known = {str(t["trial_id"]): t for t in trials}
    kept = {t for t, row in known.items() if not row.get("diverged")}
    values = {
        r["trial_id"]: r
        for r in _latest_records(sdir, target)
        if r["trial_id"] in kept and not r.get("diverged")
    }
    ended = {t for t, row in known.items() if row["status"] in ENDED}
    pairs = [(t, r.get(target.metric)) for t, r in values.items()]
    ranked = target.best_first(p for p in pairs if p[0] in ended)
    others = target.best_first(p for p in pairs if p[0] not in ended)
    epochs = _dotted(spec, "train.epochs")  # where a trial's config does not say
    found = [
        _trial_value(t, v, values[t], known[t], target=target, spec_epochs=epochs)
        for t, v in [*ranked[:k], *others[:1]]
    ]
    return SearchResult(
        target.metric,
        target.mode,
        best=tuple(found[: min(k, len(ranked))]),
        ranked=len(ranked),
        unvalued=len(ended) - len(ranked),
        leading=found[min(k, len(ranked))] if others else None,
        unended=len(others),
    )


def _latest_records(sdir: StudyDir, target: SearchTarget) -> list[dict[str, Any]]:
    """Each trial's latest row: its trial id, epoch, diverged flag, metric, searched keys."""
    rows = latest_per_trial(sdir.storage, sdir.metrics, [target.metric, *target.params])
    if rows is None:
        return []
    wanted = ["trial_id", "epoch", "diverged", target.metric, *target.params]
    return rows.select([c for c in wanted if c in rows.column_names]).to_pylist()


def _trial_value(
    trial_id: str,
    value: float,
    row: Mapping[str, Any],
    trial: Mapping[str, Any],
    *,
    target: SearchTarget,
    spec_epochs: Any,
) -> TrialValue:
    """A ranked trial with its searched keys (from its row, else its config) and its
    planned epochs (its config's, else ``spec_epochs``)."""
    config = _config(trial.get("config"))
    params = tuple((p, row[p] if p in row else _dotted(config, p)) for p in target.params)
    epochs = _dotted(config, "train.epochs")
    epochs = spec_epochs if epochs is None else epochs
    return TrialValue(
        trial_id,
        value,
        int(row["epoch"]),
        params=params,
        status=trial.get("status"),
        epochs=int(epochs) if isinstance(epochs, int | float) else None,
    )


def _rows_lost(found: damage.Scan, layers: damage.Scan, trials: list[dict[str, Any]]) -> list[str]:
    """Trials recorded as ended (or under way) whose readable rows stop short of the epoch
    recorded for them, or whose layer rows stop short of their metrics rows."""
    reach, layer_reach = found.reach(), layers.reach()
    lost = []
    for t in trials:
        done = t.get("epochs_done")
        if t["status"] in ("pending", "error") or done is None:
            continue
        got = reach.get(t["trial_id"])
        short = got is None or (got.last_epoch < done and not got.diverged)
        if short or _layers_short(t, got, layer_reach):
            lost.append(t["trial_id"])
    return sorted(lost)


def _layers_short(
    trial: dict[str, Any], got: damage.Reach | None, layer_reach: dict[str, damage.Reach]
) -> bool:
    measures = damage.measures_layers(_config(trial.get("config")))
    return measures and damage.layers_short(got, layer_reach.get(trial["trial_id"]))


def _failed_runs(trial: dict[str, Any]) -> int:
    return int(trial.get("failed_runs") or 0)  # absent from files of older versions


def _epochs(config: str | None) -> int | None:
    epochs = _dotted(_config(config), "train.epochs")
    return int(epochs) if isinstance(epochs, int | float) else None


def _config(text: str | None) -> Any:
    """A trial's config (``trials.parquet``'s JSON); None where absent or unreadable."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _dotted(config: Any, key: str) -> Any:
    """``key`` (dotted) of a config; None where absent."""
    node = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


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
        f"rows: {st.rows} metrics rows from {st.trials_with_rows} trials"
        + (f", {st.layer_rows} layers rows" if st.layer_rows else ""),
    ]
    if st.search is not None:
        lines += search_lines(st.search, location=st.location)
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


_UNFINISHED = {  # a trial's status -> how a line about it says it stands
    "running": "still running",
    "interrupted": "interrupted",
    "stopped": "stopped early",
    "error": "failed",
}


def search_lines(result: SearchResult, *, location: str) -> list[str]:
    """The search's result: its best ended trials, one line each, then apart the best value
    of a trial not ended (not a result: it may still change, or never end)."""
    metric = result.metric
    head = f"search result ({metric}, {result.mode}, each ended trial at its last evaluation)"
    if not result.best:
        lines = [f"{head}: no ended trial has a {metric} value yet"]
    else:
        lines = [f"{head}: best {len(result.best)} of {result.ranked} ranked"]
        lines += [f"  {i}. {trial_line(t, metric)}" for i, t in enumerate(result.best, 1)]
    if result.unvalued:
        why = "diverged, or not measured"
        lines.append(f"  not ranked: {result.unvalued} ended without a {metric} value ({why})")
    if result.leading is not None:
        of = f" (best of {result.unended})" if result.unended > 1 else ""
        lines.append(f"  not ended, not ranked{of}: {trial_line(result.leading, metric)}")
    if result.best:
        lines.append(f"  intervals across seeds: gcnc analyze {shlex.quote(location)}")
    return lines


def trial_line(trial: TrialValue, metric: str) -> str:
    """``t00007: test_acc = 0.912 at epoch 30/30 (train.lr=0.01, …)``, and how the trial
    stands where it did not run to its end."""
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params)
    of = f"/{trial.epochs}" if trial.epochs is not None else ""
    line = f"{trial.trial_id}: {metric} = {_short(trial.value)} at epoch {trial.epoch}{of}" + (
        f" ({params})" if params else ""
    )
    return line + (f", {_UNFINISHED[trial.status]}" if trial.status in _UNFINISHED else "")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def damage_lines(st: StudyStatus, *, limit: int) -> list[str]:
    """The metrics and layers files that cannot be read, and the trials whose rows they
    held."""
    if not st.unreadable:
        return []
    lines = ["unreadable metrics or layers files (their rows are missing):"]
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
    analysis leaves them out of every comparison)."""
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
