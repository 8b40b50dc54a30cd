"""The study's numbers as tables: computed once, shown in the terminal and in the report."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import aggregate, depth, search
from analysis.correlate import quantities, study_correlations
from analysis.load import StudyResults
from analysis.options import Options
from analysis.text import fmt, interval
from analysis.verdicts import (
    FINAL,
    INCONCLUSIVE,
    NOT_APPLICABLE,
    NOT_REPRODUCED,
    NOT_TESTED,
    REPRODUCED,
    UNTESTED,
    in_main_family,
    verdict_table,
)
from studyfiles import schema
from studyfiles.plan import Plan


@dataclass
class Results:
    """Everything tabular about a study.

    Attributes:
        plan: the study's analysis plan (``study.json``); ``exploratory`` lists where the
            options used depart from it (``name=value``), empty when the results are the
            plan's own (*primary*).
        depth_values: where the study measures layers, each layer quantity per swept value
            and layer, at each comparison (:func:`analysis.depth.values`); else None.
    """

    study: StudyResults
    options: Options
    finals: pd.DataFrame  # one row per finished trial, last evaluation
    final_summary: pd.DataFrame  # per swept key and value: centre, spread, CI of each quantity
    verdicts: pd.DataFrame
    correlations: pd.DataFrame
    plan: Plan = field(default_factory=Plan)
    exploratory: list[str] = field(default_factory=list)
    depth_values: pd.DataFrame | None = None

    @property
    def label(self) -> str:
        """``primary`` for the plan's own results, ``exploratory`` for any other."""
        return "exploratory" if self.exploratory else "primary"

    def label_line(self) -> str:
        """One line saying whether these results are the plan's, and if not, how they differ."""
        if self.exploratory:
            return (
                f"EXPLORATORY: these results depart from the study's analysis plan "
                f"({', '.join(self.exploratory)}); only the plan's own results are primary"
            )
        return "primary: computed as the study's analysis plan declares"


def resolve_options(
    study: StudyResults,
    options: Options | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Options:
    """The options of an analysis: ``options`` as given, else the study's plan, with any
    ``overrides`` of plan fields (``alpha``, ``correction``, ``comparison``, ``claims``,
    ``evidence``, ``require``, ``progress_by``, ``progress_quantile``) applied on top.

    Raises:
        InputError: an override that is no plan field or has a bad value.
    """
    options = options or Options.from_plan(study.plan)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not changes:
        return options
    plan = Plan.from_mapping(options.plan().as_dict() | changes)
    return options.with_plan(plan)


def compute_results(
    study: StudyResults,
    *,
    options: Options | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Results:
    """Final values, verdicts and correlations of a study, under its plan unless told
    otherwise (:func:`resolve_options`)."""
    options = resolve_options(study, options, overrides)
    finals = aggregate.final_rows(study)
    summary = final_summary(study, finals, options=options)
    verdicts = verdict_table(study, options=options)
    corr = study_correlations(study, frame=finals, options=options)
    exploratory = study.plan.differences(options.plan())
    by_layer = depth.values(study, options=options) if study.layers is not None else None
    return Results(
        study, options, finals, summary, verdicts, corr, study.plan, exploratory, by_layer
    )


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


def summary_display(results: Results) -> pd.DataFrame:
    """Final values as ``centre [CI] (n)``: the geometric mean for a positive quantity,
    the mean otherwise; raw GC beside the scale-free quantities."""
    s = results.final_summary
    if s.empty:
        return pd.DataFrame()
    text = [
        f"{interval(m, lo, hi)} ({n})"
        for m, lo, hi, n in zip(s["mean"], s["ci_low"], s["ci_high"], s["n"], strict=True)
    ]
    wide = s.assign(text=text).pivot_table(
        index=["param", "value"], columns="metric", values="text", aggfunc="first", sort=False
    )
    order = [q for q in quantities(results.study) if q in wide.columns]
    wide = wide[order].rename(columns=schema.label).reset_index()
    wide["param"] = wide["param"].map(schema.label)
    wide["value"] = wide["value"].map(fmt)  # 16, not 16.000 beside 0.005
    return wide


def verdict_display(results: Results) -> pd.DataFrame:
    """The verdict table with its numbers as short strings."""
    v = results.verdicts
    if v.empty:
        return pd.DataFrame()
    rows = {
        "claim": v["claim"],
        "at": v["at"],
        "family": v["role"],
        "verdict": v["verdict"],
        "effect": [effect_text(r) for r in v.itertuples()],
        "spearman ρ": [interval(r.rho, r.rho_low, r.rho_high) for r in v.itertuples()],
        "p": [p_text(p) for p in v["p"]],
        f"p ({results.options.correction})": [p_text(p) for p in v["p_adj"]],
        "raw": v["verdict_raw"],
        "n": v["n"],
        "extremes": [_extremes_text(r) for r in v.itertuples()],
        "tests": v["reason"],
    }
    return pd.DataFrame(rows)


def effect_text(row) -> str:
    """A claim's effect: the percent change between the extremes with its interval, or
    (for a claim between quantities) Spearman's rho with its interval."""
    if np.isfinite(row.change_pct):
        return interval(row.change_pct, row.change_low, row.change_high) + " %"
    if np.isfinite(row.rho):
        if not np.isfinite(row.p_spearman):  # too few trials for the rank test
            return f"ρ {fmt(row.rho)} (n = {row.n}, too few to test)"
        return "ρ " + interval(row.rho, row.rho_low, row.rho_high)
    return ""


def p_text(p: float) -> str:
    """A p-value for a table: 2 significant digits, ``<1e-4`` below that, blank if none."""
    if p is None or not np.isfinite(p):
        return ""
    return "<1e-4" if p < 1e-4 else f"{p:.2g}"


def family_line(results: Results) -> str:
    """The family the verdicts' error rate is held over, in words: the tests that ran."""
    v, o = results.verdicts, results.options
    if v.empty:
        return "no claim could be tested"
    primary = v[in_main_family(v)]
    tested = primary[primary["p"].notna()]
    n_tested = int(primary["family"].max()) if len(tested) else 0
    how = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "no correction"}[o.correction]
    if n_tested == 0:
        return "family: " + _why_untested(results, primary)
    claims, ats = tested["claim"].nunique(), tested["at"].nunique()
    plural = "s" if ats != 1 else ""
    layered = tested["claim"][tested["layer"].notna()].nunique() if "layer" in tested else 0
    of_them = f", {layered} of them across depth," if layered else ""
    text = f"family: {n_tested} tests ({claims} claims{of_them} × {ats} comparison{plural}), "
    if o.correction == "none":
        text += f"each at α = {o.alpha:g} on its own: familywise error NOT controlled"
    else:
        text += f"familywise error ≤ {o.alpha:g} by {how}"
    text += _attainable(primary, o)
    secondary = v[~in_main_family(v) & v["p"].notna()]
    if len(secondary):
        text += f"; {int(secondary['family'].max())} secondary tests form their own family"
    for verdict in UNTESTED:
        count = int((v["verdict"] == verdict).sum())
        if count:
            text += f"; {count} rows {verdict}"
    return text


def _why_untested(results: Results, primary: pd.DataFrame) -> str:
    """Why no test of the planned family ran."""
    o, study = results.options, results.study
    if o.comparison == "matched" and not study.measured(o.progress_by):
        return (
            f"no test: the planned comparison (matched progress) needs {o.progress_by}, "
            "which the study did not measure"
        )
    applicable = primary[primary["verdict"] != NOT_APPLICABLE]
    if len(primary) and applicable.empty:
        reasons = dict.fromkeys(str(r) for r in primary["reason"] if isinstance(r, str) and r)
        return "no test: the planned comparisons are not applicable (" + "; ".join(reasons) + ")"
    return (
        f"no test could run on the {applicable['claim'].nunique()} claims (too few finished "
        f"trials: the extremes test needs {max(2, o.min_per_group)} per extreme value, the "
        f"rank test {o.min_trials} in all)"
    )


def _attainable(family: pd.DataFrame, options: Options) -> str:
    """A warning when most tests of the family cannot, whatever the data, give a p-value
    below the correction's first threshold α/m: a design with too few trials per value
    for its rank test (three values × 3 seeds: 0.0012), which then decides little."""
    tested = family[family["p"].notna()]
    if tested.empty or options.correction == "none":
        return ""
    first = options.alpha / len(tested)
    floored = tested[tested["p_floor"] > first]
    if len(floored) * 2 <= len(tested):
        return ""
    return (
        f". LOW RESOLUTION: {len(floored)} of {len(tested)} tests cannot give a p-value "
        f"below α/{len(tested)} = {first:.2g} (their smallest possible: "
        f"{floored['p_floor'].min():.2g}, a permutation test over few trials per value): "
        "they can be decided only after others are; more seeds per value would lift this"
    )


def comparisons_line(results: Results) -> str:
    """What the headline's columns compare, and what each cell shows."""
    v, o = results.verdicts, results.options
    primary = v[in_main_family(v)] if not v.empty else v
    ats = list(dict.fromkeys(primary["at"])) if len(primary) else []
    where = []
    if FINAL in ats:
        where.append("final: each finished trial's last evaluation")
    where += [f"matched: where each trial first reached {a}" for a in ats if a != FINAL]
    adjusted = "not adjusted" if o.correction == "none" else f"adjusted ({o.correction})"
    cell = (
        f"each cell: verdict: effect [{o.confidence:.0%} interval, not adjusted], p {adjusted}; "
        "the effect is the percent change between the extreme swept values (of geometric means "
        "for a positive quantity), or Spearman's ρ where that test could not run or the claim "
        "is between quantities"
    )
    return "; ".join([*where, cell])


def headline(results: Results) -> pd.DataFrame:
    """Per claim group, each claim's verdict overall and at each planned comparison, with
    its effect, interval and adjusted p-value (``final`` and ``matched`` columns)."""
    v = results.verdicts
    v = v[in_main_family(v)] if not v.empty else v
    if v.empty:
        return pd.DataFrame()
    rows = []
    for (group, claim), part in v.groupby(["group", "claim"], sort=False):
        label = _group_label(group, part["x"].iloc[0])
        row = {"group": label, "claim": claim, "verdict": _overall(part)}
        for r in part.itertuples():
            row["final" if r.at == FINAL else "matched"] = _cell(r)
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def group_summary(results: Results) -> pd.DataFrame:
    """One row per claim group: how many of its claims got each overall verdict."""
    head = headline(results)
    if head.empty:
        return pd.DataFrame()
    counts = pd.crosstab(head["group"], head["verdict"]).reindex(
        head["group"].unique(), fill_value=0
    )
    for always in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE):
        if always not in counts:
            counts[always] = 0
    order = [REPRODUCED, f"{REPRODUCED} (in part)", NOT_REPRODUCED, f"{NOT_REPRODUCED} (in part)",
             "mixed", INCONCLUSIVE, NOT_TESTED, NOT_APPLICABLE]  # fmt: skip
    shown = [c for c in order if c in counts] + [c for c in counts if c not in order]
    out = counts[shown].reset_index()
    out.insert(1, "claims", counts.sum(axis=1).to_numpy())
    return out.rename(columns={"group": "claim group"})


def _group_label(group: str, x: str) -> str:
    if group == "depth":  # the claims across depth, by mechanism
        return f"{schema.label(x)} across depth"
    return schema.label(group) if group != "chain" else "transfer chain"


def _cell(row) -> str:
    """A headline cell: ``verdict: effect [interval], p adj``."""
    if row.verdict in UNTESTED:
        return row.verdict
    text = row.verdict
    effect = effect_text(row)
    if effect:
        text += f": {effect}"
    p = p_text(row.p_adj)
    return text + (f", p {p}" if p else "")


def _overall(part: pd.DataFrame) -> str:
    """One word per claim across its comparisons: agreeing verdicts, or "mixed"; "not
    tested" / "not applicable" when no comparison made a test."""
    verdicts = {v for v in part["verdict"] if v not in UNTESTED}
    decided = verdicts - {INCONCLUSIVE}
    if not verdicts:
        untested = set(part["verdict"])
        return NOT_TESTED if NOT_TESTED in untested else NOT_APPLICABLE
    if len(decided) > 1:
        return "mixed"
    if decided:
        return decided.pop() if len(verdicts) == 1 else f"{next(iter(decided))} (in part)"
    return INCONCLUSIVE


def _extremes_text(row) -> str:
    if not np.isfinite(row.mean_from):
        return ""
    x = schema.label(row.x)
    centre = "geo-mean " if row.scale == "log" else ""
    return (
        f"{centre}{fmt(row.mean_from)} at {x}={fmt(row.x_from)} → {fmt(row.mean_to)} "
        f"at {fmt(row.x_to)}"
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
    by_status = ", ".join(f"{k}: {v}" for k, v in _status_counts(trials).items())
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
        ("analysis plan", _plan_text(study.plan)),
        *_provenance_facts(meta),
    ]


def _plan_text(plan: Plan) -> str:
    return (
        f"claims {', '.join(plan.claims)}; comparison {plan.comparison}; α {plan.alpha:g}, "
        f"{plan.correction}; progress by {plan.progress_by} at quantile "
        f"{plan.progress_quantile:g}; tests {'+'.join(plan.evidence)}, require {plan.require}"
    )


def _provenance_facts(meta: dict) -> list[tuple[str, str]]:
    """The code and data a study was made from, as ``study.json`` records them (studies
    written before it did have neither)."""
    out = []
    code = meta.get("code")
    if isinstance(code, dict) and code.get("commit"):
        state = "clean"
        if code.get("dirty"):
            diff = code.get("diff")
            sha = str(code.get("diff_sha256") or "")[:12]
            state = f"DIRTY: its changes in {diff} (sha256 {sha}…)" if diff else "DIRTY"
        out.append(("code", f"commit {str(code['commit'])[:12]} ({state})"))
    packages = meta.get("packages")
    if isinstance(packages, dict) and packages:
        out.append(("packages", ", ".join(f"{k} {v}" for k, v in packages.items())))
    for record in meta.get("datasets") or []:
        if isinstance(record, dict):
            out.append((f"data: {record.get('name', '?')}", _dataset_text(record)))
    return out


def _dataset_text(record: dict) -> str:
    parts = []
    norm = record.get("normalization") or {}
    if norm:
        mean, std = norm.get("mean"), norm.get("std")
        parts.append(
            f"normalised by mean {_short(mean)}, std {_short(std)} ({norm.get('fitted_on', '')})"
        )
    files = record.get("files") or {}
    if files:
        listed = files.get("files") or []
        if files.get("present"):
            shown = "; ".join(
                f"{f.get('path')} sha256 {str(f.get('sha256', ''))[:12]}…" for f in listed[:3]
            )
            more = f" and {len(listed) - 3} more" if len(listed) > 3 else ""
            parts.append(f"{len(listed)} file(s) hashed: {shown}{more}")
        else:
            parts.append(f"files not present where the study was started ({files.get('missing')})")
    gen = record.get("generator") or {}
    if gen:
        parts.append(f"generated: {gen.get('name')}, seed {gen.get('seed')}")
    for note in record.get("notes") or []:
        parts.append(f"note: {note}")
    if record.get("problem"):
        parts.append(f"not described: {record['problem']}")
    return "; ".join(parts) or "—"


def _short(values) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(fmt(float(v)) for v in values) + "]"
    return str(values)


def _measures(study: StudyResults) -> list[str]:
    fixed = [c for c, metric in schema.METRICS.items() if metric.kind == "double"]
    return fixed + [c for c in study.metrics.columns if schema.FEWSHOT.match(c)]


def format_tables(
    study: StudyResults,
    *,
    options: Options | None = None,
    results: Results | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> str:
    """What ``gcnc analyze DIR`` prints: the study in one line, its warnings, the search's
    best trials, the headline (per claim group, then per claim), then the facts, the
    verdicts in detail, final values and correlations."""
    results = results or compute_results(study, options=options, overrides=overrides)
    out = [f"{study.name}: {_trial_counts(study)} ({study.path})"]
    out += [f"WARNING: {w}" for w in study.warnings]
    best = search.format_best(study, options=results.options)
    if best:
        out += ["", best.rstrip("\n")]
    title = f"Headline ({results.label})"
    out += ["", title, "=" * len(title), results.label_line(), family_line(results)]
    if not results.verdicts.empty:
        out += _wrapped(comparisons_line(results))
    note = search.search_note(study)
    if note:
        out += _wrapped(f"NOTE: {note}")
    groups, head = group_summary(results), headline(results)
    if head.empty:
        out.append("(no claim could be tested)")
    else:
        out += ["", groups.to_string(index=False), "", head.to_string(index=False)]
    facts = study_facts(study)
    width = max(len(k) for k, _ in facts)
    out += ["", "Study", "====="]
    for key, value in facts:
        out += _wrapped(value, first=f"{key:>{width}}: ", indent=width + 2)
    sections = [
        (f"Verdicts on the paper's claims, in detail ({results.label})", verdict_display(results)),
        ("Final values across seeds (centre [CI] (n); geometric mean for positive quantities)",
         summary_display(results)),
        ("Correlations of final values (bootstrap CI)", correlation_display(results)),
    ]  # fmt: skip
    if results.depth_values is not None:
        sections += [
            (f"Verdicts across depth, per layer ({results.label})", depth_verdicts(results)),
            ("Values across depth (centre [CI] (n); geometric mean for positive quantities)",
             depth.values_display(results.depth_values)),
        ]  # fmt: skip
    for title, frame in sections:
        out += ["", title, "=" * len(title)]
        out.append(frame.to_string(index=False) if not frame.empty else "(nothing to show)")
    return "\n".join(out) + "\n"


def depth_verdicts(results: Results) -> pd.DataFrame:
    """The planned family's claims across depth, one column per layer
    (:func:`analysis.depth.verdicts_by_layer`)."""
    v = results.verdicts
    main = v[in_main_family(v)] if not v.empty else v
    return depth.verdicts_by_layer(main, results.study.layers)


def _wrapped(text: str, *, first: str = "", indent: int = 2, width: int = 100) -> list[str]:
    """A long line of text for the terminal, folded at ``width``."""
    return textwrap.wrap(
        text, width=width, initial_indent=first, subsequent_indent=" " * indent,
        break_on_hyphens=False,
    ) or [first.rstrip()]  # fmt: skip


def _trial_counts(study: StudyResults) -> str:
    counts = _status_counts(study.trials)
    if counts.empty:
        return f"{len(study.trials)} trials"
    return f"{len(study.trials)} trials (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"


def _status_counts(trials: pd.DataFrame) -> pd.Series:
    """Trials per status, most first; a missing status counts as ``unknown``."""
    if "status" not in trials:
        return pd.Series(dtype=int)
    return trials["status"].astype(object).fillna("unknown").value_counts()


def results_json(results: Results) -> dict[str, Any]:
    """Every verdict, interval, p-value and option of an analysis, JSON-ready
    (``gcnc analyze --json FILE``)."""
    o = results.options
    return {
        "study": results.study.name,
        "directory": results.study.path,
        "label": results.label,
        "exploratory": results.exploratory,
        "plan": results.plan.as_dict(),
        "spec_hash": results.study.meta.get("spec_hash"),
        "code": results.study.meta.get("code"),
        "options": o.plan().as_dict() | asdict(o),
        "family": family_line(results),
        "comparisons": comparisons_line(results) if not results.verdicts.empty else "",
        "group_summary": _records(group_summary(results)),
        "warnings": list(results.study.warnings),
        "headline": _records(headline(results)),
        "search_note": search.search_note(results.study),
        "best_trials": _records(search.best_trials(results.study, k=None, options=o)),
        "verdicts": _records(results.verdicts.assign(label=results.label)),
        "final_values": _records(results.final_summary),
        "correlations": _records(results.correlations),
    } | _depth_json(results)


def _depth_json(results: Results) -> dict[str, Any]:
    """The layers, the verdicts per layer and the values across depth, where the study
    measures layers; nothing otherwise."""
    table = results.study.layers
    if table is None or results.depth_values is None:
        return {}
    layers = [asdict(layer) for layer in table.layers]
    return {
        "depth": {
            "layers": layers,
            "verdicts": _records(depth_verdicts(results)),
            "values": _records(results.depth_values),
        }
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values; NaN becomes None."""
    if frame.empty:
        return []
    clean = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in clean.to_dict(orient="records")
    ]
