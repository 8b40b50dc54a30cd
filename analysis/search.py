"""The result a search exists for: its best trials, ranked by the metric it optimised.

A study with a ``[search]`` (a ``space``, a ``metric``, a ``mode``, a ``budget``) has its
trials' settings chosen by a search algorithm, and with a ``[scheduler]`` (ASHA) some of
its trials stopped early (``stopped`` in ``trials.parquet``). Each trial is judged as the
search judged it: by its value at its last reported evaluation, which is what Tune hands to
Optuna when a trial ends, whether it ran to its last epoch or the scheduler stopped it.

A grid sweep, or a search without a metric, has no best trials: :func:`best_trials` gives
an empty frame and :func:`format_best` an empty string.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.aggregate import final_rows, summarize
from analysis.load import StudyResults
from analysis.options import Options
from analysis.text import fmt, interval, listed
from studyfiles.target import ENDED, SearchTarget
from studyfiles.target import search_target as target_of

#: Algorithms whose points do not depend on any trial's results.
NOT_ADAPTIVE = frozenset({"random", "grid"})
_WIDTH = 96  # characters of a note's line
_TAIL = ("value", "epoch", "epochs", "ran_to_end", "n_seeds", "mean", "ci_low", "ci_high")


def search_target(study: StudyResults) -> SearchTarget | None:
    """The search's metric and mode (the scheduler's where the search names none); None
    for a study without a search, or a search without a metric and mode."""
    return target_of(study.meta.get("spec") or {})


def best_trials(
    study: StudyResults, *, k: int | None = 5, options: Options | None = None
) -> pd.DataFrame:
    """The ``k`` best trials of a search (all with ``k=None``), best first.

    A trial is ranked by its value of the search's metric at its **last reported
    evaluation**: what Optuna and Tune's scheduler optimise, so a trial the scheduler
    stopped early is ranked by its value where it stopped. Only ended trials (``done`` or
    ``stopped``) are ranked; one without a finite value there (it diverged) is left out.

    Where a setting (every searched key but the seed) ran more than once (the space holds
    ``train.seed``, or the search proposed the same point again), ``mean`` and its interval
    (:func:`analysis.aggregate.summarize`, at ``options.confidence``: the geometric mean
    and a log-scale interval for a positive metric, an interval within [0, 1] for a
    fraction) are taken across the trials of that setting that ran to the end,
    ``n_seeds`` of them; values read
    at different epochs are not pooled, so a stopped trial counts in no mean. A setting that
    ran to the end once has no interval (NaN).

    Returns:
        Columns ``rank, trial_id, status, *params, value, epoch, epochs, ran_to_end,
        n_seeds, mean, ci_low, ci_high``: ``params`` the search space's keys, ``epoch`` the
        epoch the value was read at, ``epochs`` the trial's planned epochs, ``ran_to_end``
        whether it reached them (False: stopped early). Empty for a study that is no search
        with a metric.
    """
    target = search_target(study)
    if target is None:
        return pd.DataFrame(columns=["rank", "trial_id", "status", *_TAIL])
    ranked = _ranked(_ended_trials(study, target, options or Options()), target)
    return ranked.head(len(ranked) if k is None else k).reset_index(drop=True)


def search_note(study: StudyResults) -> str | None:
    """One sentence for correlation tables of a study whose trials were not a random sample
    of settings (an adaptive search chose them, or a scheduler chose which ran to the end);
    None for a grid or a random search, either without a scheduler."""
    spec = study.meta.get("spec") or {}
    search, scheduler = spec.get("search"), spec.get("scheduler")
    search = search if isinstance(search, Mapping) else {}
    scheduler = scheduler if isinstance(scheduler, Mapping) else {}
    algorithm = str(search.get("algorithm") or "tpe") if search else "grid"
    metric = search.get("metric") or scheduler.get("metric")
    on = f" on {metric}" if metric else ""
    why = []
    if algorithm not in NOT_ADAPTIVE:
        why.append(f"the search ({algorithm}{on}) chose them adaptively from earlier results")
    if scheduler:
        kind = scheduler.get("type") or "asha"
        why.append(f"the scheduler ({kind}) stopped some early by their results{on}")
    if not why:
        return None
    return (
        f"These trials are not a random sample of settings: {', and '.join(why)}, so "
        "correlations over them describe these trials only and their intervals do not have "
        "their nominal coverage."
    )


def format_best(study: StudyResults, *, k: int = 5, options: Options | None = None) -> str:
    """``Best trials of the search (metric, mode)``, a table of the ``k`` best and what it
    rests on; "" for a study that is no search with a metric."""
    target = search_target(study)
    if target is None:
        return ""
    table, notes = best_table(study, k=k, options=options)
    title = f"Best trials of the search ({target.metric}, {target.mode})"
    lines = [title, "=" * len(title)]
    if table.empty:
        lines.append(f"(no ended trial has a {target.metric} value yet)")
    else:
        lines.append(table.to_string(index=False))
    return "\n".join(lines + [textwrap.fill(note, width=_WIDTH) for note in notes])


def best_table(
    study: StudyResults, *, k: int = 5, options: Options | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The ``k`` best trials with their numbers as short strings, and the notes saying what
    the table rests on (where each value was read, the trials left out, the intervals);
    an empty frame and no notes for a study that is no search with a metric."""
    target = search_target(study)
    if target is None:
        return pd.DataFrame(), []
    options = options or Options()
    ended = _ended_trials(study, target, options)
    ranked = _ranked(ended, target)
    shown = _display(ranked.head(k), target, options) if len(ranked) else pd.DataFrame()
    return shown, _notes(study, target, ended, options)


def _ranked(ended: pd.DataFrame, target: SearchTarget) -> pd.DataFrame:
    """The ended trials with a value, ranked as ``gcnc status`` ranks them
    (:meth:`SearchTarget.best_first`; see :func:`best_trials`)."""
    order = [t for t, _ in target.best_first(zip(ended["trial_id"], ended["value"], strict=True))]
    frame = ended.set_index("trial_id", drop=False).loc[order]
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame[["rank", "trial_id", "status", *target.params, *_TAIL]].reset_index(drop=True)


def _ended_trials(study: StudyResults, target: SearchTarget, options: Options) -> pd.DataFrame:
    """One row per ended trial: its status, searched params, value at its last evaluation
    (NaN when not finite or diverged), that evaluation's epoch, its planned epochs, whether
    it diverged, and its setting's statistics across seeds."""
    last = final_rows(study, finished_only=False)
    epochs = _planned_epochs(last, study)
    status = _status(last, epochs)
    if target.metric in last:
        value = pd.to_numeric(last[target.metric], errors="coerce").to_numpy(float, copy=True)
    else:
        value = np.full(len(last), np.nan)
    value[~np.isfinite(value) | last["diverged"].to_numpy(dtype=bool)] = np.nan
    out = pd.DataFrame({"trial_id": last["trial_id"].astype(str), "status": status})
    for p in target.params:
        out[p] = _param(last, p)
    out["value"], out["epoch"], out["epochs"] = value, last["epoch"].astype(int), epochs
    out["ran_to_end"] = out["status"] == "done"
    out["diverged"] = last["diverged"].to_numpy(dtype=bool)
    out = out[out["status"].isin(ENDED)].reset_index(drop=True)
    return pd.concat([out, _across_seeds(out, target, study, options.confidence)], axis=1)


def _planned_epochs(last: pd.DataFrame, study: StudyResults) -> np.ndarray:
    """Each trial's ``train.epochs`` from its config, else the spec's, else the last epoch
    any trial reached."""
    spec_epochs = ((study.meta.get("spec") or {}).get("train") or {}).get("epochs")
    fallback = spec_epochs if spec_epochs is not None else last["epoch"].max()
    configs = last["config"] if "config" in last else [None] * len(last)
    out = [_dotted(c, "train.epochs") for c in configs]
    return np.array([fallback if e is None else e for e in out], dtype=float)


def _status(last: pd.DataFrame, epochs: np.ndarray) -> np.ndarray:
    """``trials.parquet``'s status; without one, ``done`` where the rows reach the trial's
    epochs or it diverged (a trial short of them may be stopped or still running: None)."""
    given = last["trial_status"].astype(object) if "trial_status" in last else None
    reached = (last["epoch"].to_numpy(dtype=float) >= epochs) | last["diverged"].to_numpy(bool)
    inferred = np.where(reached, "done", None)
    if given is None:
        return inferred
    return np.where(given.isna(), inferred, given.to_numpy())


def _param(last: pd.DataFrame, key: str) -> pd.Series:
    """A searched key's value per trial: its column, else from the trial's config."""
    if key in last:
        return last[key].astype(object).reset_index(drop=True)
    configs = last["config"] if "config" in last else [None] * len(last)
    return pd.Series([_dotted(c, key) for c in configs], dtype=object)


def _dotted(config: Any, key: str) -> Any:
    """``key`` (dotted) of a trial's config JSON; None where absent or unreadable."""
    try:
        node = json.loads(config)
        for part in key.split("."):
            node = node[part]
    except (TypeError, ValueError, KeyError):
        return None
    return node


def _across_seeds(
    frame: pd.DataFrame, target: SearchTarget, study: StudyResults, confidence: float
) -> pd.DataFrame:
    """Per trial, the statistics of its setting (every searched key but the seed) over the
    trials of that setting that ran to the end, on the metric's scale
    (:func:`analysis.aggregate.summarize`: for a positive metric the geometric mean and its
    interval, for a fraction an interval cut to [0, 1]): ``n_seeds, mean, ci_low, ci_high``."""
    setting = [p for p in target.params if p != study.seed_param]
    if setting and len(frame):
        codes = frame.groupby(setting, dropna=False, observed=True, sort=False).ngroup()
    else:
        codes = pd.Series(0, index=frame.index)
    final = frame["value"].where(frame["ran_to_end"])
    values = pd.DataFrame({"setting": codes.to_numpy(), target.metric: final.to_numpy()})
    stats = summarize(values, ["setting"], [target.metric], confidence=confidence)
    per_trial = stats.set_index("setting").reindex(codes.to_numpy())
    return pd.DataFrame(
        {"n_seeds": per_trial["n"].to_numpy(dtype=int)}
        | {c: per_trial[c].to_numpy(dtype=float) for c in ("mean", "ci_low", "ci_high")},
        index=frame.index,
    )


def _display(top: pd.DataFrame, target: SearchTarget, options: Options) -> pd.DataFrame:
    """The table ``format_best`` prints: numbers as short strings."""
    out = pd.DataFrame({"rank": top["rank"], "trial": top["trial_id"], "status": top["status"]})
    reached = zip(top["epoch"], top["epochs"], strict=True)
    out["epoch"] = [f"{e}/{fmt(p)}" for e, p in reached]
    for p in target.params:
        out[p] = [fmt(v) for v in top[p]]
    out[target.metric] = [fmt(v, 4) for v in top["value"]]
    if (top["n_seeds"] > 1).any():
        label = f"mean [{options.confidence:.0%} CI] (n) across seeds"
        stats = zip(top["mean"], top["ci_low"], top["ci_high"], top["n_seeds"], strict=True)
        out[label] = [f"{interval(m, lo, hi)} ({n})" if n else "" for m, lo, hi, n in stats]
    return out


def _notes(
    study: StudyResults, target: SearchTarget, ended: pd.DataFrame, options: Options
) -> list[str]:
    """What the table rests on: where each value was read, the trials left out, and the
    intervals across seeds (or why there are none)."""
    metric, seed = target.metric, study.seed_param
    lines = []
    if ended["value"].notna().any():
        lines += [_read_at(ended, metric), _seeds_note(ended, seed, options)]
    missing = ended[ended["value"].isna()]
    if len(missing):
        pairs = zip(missing["trial_id"], missing["diverged"], strict=True)
        named = [f"{t} (diverged)" if d else t for t, d in pairs]
        lines.append(f"Not ranked, without a {metric} value: {listed(named)}.")
    status = study.trials["status"] if "status" in study.trials else pd.Series(dtype=object)
    others = status[~status.isin(ENDED)].fillna("unknown").replace({"error": "failed"})
    if len(others):
        counts = ", ".join(f"{n} {s}" for s, n in others.value_counts().items())
        lines.append(f"Not ranked, not ended: {counts} (gcnc status shows the best so far).")
    return lines


def _read_at(ended: pd.DataFrame, metric: str) -> str:
    """Where each value was read, and how many trials the scheduler stopped early."""
    note = f"Each trial's {metric} at its last reported evaluation, as the search optimised it"
    stopped = int((ended["status"] == "stopped").sum())
    if stopped:
        note += (
            f"; {stopped} of {len(ended)} ended trials were stopped early by the scheduler and "
            "are ranked by their value where they stopped"
        )
    return note + "."


def _seeds_note(ended: pd.DataFrame, seed: str, options: Options) -> str:
    """What the interval across seeds is, or why there is none."""
    setting = f"every searched key but {seed}"
    if (ended["n_seeds"] > 1).any():
        return (
            f"Across seeds: centre and {options.confidence:.0%} interval over the trials of the "
            f"same setting ({setting}) that ran to the end (the geometric mean for a positive "
            "metric; an interval within [0, 1] for a fraction); a stopped trial counts in none."
        )
    return f"No interval across seeds: no setting ({setting}) ran to the end twice."
