"""What each part of the page shows, as plain functions of the hub and the controls'
values (the callbacks only pass values through; the tests call these directly)."""

from __future__ import annotations

import json
import time

import pandas as pd
from dash import dcc, html

from analysis.explore import _curves, _finals
from analysis.explore._hub import StudyHub
from analysis.explore._page import graph_config, table
from analysis.explore._safe import message_figure, safe_figure
from analysis.explore._trials import (
    STATUS_NAMES,
    duration_text,
    filter_choices,
    filter_trials,
    metric_choices,
    params,
    progress,
    trial_facts,
    x_choices,
)
from analysis.figures import NotMeasured
from analysis.options import Options
from analysis.tables import study_facts
from studyfiles import schema


def refresh_line(hub: StudyHub, i: int) -> tuple[str, list]:
    """When the study was last read and what that cost; a problem met, named."""
    checked = hub.checked(i)
    r = checked.refresh
    when = time.strftime("%H:%M:%S", time.localtime(checked.at))
    text = f"read {when}: {r.files_read} of {r.files_total} files in {r.seconds:.2f} s"
    if not r.problem:
        return text, []
    problem = f"{r.problem} — the page shows the last data that could be read"
    return text, [html.Div(problem, className="problem", id="problem-text")]


def progress_panel(hub: StudyHub, i: int) -> list:
    """Trials by status, a bar of ended over all, the ETA and the metric rows read."""
    study, tab = hub.study(i), hub.table(i)
    p = progress(study, tab)
    counts = [html.Span(f"{p.total} trials:", className="count")]
    for name in [*STATUS_NAMES.values(), *(k for k in p.counts if k not in STATUS_NAMES.values())]:
        if p.counts.get(name) or name in ("done", "running", "failed", "stopped"):
            counts.append(html.Span(f"{name} {p.counts.get(name, 0)}", id=f"count-{name}"))
    counts.append(html.Span(f"diverged {p.diverged}", id="count-diverged"))
    eta = "ETA " + (duration_text(p.eta_s) if p.eta_s is not None else "—")
    if p.rate_per_h:
        eta += f" ({p.rate_per_h:.3g} trials/h so far)"
    rows = html.Span(["metric rows: ", html.Span(str(p.rows), id="row-count")])
    bar = html.Progress(value=str(p.ended), max=str(max(p.total, 1)), title=f"{p.ended} ended")
    return [*counts, bar, html.Span(eta, id="eta"), rows]


def warnings_panel(hub: StudyHub, i: int) -> list:
    warnings = hub.study(i).warnings
    if not warnings:
        return []
    items = [html.Li(w) for w in warnings]
    noun = "warning" if len(warnings) == 1 else "warnings"
    summary = html.Summary(f"{len(warnings)} {noun} about this study's files")
    return [html.Details([summary, html.Ul(items)], className="warn")]


def draw_options(hub: StudyHub, i: int) -> dict:
    """The choices of the side panel's dropdowns for study ``i``."""
    study = hub.study(i)
    keys = [{"label": schema.label(p), "value": p} for p in params(study)]
    return {
        "metric": [{"label": schema.label(m), "value": m} for m in metric_choices(study)],
        "xaxis": [
            {"label": "wall time" if x == "wall_time_s" else schema.label(x), "value": x}
            for x in x_choices(study)
        ],
        "keys": keys,
    }


def opening_draw(hub: StudyHub, i: int) -> dict:
    """The side panel's choices and values for study ``i`` opened afresh: the default y
    metric, x by epoch, coloured by the first swept key other than the seed."""
    options = draw_options(hub, i)
    hyper = hub.study(i).hyper_params
    return {
        "options": options,
        "metric": default_metric(options["metric"], None),
        "x": "epoch",
        "colour": hyper[0] if hyper else None,
        "facet": None,
    }


def default_metric(options: list[dict], current: object) -> object:
    values = [o["value"] for o in options]
    if current in values:
        return current
    return next((v for v in ("gc", "train_loss") if v in values), values[0] if values else None)


def param_filters(hub: StudyHub, i: int) -> list:
    """One checklist per swept key (a range slider for one with many numeric values)."""
    out = []
    for choice in filter_choices(hub.table(i), params(hub.study(i))):
        name = schema.label(choice.param)
        label = html.Label(f"{name} (log10)" if choice.log else name, className="note")
        if choice.is_range:
            slider = dcc.RangeSlider(
                id={"type": "pf-range", "param": choice.param, "log": int(choice.log)},
                min=choice.low,
                max=choice.high,
                step=(choice.high - choice.low) / 200,
                value=[choice.low, choice.high],
                tooltip={"placement": "bottom"},
                marks=None,
            )
            out.append(html.Div([label, slider]))
            continue
        options = [{"label": _value_text(v), "value": v} for v in choice.values]
        box = dcc.Checklist(
            id={"type": "pf-values", "param": choice.param},
            options=options,
            value=list(choice.values),
            inline=True,
        )
        out.append(html.Div([label, box]))
    return out


def _value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def filter_spec(
    statuses: list,
    diverged: str,
    values: list,
    options: list,
    value_ids: list,
    ranges: list,
    extents: list,
    range_ids: list,
    *,
    brushed: dict | None = None,
) -> dict:
    """The page's filter controls as a :func:`~analysis.explore._trials.filter_trials` spec.

    Args:
        values, options, value_ids: each checklist's ticked values, offered values and id.
        ranges, extents, range_ids: each range slider's value, its ``[min, max]`` and id; a
            slider at its full extent filters nothing (so a later value outside it shows).
    """
    excluded = {}
    for chosen, offered, cid in zip(values, options, value_ids, strict=True):
        chosen = set(chosen or [])
        unticked = [o["value"] for o in offered if o["value"] not in chosen]
        if unticked:
            excluded[cid["param"]] = unticked
    spans = {}
    for value, extent, cid in zip(ranges, extents, range_ids, strict=True):
        if value and list(value) != list(extent):
            spans[cid["param"]] = [float(value[0]), float(value[1]), bool(cid["log"])]
    every = set(STATUS_NAMES) <= set(statuses or [])
    return {
        "excluded": excluded,
        "ranges": spans,
        "statuses": None if every else list(statuses or []),
        "diverged": diverged or "any",
        **({"brushed": brushed} if brushed else {}),
    }


OPEN_FILTERS = filter_spec(list(STATUS_NAMES), "any", [], [], [], [], [], [])  # all shown


def curves_key(hub: StudyHub, i: int, spec: dict | None, draw: dict) -> str:
    """What a curves figure was drawn from: the study, its data version, the filters and
    the drawing choices. The page keeps the key of the figure it shows, so a callback
    asked for the same figure again (the page's first callbacks after the layout already
    held it) need not draw it twice."""
    return json.dumps([i, hub.versions[i], spec or {}, draw], sort_keys=True, default=str)


def shown_trials(hub: StudyHub, i: int, spec: dict) -> pd.DataFrame:
    return filter_trials(hub.table(i), spec or {})


def trial_count(hub: StudyHub, i: int, spec: dict) -> str:
    return f"{len(shown_trials(hub, i, spec))} of {len(hub.table(i))} trials shown"


def curves_figure(hub: StudyHub, i: int, spec: dict, **draw) -> dict:
    """The curves of the trials shown (``draw``: metric, x, colour, facet, mode, log_y)."""
    if not draw.get("metric"):
        return message_figure("this study has measured nothing yet")
    ids = shown_trials(hub, i, spec)["trial_id"].tolist()
    if not ids:
        return message_figure("no trial passes the filters")
    log_y = draw.pop("log_y", False)
    view = _curves.curves_view(hub.study(i), ids, **draw)
    return _keep_ui(safe_figure(_curves.plot_curves_view(view, log_y=log_y)), i)


def opening_view(hub: StudyHub, i: int = 0) -> dict:
    """What the page shows of study ``i`` when it opens, made with the page itself so the
    curves appear without waiting for the callbacks: the side panel's choices and values,
    the filters (every trial shown), and the curves figure with its :func:`curves_key`
    (None when it could not be drawn here: the callback then draws it)."""
    opening = opening_draw(hub, i)
    draw = {k: opening[k] for k in ("metric", "x", "colour", "facet")}
    draw |= {"mode": "groups", "log_y": False}  # the page's initial radio and checklist
    figure, key = None, None
    try:
        key = curves_key(hub, i, OPEN_FILTERS, draw)
        figure = curves_figure(hub, i, OPEN_FILTERS, **dict(draw))
    except Exception:  # the page must open; the curves callback names the problem
        figure, key = None, None
    return opening | {
        "filters": param_filters(hub, i),
        "spec": OPEN_FILTERS,
        "figure": figure,
        "key": key,
    }


MAX_ROWS = 200  # rows of the trial table drawn; sort to bring others up


def trial_list(
    hub: StudyHub,
    i: int,
    spec: dict,
    metric: str | None,
    *,
    sort_by: str | None = None,
    descending: bool = False,
    page: int | None = 1,
) -> tuple[object, list[dict]]:
    """The trial table (status, swept keys, progress, the y metric) in the order asked,
    page ``page`` of :data:`MAX_ROWS` rows (the last page where it is past the end), each
    row clickable; and the columns to sort by."""
    shown = shown_trials(hub, i, spec)
    keys = params(hub.study(i))
    cols = ["trial_id", "status", "diverged", *keys, "attempts", "epoch", "rows"]
    cols += [c for c in dict.fromkeys([metric, "test_acc", "wall_time_s"]) if c and c in shown]
    frame = shown[[c for c in cols if c in shown]]
    frame = frame.assign(status=frame["status"].map(lambda s: STATUS_NAMES.get(s, s)))
    sortable = [{"label": _column_label(c), "value": c} for c in frame]
    if sort_by in frame:
        frame = frame.sort_values(sort_by, ascending=not descending, kind="stable")
    pages = max(1, -(-len(frame) // MAX_ROWS))
    start = (min(max(int(page or 1), 1), pages) - 1) * MAX_ROWS
    body = [
        html.Tr(
            [html.Td(_cell(row[c])) for c in frame],
            id={"type": "trial-row", "trial": str(row["trial_id"])},
            n_clicks=0,
            className="clickable",
        )
        for row in frame.iloc[start : start + MAX_ROWS].to_dict("records")
    ]
    head = html.Thead(html.Tr([html.Th(_column_label(c)) for c in frame]))
    note = ""
    if len(frame) > MAX_ROWS:
        note = (
            f"rows {start + 1}–{min(start + MAX_ROWS, len(frame))} of {len(frame)} "
            f"(page {start // MAX_ROWS + 1} of {pages}: choose the page above)"
        )
    listing = html.Div(
        [html.Table([head, html.Tbody(body)], className="plain"), html.P(note, className="note")]
    )
    return listing, sortable


def _column_label(column: str) -> str:
    return "wall time (s)" if column == "wall_time_s" else schema.label(column)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)


def parcoords_figure(
    hub: StudyHub, i: int, spec: dict, metric: str | None
) -> tuple[dict, list[dict]]:
    """The parallel coordinates of the trials the filters but the brushes keep, brushed
    as the filters say; and its axes in order (name, log, ticktext) for reading the
    reader's brushing back (:func:`~analysis.explore._trials.brush_from_event`)."""
    spec = spec or {}
    unbrushed = {k: v for k, v in spec.items() if k != "brushed"}
    shown = shown_trials(hub, i, unbrushed)
    info = _finals.parcoords_info(hub.study(i), shown, colour_by=metric or "gc")
    if not info.trial_ids or len(info.axes) < 2:
        return message_figure("nothing to draw: no trial shown has values on two axes"), []
    figure = _finals.plot_parcoords(info, spec.get("brushed"))
    axes = [{"name": a.name, "log": a.log, "ticktext": list(a.ticktext)} for a in info.axes]
    return _keep_ui(safe_figure(figure), i, metric), axes


def brush_note(brushed: dict | None) -> str:
    """The brushes in words, for the side panel."""
    parts = []
    for key, brush in (brushed or {}).items():
        name = schema.label(key)
        if brush.get("values") is not None:
            parts.append(f"{name} ∈ {{{', '.join(brush['values'])}}}")
            continue
        spans = " or ".join(
            f"[{_brush_end(lo, brush)}, {_brush_end(hi, brush)}]" for lo, hi in brush["spans"]
        )
        parts.append(f"{name} in {spans}")
    return ("brushed on the parallel coordinates: " + "; ".join(parts)) if parts else ""


def _brush_end(value: float, brush: dict) -> str:
    return f"{10**value:.3g}" if brush.get("log") else f"{value:.3g}"


def finals_figures(hub: StudyHub, i: int, spec: dict) -> tuple[dict, dict]:
    """The correlation heatmap and the scatter matrix of the finished trials shown."""
    study = hub.study(i)
    ids = shown_trials(hub, i, spec)["trial_id"].tolist()
    finals = _finals.finished_rows(study, ids)
    options = Options.from_plan(study.plan)
    out = []
    for make in (
        lambda: _finals.correlation_figure(study, finals, options),
        lambda: _finals.scatter_figure(study, finals),
    ):
        try:
            out.append(_keep_ui(safe_figure(make()), i))
        except NotMeasured as exc:
            out.append(message_figure(f"{exc} (finished trials shown: {len(finals)})"))
    return out[0], out[1]


def _keep_ui(figure: dict, *key: object) -> dict:
    """``figure`` keeping the reader's zoom, hidden traces and brushed ranges when it is
    drawn again with new data (Plotly's ``uirevision``), until ``key`` changes."""
    layout = figure.setdefault("layout", {})
    layout["uirevision"] = "|".join(map(str, [*key, layout.get("uirevision", "")]))
    return figure


def find_trial(hub: StudyHub, i: int, clicked: object) -> str | None:
    """The trial a click named, if the study holds it."""
    ids = set(hub.table(i)["trial_id"])
    return clicked if isinstance(clicked, str) and clicked in ids else None


def clicked_trial(trigger: object, click: dict | None, *, row_clicks: int | None = None) -> object:
    """The trial id a click carries: on the curves (``trigger`` "curves"), a point's
    ``customdata``; on a row of the trial table (``trigger`` the row's id), the row's trial,
    once it has been clicked (``row_clicks``)."""
    if trigger == "curves" and click:
        points = click.get("points") or [{}]
        return points[0].get("customdata")
    if isinstance(trigger, dict) and trigger.get("type") == "trial-row" and row_clicks:
        return trigger.get("trial")
    return None


def trial_detail(
    hub: StudyHub, i: int, trial_id: str | None, x: str | None, *, fmt: str = "png"
) -> list:
    """A trial's curves, its facts and config, and the study's provenance."""
    if trial_id is None:
        hint = "click a trial in the table, or a line in 'each trial' mode"
        return [html.P(hint, className="note")]
    study = hub.study(i)
    facts, config = trial_facts(study, trial_id)
    if not facts:
        return [html.P(f"{trial_id}: not in this study", className="note")]
    figure = safe_figure(_curves.plot_trial(study, trial_id, x=x or "epoch"))
    curves = dcc.Graph(id="trial-curves", figure=figure, config=graph_config(fmt, "trial"))
    provenance = pd.DataFrame(study_facts(study), columns=["study", "value"])
    return [
        curves,
        html.Div(
            [
                html.Div(
                    table(pd.DataFrame(facts, columns=["trial", "value"]), table_id="trial-facts")
                ),
                html.Div([html.H4("config"), html.Pre(config or "—", id="trial-config")]),
            ],
            className="row",
            style={"alignItems": "flex-start"},
        ),
        html.Details([html.Summary("the study's provenance (study.json)"), table(provenance)]),
    ]
