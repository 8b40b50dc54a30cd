"""The study's numbers as tables: computed once, shown in the terminal and in the report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import aggregate
from analysis.correlate import quantities, study_correlations
from analysis.load import StudyResults
from analysis.options import Options
from analysis.verdicts import verdict_table
from studyfiles import schema


@dataclass
class Results:
    """Everything tabular about a study."""

    study: StudyResults
    options: Options
    finals: pd.DataFrame  # one row per finished trial, last evaluation
    final_summary: pd.DataFrame  # per swept key and value: mean, std, CI of each quantity
    verdicts: pd.DataFrame
    correlations: pd.DataFrame


def compute_results(study: StudyResults, *, options: Options | None = None) -> Results:
    """Final values, verdicts and correlations of a study."""
    options = options or Options()
    finals = aggregate.final_rows(study)
    summary = final_summary(study, finals, options=options)
    verdicts = verdict_table(study, options=options)
    corr = study_correlations(study, frame=finals, options=options)
    return Results(study, options, finals, summary, verdicts, corr)


def final_summary(study: StudyResults, finals: pd.DataFrame, *, options: Options) -> pd.DataFrame:
    """Mean, std and CI over seeds of each final quantity, per value of each swept key."""
    qs = quantities(study)
    parts = []
    for param in study.hyper_params or [None]:
        sub, note = finals, ""
        if param is not None:
            others = [p for p in study.hyper_params if p != param]
            sub, note = aggregate.sweep_slice(finals, param, others)
        keyed = sub.assign(param=param or "all trials", value=sub[param] if param else "")
        stats = aggregate.summarize(keyed, ["param", "value"], qs, confidence=options.confidence)
        parts.append(stats.assign(slice=note))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, blank when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}g}"
    return str(value)


def interval(mid: float, low: float, high: float) -> str:
    """``mid [low, high]``, or just ``mid`` without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return fmt(mid)
    return f"{fmt(mid)} [{fmt(low)}, {fmt(high)}]"


def summary_display(results: Results) -> pd.DataFrame:
    """Final values as ``mean ± half-width (n)``, raw GC beside the scale-free quantities."""
    s = results.final_summary
    if s.empty:
        return pd.DataFrame()
    half = (s["ci_high"] - s["ci_low"]) / 2.0
    text = [
        f"{fmt(m)} ± {fmt(h, 2)} ({n})" if np.isfinite(h) else f"{fmt(m)} ({n})"
        for m, h, n in zip(s["mean"], half, s["n"], strict=True)
    ]
    wide = s.assign(text=text).pivot_table(
        index=["param", "value"], columns="metric", values="text", aggfunc="first", sort=False
    )
    order = [q for q in quantities(results.study) if q in wide.columns]
    wide = wide[order].rename(columns=schema.label).reset_index()
    wide["param"] = wide["param"].map(schema.label)
    return wide


def verdict_display(results: Results) -> pd.DataFrame:
    """The verdict table with its numbers as short strings."""
    v = results.verdicts
    if v.empty:
        return pd.DataFrame()
    rows = {
        "claim": v["claim"],
        "at": v["at"],
        "verdict": v["verdict"],
        "extremes": [_extremes_text(r) for r in v.itertuples()],
        "change": [
            interval(c, *_pct_ci(r)) + " %" if np.isfinite(c) else ""
            for c, r in zip(v["change_pct"], v.itertuples(), strict=True)
        ],
        "spearman ρ": [interval(r.rho, r.rho_low, r.rho_high) for r in v.itertuples()],
        "n": v["n"],
        "tests": v["reason"],
    }
    return pd.DataFrame(rows)


def _pct_ci(row) -> tuple[float, float]:
    base = abs(row.mean_low) if np.isfinite(row.mean_low) and row.mean_low != 0 else np.nan
    return 100.0 * row.diff_low / base, 100.0 * row.diff_high / base


def _extremes_text(row) -> str:
    if not np.isfinite(row.mean_low):
        return ""
    x = schema.label(row.x)
    return (
        f"{fmt(row.mean_low)} at {x}={fmt(row.x_low)} → {fmt(row.mean_high)} at {fmt(row.x_high)}"
    )


def correlation_display(results: Results) -> pd.DataFrame:
    """One row per pair; one column per method, ``r [CI]``."""
    c = results.correlations
    if c.empty:
        return pd.DataFrame()
    rows: dict[tuple, dict] = {}
    for r in c.itertuples():
        row = rows.setdefault(
            (r.x, r.y), {"x": schema.label(r.x), "y": schema.label(r.y), "n": r.n}
        )
        row[r.method] = interval(r.r, r.ci_low, r.ci_high)
    return pd.DataFrame(list(rows.values()))


def study_facts(study: StudyResults) -> list[tuple[str, str]]:
    """Key facts for the summary: provenance, trials by status, rows and files read."""
    meta, trials = study.meta, study.trials
    status = trials["status"].value_counts(dropna=False) if "status" in trials else pd.Series()
    by_status = ", ".join(
        f"{k if isinstance(k, str) else 'unknown'}: {v}" for k, v in status.items()
    )
    diverged = (
        int(trials["diverged"].fillna(False).astype(bool).sum()) if "diverged" in trials else 0
    )
    return [
        ("study", study.name),
        ("directory", study.path),
        ("created", str(meta.get("created_at", ""))),
        ("spec hash", str(meta.get("spec_hash", ""))),
        ("code version", str(meta.get("code_version", ""))),
        ("swept", ", ".join(study.sweep_params)),
        ("trials", f"{len(trials)} ({by_status}); diverged: {diverged}"),
        ("metric rows", f"{len(study.metrics)} from {study.n_files} files"),
        ("superseded rows dropped", str(study.n_duplicates)),
        ("not measured", ", ".join(c for c in _measures(study) if not study.measured(c)) or "—"),
    ]


def _measures(study: StudyResults) -> list[str]:
    fixed = [c for c, metric in schema.METRICS.items() if metric.kind == "double"]
    return fixed + [c for c in study.metrics.columns if schema.FEWSHOT.match(c)]


def format_tables(
    study: StudyResults, *, options: Options | None = None, results: Results | None = None
) -> str:
    """What ``gcnc analyze DIR`` prints: facts, warnings, verdicts, final values, correlations."""
    results = results or compute_results(study, options=options)
    facts = study_facts(study)
    width = max(len(k) for k, _ in facts)
    out = [f"{k:>{width}}: {v}" for k, v in facts]
    out += [f"WARNING: {w}" for w in study.warnings]
    sections = [
        ("Verdicts on the paper's claims", verdict_display(results)),
        ("Final values across seeds (mean ± CI half-width (n))", summary_display(results)),
        ("Correlations of final values (bootstrap CI)", correlation_display(results)),
    ]
    for title, frame in sections:
        out += ["", title, "=" * len(title)]
        out.append(frame.to_string(index=False) if not frame.empty else "(nothing to show)")
    return "\n".join(out) + "\n"
