"""The verdicts (the same tables as ``gcnc analyze``), the comparison of several studies and
the exports, as plain functions of the hub and the controls' values."""

from __future__ import annotations

import contextlib
import html as html_text
from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from analysis import compare
from analysis.explore import _curves, _finals
from analysis.explore._hub import StudyHub
from analysis.explore._page import PLAN, graph_config, table
from analysis.explore._safe import safe_figure, safe_filename
from analysis.explore._trials import rows_bytes, trial_rows
from analysis.explore._views import shown_trials
from analysis.figures import NotMeasured
from analysis.options import Options
from analysis.report import render_html
from analysis.tables import (
    Results,
    comparisons_line,
    family_line,
    group_summary,
    headline,
    verdict_display,
)
from studyfiles import InputError


def overrides(**settings: Any) -> dict[str, Any]:
    """The verdict settings the page changed from the plan (``plan``: left as planned)."""
    return {k: v for k, v in settings.items() if v is not None and v != PLAN}


def verdict_panel(hub: StudyHub, i: int, changes: Mapping[str, Any]) -> list:
    """The label, the family, the group counts, the headline and every test."""
    try:
        results = hub.results(i, changes)
    except (InputError, ValueError) as exc:
        return [html.Div(f"these settings cannot be used: {exc}", className="problem")]
    return verdict_components(results)


def verdict_components(results: Results) -> list:
    label = html.Div(
        results.label_line(), id="analysis-label", className=f"label label-{results.label}"
    )
    lines = [family_line(results) + "."]
    if not results.verdicts.empty:
        lines.append(comparisons_line(results) + ".")
    head = headline(results)
    detail = verdict_display(results)
    return [
        label,
        html.P(" ".join(lines), className="note", id="family-line"),
        table(group_summary(results), table_id="group-summary"),
        html.H3(f"Headline ({results.label})"),
        table(head, table_id="headline", verdict_cols=("verdict", "final", "matched")),
        html.Details(
            [
                html.Summary(f"Every test ({len(detail)} rows)"),
                table(detail, table_id="verdict-table", verdict_cols=("verdict",)),
            ]
        ),
    ]


def compare_panel(hub: StudyHub, changes: Mapping[str, Any], *, fmt: str = "png") -> list:
    """Claims × studies, one table per comparison with one column per study, the notes,
    and the overlaid curves of the keys several studies sweep."""
    try:
        results = [hub.results(i, changes) for i in range(len(hub))]
    except (InputError, ValueError) as exc:
        return [html.Div(f"these settings cannot be used: {exc}", className="problem")]
    labels = compare.study_labels(results)
    full = compare.comparison_table(results)
    out = [html.P(_CELL, className="note")]
    for at in compare.COMPARISONS:
        cols = [f"{at}: {label}" for label in labels]
        if not any(c in full for c in cols):
            continue
        part = full[["group", "claim"]].copy()
        for label, col in zip(labels, cols, strict=True):
            part[label] = full.get(col, compare.MISSING)
        out += [
            html.H3("At the final epoch" if at == "final" else "At matched training progress"),
            table(
                part,
                table_id=f"compare-{at}",
                verdict_cols=tuple(labels),
                head_class=lambda c, ls=tuple(labels): "study-col" if c in ls else None,
            ),
        ]
    if len(out) == 1:
        out.append(html.P("No claim could be tested in any study.", className="note"))
    notes = compare.comparison_notes(results)
    if notes:
        out.append(html.Ul([html.Li(n) for n in notes], className="note"))
    for name, fig in compare.overlay_figures(results).items():
        out.append(dcc.Graph(figure=safe_figure(fig), config=graph_config(fmt, name)))
    return out


_CELL = (
    "Each study under its own plan (with the settings above, if changed). Each cell: the "
    "study's headline cell, verdict: effect [1 − α interval, not adjusted], p adjusted by "
    f"the study's correction; {compare.MISSING}: the study did not test the claim there."
)


def view_figures(hub: StudyHub, i: int, spec: dict, draw: dict) -> dict[str, go.Figure]:
    """The figures the page shows now, drawn again for a snapshot."""
    study = hub.study(i)
    ids = shown_trials(hub, i, spec)["trial_id"].tolist()
    figures: dict[str, go.Figure] = {}
    if draw.get("metric") and ids:
        log_y = draw.pop("log_y", False)
        view = _curves.curves_view(study, ids, **draw)
        figures["curves"] = _curves.plot_curves_view(view, log_y=log_y)
        info = _finals.parcoords_info(study, shown_trials(hub, i, spec), colour_by=draw["metric"])
        if info.trial_ids and len(info.axes) > 1:
            figures["parallel_coordinates"] = _finals.plot_parcoords(info)
    finals = _finals.finished_rows(study, ids)
    options = Options.from_plan(study.plan)
    for name, make in (
        ("correlations", lambda: _finals.correlation_figure(study, finals, options)),
        ("scatter_matrix", lambda: _finals.scatter_figure(study, finals)),
    ):
        with contextlib.suppress(NotMeasured):
            figures[name] = make()
    return {name: go.Figure(safe_figure(fig)) for name, fig in figures.items()}


def snapshot(hub: StudyHub, i: int, spec: dict, draw: dict, changes: Mapping[str, Any]) -> dict:
    """The page now as one self-contained HTML file (the report's page: plotly.js inline,
    the verdicts under the page's settings, the figures as drawn), for ``dcc.Download``."""
    results = hub.results(i, changes)
    figures = view_figures(hub, i, spec, dict(draw))
    page = render_html(results, figures, [])
    shown = len(shown_trials(hub, i, spec))
    what = (
        f"Snapshot of the gcnc explorer: {shown} of {len(hub.table(i))} trials shown "
        f"(filters: {describe(spec)}); y {draw.get('metric')}, x {draw.get('x')}, "
        f"{draw.get('mode')}; data version {hub.versions[i]}."
    )
    note = f'<p class="note" id="snapshot-note">{html_text.escape(what)}</p>'
    page = page.replace("</h1>", "</h1>" + note, 1)
    name = f"{safe_filename(hub.study(i).name)}-explorer.html"
    return dcc.send_string(page, name, type="text/html")


def rows_download(hub: StudyHub, i: int, spec: dict, fmt: str) -> dict:
    """The metrics rows of the trials shown, as CSV or Parquet, for ``dcc.Download``."""
    ids = shown_trials(hub, i, spec)["trial_id"].tolist()
    data = rows_bytes(trial_rows(hub.study(i), ids), fmt)
    return dcc.send_bytes(data, f"{safe_filename(hub.study(i).name)}-rows.{fmt}")


def describe(spec: dict) -> str:
    """A filter spec in words."""
    parts = [f"{k} not {v}" for k, v in (spec.get("excluded") or {}).items() if v]
    for key, (low, high, log) in (spec.get("ranges") or {}).items():
        lo, hi = (10**low, 10**high) if log else (low, high)
        parts.append(f"{key} in [{lo:.4g}, {hi:.4g}]")
    if spec.get("statuses") is not None:
        parts.append(f"status in {spec['statuses']}")
    if spec.get("diverged", "any") != "any":
        parts.append(f"diverged: {spec['diverged']}")
    return "; ".join(parts) or "none"
