"""The explorer's page: a header (study, refresh, progress), a side panel (what to draw,
which trials, exports) and tabs (curves, trials, final values, verdicts, comparison), with
the selected trial below. Only layout here; the callbacks fill it."""

from __future__ import annotations

import pandas as pd
from dash import dcc, html

from analysis.explore._hub import StudyHub
from analysis.explore._trials import DIVERGED_FILTERS, STATUS_NAMES
from studyfiles.plan import COMPARISONS, CORRECTIONS, PROGRESS_MEASURES

PLAN = "plan"  # a setting left as the study's analysis plan says
ALPHAS = (0.01, 0.05, 0.1, 0.2)
QUANTILES = (1.0, 0.9, 0.8, 0.7, 0.5)

CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;font-size:14px}
header{padding:.6em 1.2em;border-bottom:1px solid #ddd;background:#fafafa}
header h1{font-size:1.3em;margin:0 1em 0 0;display:inline-block}
.row{display:flex;gap:1em;align-items:center;flex-wrap:wrap}
.main{display:flex;align-items:flex-start}
aside{width:270px;min-width:270px;padding:.8em 1em;border-right:1px solid #eee}
aside h3{font-size:1em;margin:1em 0 .3em} aside label{display:block}
section.content{flex:1;padding:.5em 1em;min-width:0}
.note{color:#555;font-size:12px} .count{font-weight:600}
.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:.4em 1em;margin:.3em 0}
.problem{background:#fbe0e0;border-left:4px solid #d93025;padding:.4em 1em;margin:.3em 0}
table.plain{border-collapse:collapse;font-size:13px;margin:.5em 0}
table.plain th,table.plain td{border:1px solid #ddd;padding:3px 8px;text-align:left}
table.plain th{background:#f4f4f4}
.v-reproduced{background:#dff3e0} .v-not-reproduced{background:#fbe0e0}
.v-inconclusive{background:#f3f3f3} .v-missing{color:#999}
.label{padding:.5em 1em;margin:.5em 0;font-weight:600}
.label-primary{background:#e8f0fe;border-left:4px solid #3367d6}
.label-exploratory{background:#fff4e5;border-left:4px solid #d93025}
progress{width:240px;height:14px} pre{background:#f6f6f6;padding:.5em;font-size:12px}
button{margin:.15em .3em .15em 0} .dash-checklist label,.dash-radioitems label{margin-right:.6em}
.tab{padding:6px 10px !important;line-height:1.4 !important}
tr.clickable{cursor:pointer} tr.clickable:hover{background:#eef4ff}
"""

# Plotly's script (3.5 MB) is fetched by the first graph, after the layout has come and been
# drawn; parsing it then is the longest step before the curves show. Fetched as soon as the
# page has asked for its layout, it is parsed while the server makes that layout. (Should
# the first graph look before it has run, it fetches its own copy: slower, not wrong.)
EARLY_PLOTLY = """<script>(function () {
  var prefix = JSON.parse(document.getElementById("_dash-config").textContent)
    .requests_pathname_prefix || "/";
  var fetchFirst = window.fetch, started = false;
  window.fetch = function (what) {
    var answer = fetchFirst.apply(this, arguments);
    if (!started && !window.Plotly && String(what.url || what).indexOf("_dash-layout") >= 0) {
      started = true;
      var script = document.createElement("script");
      script.src = prefix + "_dash-component-suites/plotly/package_data/plotly.min.js";
      script.async = true;
      setTimeout(function () { document.head.appendChild(script); }, 0);
    }
    return answer;
  };
})();</script>"""

INDEX = f"""<!DOCTYPE html>
<html lang="en"><head>{{%metas%}}<title>{{%title%}}</title>{{%favicon%}}{{%css%}}
<style>{CSS}</style></head><body>{{%app_entry%}}<footer>{{%config%}}{{%scripts%}}
{EARLY_PLOTLY}{{%renderer%}}</footer></body></html>"""


def layout(hub: StudyHub, *, interval_s: float, opening: dict) -> html.Div:
    """The whole page, opened on the first study, showing ``opening``
    (:func:`~analysis.explore._views.opening_view` of it) before any callback runs."""
    studies = [{"label": hub.label(i), "value": i} for i in range(len(hub))]
    ticks = dcc.Interval(id="tick", interval=max(interval_s, 0.5) * 1000, disabled=interval_s <= 0)
    return html.Div(
        [
            dcc.Store(id="versions", data=list(hub.versions)),
            dcc.Store(id="filter-spec", data=opening["spec"]),
            dcc.Store(id="curves-key", data=opening["key"]),
            dcc.Store(id="selected-trial", data=None),
            dcc.Store(id="brush", data={}),
            dcc.Store(id="parcoords-axes", data=[]),
            dcc.Download(id="download"),
            ticks,
            _header(studies, interval_s),
            html.Div([_side_panel(opening), _tabs(len(hub) > 1, opening)], className="main"),
        ]
    )


def _header(studies: list[dict], interval_s: float) -> html.Header:
    every = f"every {interval_s:g} s" if interval_s > 0 else "off (reload the page)"
    return html.Header(
        [
            html.Div(
                [
                    html.H1("gcnc explorer"),
                    dcc.Dropdown(
                        id="study",
                        options=studies,
                        value=0,
                        clearable=False,
                        style={"minWidth": "320px"},
                    ),
                    html.Span(f"live refresh {every}", className="note"),
                    html.Span(id="refresh-line", className="note"),
                ],
                className="row",
            ),
            html.Div(id="problem"),
            html.Div(id="progress", className="row"),
            html.Div(id="study-warnings"),
        ]
    )


def _side_panel(opening: dict) -> html.Aside:
    options = opening["options"]

    def dropdown(control_id: str, choices: str, value: str, **kw) -> dcc.Dropdown:
        return dcc.Dropdown(id=control_id, options=options[choices], value=opening[value], **kw)

    return html.Aside(
        [
            html.H3("Draw"),
            _labelled("y", dropdown("metric", "metric", "metric", clearable=False)),
            _labelled("x", dropdown("xaxis", "xaxis", "x", clearable=False)),
            _labelled("colour by", dropdown("colour", "keys", "colour", placeholder="(none)")),
            _labelled("facet by", dropdown("facet", "keys", "facet", placeholder="(none)")),
            dcc.RadioItems(
                id="mode",
                options=[
                    {
                        "label": "settings (all swept keys but the seed), across seeds",
                        "value": "groups",
                    },
                    {"label": "each trial", "value": "trials"},
                ],
                value="groups",
            ),
            dcc.Checklist(id="logy", options=[{"label": "log y", "value": "log"}], value=[]),
            html.H3("Trials"),
            html.Div(id="trial-count", className="count"),
            dcc.Checklist(
                id="status-filter",
                options=[{"label": name, "value": s} for s, name in STATUS_NAMES.items()],
                value=list(STATUS_NAMES),
                inline=True,
            ),
            dcc.RadioItems(
                id="diverged-filter",
                options=[{"label": f"diverged: {d}", "value": d} for d in DIVERGED_FILTERS],
                value="any",
            ),
            html.Div(id="param-filters", children=opening["filters"]),
            html.Div(
                [
                    html.Span(id="brush-note", className="note"),
                    html.Button("clear brushing", id="clear-brush"),
                ],
                id="brush-panel",
            ),
            html.H3("Export"),
            html.Button("rows as CSV", id="dl-csv"),
            html.Button("rows as Parquet", id="dl-parquet"),
            html.Button("HTML snapshot", id="dl-html"),
            _labelled(
                "figure camera button saves",
                dcc.RadioItems(id="image-format", options=["png", "svg"], value="png", inline=True),
            ),
            html.P(
                "The rows and the snapshot hold the trials shown; the snapshot is one "
                "self-contained HTML file (plotly.js inline) with the figures and verdicts "
                "as they are now.",
                className="note",
            ),
        ]
    )


def _labelled(text: str, control) -> html.Div:
    return html.Div([html.Label(text, className="note"), control])


GRAPHS = ("curves", "parcoords", "heatmap", "splom")


def graph(graph_id: str, **kw) -> dcc.Graph:
    return dcc.Graph(id=graph_id, config=graph_config("png", graph_id), **kw)


def graph_config(fmt: str, name: str) -> dict:
    """Plotly's own modebar; its camera button saves ``fmt`` (png or svg)."""
    fmt = fmt if fmt in ("png", "svg") else "png"
    options = {"format": fmt, "filename": f"gcnc-{name}", "scale": 2 if fmt == "png" else 1}
    return {"displaylogo": False, "toImageButtonOptions": options}


def _tabs(compare: bool, opening: dict) -> html.Section:
    curves = graph("curves", figure=opening["figure"]) if opening["figure"] else graph("curves")
    tabs = [
        dcc.Tab(label="Curves", value="curves", children=[curves]),
        dcc.Tab(
            label="Trials",
            value="trials",
            children=[
                html.Div(
                    [
                        html.Label("sort by", className="note"),
                        dcc.Dropdown(id="sort-by", style={"width": "220px"}),
                        dcc.RadioItems(
                            id="sort-order",
                            options=[
                                {"label": "ascending", "value": "asc"},
                                {"label": "descending", "value": "desc"},
                            ],
                            value="asc",
                            inline=True,
                        ),
                        html.Label("page", className="note"),
                        dcc.Input(
                            id="trial-page",
                            type="number",
                            min=1,
                            step=1,
                            value=1,
                            debounce=True,
                            style={"width": "70px"},
                        ),
                    ],
                    className="row",
                ),
                html.Div(id="trial-table"),
                html.P("click a row to see the trial below", className="note"),
                graph("parcoords"),
            ],
        ),
        dcc.Tab(label="Final values", value="finals", children=[graph("heatmap"), graph("splom")]),
        dcc.Tab(
            label="Verdicts",
            value="verdicts",
            children=[_verdict_settings(), html.Div(id="verdicts")],
        ),
    ]
    if compare:
        compared = html.Div(id="compare")
        tabs.append(dcc.Tab(label="Compare studies", value="compare", children=[compared]))
    return html.Section(
        [
            dcc.Tabs(id="tabs", value="curves", children=tabs, style={"height": "38px"}),
            html.H3("Selected trial"),
            html.Div(id="trial-detail", children=html.P("click a trial", className="note")),
        ],
        className="content",
    )


def _verdict_settings() -> html.Div:
    def choice(control_id: str, label: str, values) -> html.Div:
        options = [{"label": "as planned", "value": PLAN}]
        options += [{"label": str(v), "value": v} for v in values]
        dropdown = dcc.Dropdown(id=control_id, options=options, value=PLAN, clearable=False)
        return html.Div([html.Label(label, className="note"), dropdown], style={"width": "160px"})

    return html.Div(
        [
            choice("alpha", "α (familywise)", ALPHAS),
            choice("correction", "correction", CORRECTIONS),
            choice("comparison", "comparison", COMPARISONS),
            choice("progress-by", "progress by", PROGRESS_MEASURES),
            choice("quantile", "progress quantile", QUANTILES),
            html.P(
                "Any setting other than the plan's makes every result EXPLORATORY.",
                className="note",
            ),
        ],
        className="row",
    )


def table(frame: pd.DataFrame, *, table_id: str | None = None, verdict_cols=(), head_class=None):
    """A plain table of ``frame`` (every value shown as text, escaped by React); cells of
    ``verdict_cols`` coloured by the verdict they state; ``head_class(column)`` a class
    for a header cell."""
    if frame.empty:
        return html.P("Nothing to show.", className="note")
    heads = [html.Th(str(c), className=head_class(c) if head_class else None) for c in frame]
    body = []
    for row in frame.itertuples(index=False):
        cells = [
            html.Td(str(v), className=_verdict_class(v) if c in verdict_cols else None)
            for c, v in zip(frame.columns, row, strict=True)
        ]
        body.append(html.Tr(cells))
    kw = {"id": table_id} if table_id else {}
    return html.Table([html.Thead(html.Tr(heads)), html.Tbody(body)], className="plain", **kw)


_VERDICT_CLASSES = {"reproduced", "not reproduced", "inconclusive", "—"}


def _verdict_class(value: object) -> str | None:
    verdict = str(value).split(":", 1)[0]
    if verdict not in _VERDICT_CLASSES:
        return None
    return "v-missing" if verdict == "—" else f"v-{verdict.replace(' ', '-')}"
