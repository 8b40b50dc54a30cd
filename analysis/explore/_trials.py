"""The explorer's view of a study's trials as plain frames: one row per trial, the filters
over them, the study's progress and a trial's own facts. Every function here is a plain
function of a :class:`~analysis.study.StudyResults` (tested without a browser)."""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.load import StudyResults
from studyfiles import schema

#: Statuses as the page names them; ``error`` is a failed trial.
STATUS_NAMES = {
    "done": "done",
    "running": "running",
    "error": "failed",
    "stopped": "stopped",
    "interrupted": "interrupted",
    "pending": "pending",
}
UNFINISHED = ("pending", "running", "interrupted")
MAX_CHOICES = 15  # a parameter with more values than this is filtered by a range
DIVERGED_FILTERS = ("any", "exclude", "only")


def metric_choices(study: StudyResults) -> list[str]:
    """The numeric metrics the study measured, in the schema's order (y-axis choices)."""
    cols = study.metrics.columns
    return [
        c
        for c in cols
        if schema.is_metric_name(c) and schema.kind_of(c) == "double" and study.measured(c)
    ]


def x_choices(study: StudyResults) -> list[str]:
    """What curves can be aligned by: epoch, step, training progress and wall time."""
    measured = [c for c in ("train_loss", "train_acc", "wall_time_s") if study.measured(c)]
    return ["epoch", "step", *measured]


def params(study: StudyResults) -> list[str]:
    """The swept keys present in the metrics (seed included): colour, facet and filters."""
    return [p for p in study.sweep_params if p in study.metrics]


def trial_table(study: StudyResults) -> pd.DataFrame:
    """One row per trial, pending ones included: ``trial_id``, ``status``, ``diverged``,
    ``attempts``, the swept keys, ``rows``, then the last evaluation's ``epoch``, ``step``,
    ``wall_time_s`` and metrics (null for a trial with no rows yet)."""
    keys = params(study)
    info = _trial_info(study, keys)
    last = _last_rows(study, keys)
    ids = pd.Index(list(dict.fromkeys([*info.index, *last.index])), name="trial_id")
    out = pd.DataFrame(index=ids)
    out["status"] = info["status"].reindex(ids).fillna("unknown").astype(str)
    out["diverged"] = info["diverged"].reindex(ids).eq(True) | last["ever"].reindex(ids).eq(True)
    out["attempts"] = info["attempts"].reindex(ids)
    for key in keys:
        out[key] = last[key].reindex(ids).combine_first(info[key].reindex(ids))
    out["rows"] = last["rows"].reindex(ids).fillna(0).astype(int)
    for col in last.columns.drop([*keys, "rows", "ever"]):
        out[col] = last[col].reindex(ids)
    out = out.reset_index().infer_objects()
    return out.sort_values("trial_id", kind="stable").reset_index(drop=True)


def _trial_info(study: StudyResults, keys: list[str]) -> pd.DataFrame:
    """``trials.parquet``'s status, divergence, attempts and swept keys, by trial."""
    t = study.trials
    t = t.drop_duplicates("trial_id", keep="last") if "trial_id" in t else t.iloc[:0]
    out = pd.DataFrame(index=pd.Index(t["trial_id"].astype(str) if len(t) else [], name="trial_id"))
    for col in ("status", "diverged", "attempts", *keys):
        out[col] = t[col].to_numpy(dtype=object) if col in t else None
    return out


def _last_rows(study: StudyResults, keys: list[str]) -> pd.DataFrame:
    """Each trial's last evaluation (swept keys, epoch, step, wall time, metrics), its
    number of rows and whether it ever diverged, by trial."""
    m = study.metrics
    values = [c for c in ("epoch", "step", *metric_choices(study), "wall_time_s") if c in m]
    values = list(dict.fromkeys(values))
    last = m.drop_duplicates("trial_id", keep="last")
    out = pd.DataFrame(index=pd.Index(last["trial_id"].astype(str), name="trial_id"))
    for col in [*keys, *values]:
        v = last[col]
        out[col] = (
            v.astype(object).to_numpy()
            if isinstance(v.dtype, pd.CategoricalDtype)
            else v.to_numpy()
        )
    grouped = m.groupby("trial_id", sort=False, observed=True)
    out["rows"] = grouped.size().set_axis(grouped.size().index.astype(str)).reindex(out.index)
    ever = grouped["diverged"].any() if "diverged" in m else pd.Series(False, index=out.index)
    out["ever"] = ever.set_axis(ever.index.astype(str)).reindex(out.index).eq(True)
    return out


@dataclass(frozen=True)
class FilterChoice:
    """How one swept key is filtered: by a checklist of ``values``, or by a range
    (``low``, ``high``; on the log10 scale when ``log``) when it has too many values."""

    param: str
    values: list = field(default_factory=list)
    low: float = float("nan")
    high: float = float("nan")
    log: bool = False

    @property
    def is_range(self) -> bool:
        return not self.values


def filter_choices(table: pd.DataFrame, keys: list[str]) -> list[FilterChoice]:
    """One :class:`FilterChoice` per swept key with more than one value."""
    out = []
    for key in keys:
        values = table[key].dropna().unique().tolist() if key in table else []
        values = sorted((_plain(v) for v in values), key=_sort_key)
        if len(values) < 2:
            continue
        numeric = all(isinstance(v, int | float) for v in values)
        if len(values) <= MAX_CHOICES or not numeric:
            out.append(FilterChoice(key, values))
            continue
        lo, hi = float(values[0]), float(values[-1])
        log = lo > 0 and hi > 10 * lo
        out.append(
            FilterChoice(key, [], *((np.log10(lo), np.log10(hi)) if log else (lo, hi)), log=log)
        )
    return out


def _plain(value: object) -> object:
    """A JSON-ready Python value (numpy scalars unwrapped)."""
    return value.item() if isinstance(value, np.generic) else value


def _sort_key(value: object) -> tuple:
    return (0, float(value), "") if isinstance(value, int | float) else (1, 0.0, str(value))


def filter_trials(table: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The trials ``spec`` keeps. ``spec`` (built by the page, every part optional):
    ``excluded`` {key: [values]} — values unticked (values the page did not offer are kept,
    so a value a search proposes later shows up); ``ranges`` {key: [low, high, log]};
    ``statuses`` [status, …] (None: every one); ``diverged``: any, exclude or only;
    ``brushed`` {key: brush} — ranges brushed on the parallel coordinates
    (:func:`brush_from_event`), a trial kept when its value lies in one of them."""
    keep = np.ones(len(table), dtype=bool)
    for key, values in (spec.get("excluded") or {}).items():
        if key in table and values:
            keep &= ~table[key].isin(values).to_numpy()
    for key, (low, high, log) in (spec.get("ranges") or {}).items():
        if key in table:
            v = pd.to_numeric(table[key], errors="coerce").to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log10(v) if log else v
            slack = 1e-9 * max(1.0, abs(low), abs(high))
            keep &= (v >= low - slack) & (v <= high + slack)
    for key, brush in (spec.get("brushed") or {}).items():
        if key in table:
            keep &= _brushed(table[key], brush)
    statuses = spec.get("statuses")
    if statuses is not None:
        keep &= table["status"].isin(statuses).to_numpy()
    diverged = spec.get("diverged", "any")
    if diverged == "exclude":
        keep &= ~table["diverged"].to_numpy(dtype=bool)
    elif diverged == "only":
        keep &= table["diverged"].to_numpy(dtype=bool)
    return table[keep]


def _brushed(values: pd.Series, brush: dict) -> np.ndarray:
    """Which of ``values`` a brush keeps: text values it names, or numbers (log10 where
    the axis was) in one of its spans."""
    if brush.get("values") is not None:
        return values.astype(str).isin(brush["values"]).to_numpy()
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if brush.get("log"):
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log10(v)
    inside = np.zeros(len(v), dtype=bool)
    for low, high in brush.get("spans", []):
        slack = 1e-9 * max(1.0, abs(low), abs(high))
        inside |= (v >= low - slack) & (v <= high + slack)
    return inside


_CONSTRAINT = re.compile(r"^dimensions\[(\d+)\]\.constraintrange$")


def brush_from_event(brushed: dict, event: object, axes: list[dict]) -> dict:
    """The brushes after a brushing event of the parallel coordinates.

    Args:
        brushed: the brushes so far, {key: brush}.
        event: Plotly's restyle event as Dash gives it (``[changes, trace indices]``):
            ``dimensions[k].constraintrange`` set to ``[ranges]`` (one range ``[lo, hi]``
            or several) or to null where the reader cleared axis ``k``.
        axes: the axes drawn, in order: ``name``, ``log`` and ``ticktext`` (the codes'
            texts, for a key whose values are not numbers).

    Returns:
        The new brushes: a number axis as ``{"log", "spans"}`` in the axis's units, a text
        axis as ``{"values"}`` (the texts whose codes a span covers).
    """
    if not (isinstance(event, list | tuple) and event and isinstance(event[0], dict)):
        return brushed
    out = dict(brushed)
    for prop, value in event[0].items():
        found = _CONSTRAINT.match(str(prop))
        if not found or int(found.group(1)) >= len(axes):
            continue
        axis = axes[int(found.group(1))]
        spans = _spans(value)
        if not spans:
            out.pop(axis["name"], None)
        elif axis.get("ticktext"):
            texts = axis["ticktext"]
            picked = {t for k, t in enumerate(texts) for lo, hi in spans if lo <= k <= hi}
            out[axis["name"]] = {"values": [t for t in texts if t in picked]}
        else:
            out[axis["name"]] = {"log": bool(axis.get("log")), "spans": spans}
    return out


def _spans(value: object) -> list[list[float]]:
    """Plotly's constraint ranges (``[[lo, hi]]``, ``[[[lo, hi], …]]`` or null) as a list
    of ``[lo, hi]``; anything malformed as none."""
    if not isinstance(value, list) or len(value) != 1:
        return []
    ranges = value[0]
    if isinstance(ranges, list) and len(ranges) == 2 and not isinstance(ranges[0], list):
        ranges = [ranges]
    spans = []
    for r in ranges if isinstance(ranges, list) else []:
        try:
            low, high = sorted(float(x) for x in r)
        except (TypeError, ValueError):
            return []
        if not (math.isfinite(low) and math.isfinite(high)):
            return []
        spans.append([low, high])
    return spans


@dataclass(frozen=True)
class Progress:
    """Where a study stands: trials by status, and an ETA from the rate trials end at."""

    counts: dict[str, int]
    total: int
    ended: int
    diverged: int
    rows: int
    eta_s: float | None
    rate_per_h: float | None


def progress(study: StudyResults, table: pd.DataFrame | None = None) -> Progress:
    """Trials by status (and diverged), metric rows, and an estimate of the time left.

    The ETA is the trials not yet ended (pending, running, interrupted, and for a search the
    budget not yet proposed) over the rate trials ended at so far — from the first metrics
    row written to the last ended trial's last one; none while nothing runs or fewer than
    two trials have ended.
    """
    table = trial_table(study) if table is None else table
    counts = table["status"].value_counts().to_dict()
    counts = {STATUS_NAMES.get(s, s): int(counts.get(s, 0)) for s in [*STATUS_NAMES, *counts]}
    left = sum(counts.get(STATUS_NAMES[s], 0) for s in UNFINISHED) + _unproposed(study, table)
    ended = len(table) - sum(counts.get(STATUS_NAMES[s], 0) for s in UNFINISHED)
    rate = _end_rate(study, table)
    running = counts.get("running", 0) > 0
    eta = left / rate if rate and left and running else None
    return Progress(
        counts,
        len(table) + _unproposed(study, table),
        ended,
        int(table["diverged"].sum()),
        len(study.metrics),
        eta,
        rate * 3600 if rate else None,
    )


def _unproposed(study: StudyResults, table: pd.DataFrame) -> int:
    """Trials a search's budget still allows beyond those it has proposed."""
    search = (study.meta.get("spec") or {}).get("search")
    budget = search.get("budget") if isinstance(search, dict) else None
    return max(0, int(budget) - len(table)) if isinstance(budget, int) else 0


def _end_rate(study: StudyResults, table: pd.DataFrame) -> float | None:
    """Trials ended per second so far, or None with fewer than two ended."""
    m = study.metrics
    ended = table.loc[~table["status"].isin(UNFINISHED), "trial_id"]
    if len(ended) < 2 or not len(m) or "written_at" not in m:
        return None
    last = m.groupby("trial_id", observed=True)["written_at"].max()
    last.index = last.index.astype(str)
    end_times = last.reindex(ended).dropna()
    span = (end_times.max() - m["written_at"].min()).total_seconds() if len(end_times) else 0
    return len(end_times) / span if span > 0 else None


def duration_text(seconds: float | None) -> str:
    """``42 s``, ``12 min``, ``3.5 h``; ``—`` for None."""
    if seconds is None or not np.isfinite(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def trial_facts(study: StudyResults, trial_id: str) -> tuple[list[tuple[str, str]], str]:
    """A trial's own facts (status, attempts, error, rows, provenance of its rows) and its
    config as indented JSON; ``([], "")`` for a trial the study does not hold."""
    t = study.trials
    info = t[t["trial_id"].astype(str) == trial_id] if "trial_id" in t else t.iloc[:0]
    m = study.metrics
    rows = m[m["trial_id"].astype(str) == trial_id]
    if info.empty and rows.empty:
        return [], ""
    row = info.iloc[-1] if len(info) else pd.Series(dtype=object)
    facts = [("trial", trial_id)]
    for col in ("status", "attempts", "diverged", "error", "epochs_done", "updated_at"):
        if col in row and not _missing(row[col]):
            facts.append((col.replace("_", " "), str(row[col])))
    facts += [(p, str(_plain(rows[p].iloc[0]))) for p in params(study) if len(rows) and p in rows]
    if len(rows):
        facts.append(("rows", f"{len(rows)} (epochs {rows['epoch'].min()}–{rows['epoch'].max()})"))
        for col in ("spec_hash", "code_version"):
            if col in rows:
                seen = rows[col].dropna().astype(str).unique()
                facts.append((col.replace("_", " "), ", ".join(seen) or "—"))
        written = rows["written_at"]
        facts.append(("written", f"{written.min()} … {written.max()}"))
    return facts, _config_text(row.get("config"))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT


def _config_text(config: object) -> str:
    if not isinstance(config, str):
        return ""
    try:
        return json.dumps(json.loads(config), indent=2, sort_keys=True)
    except ValueError:
        return f"(unreadable JSON) {config}"


def trial_rows(study: StudyResults, trial_ids: list[str]) -> pd.DataFrame:
    """Every metrics row of ``trial_ids``, text columns as plain strings."""
    m = study.metrics
    rows = m[m["trial_id"].astype(str).isin(trial_ids)]
    cats = [c for c in rows if isinstance(rows[c].dtype, pd.CategoricalDtype)]
    return rows.astype({c: object for c in cats}).reset_index(drop=True)


def rows_bytes(rows: pd.DataFrame, fmt: str) -> bytes:
    """``rows`` as CSV or Parquet bytes."""
    if fmt == "csv":
        return rows.to_csv(index=False).encode("utf-8")
    if fmt == "parquet":
        buffer = io.BytesIO()
        rows.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt!r}; known: csv, parquet")
