"""The page's callbacks: each takes the controls' values (a study by its index, never a
path), calls a plain function of :mod:`._views` or :mod:`._results`, and returns its output.

Heavy views (parallel coordinates, final values, verdicts, comparison) are drawn only while
their tab is open; every view is drawn again when its study's data version changes, and
the results behind the verdicts are cached per data version and settings.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import dash
from dash import ALL, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from analysis.explore import _results as R
from analysis.explore import _views as V
from analysis.explore._hub import StudyHub
from analysis.explore._page import GRAPHS, graph_config
from analysis.explore._safe import message_figure
from analysis.explore._trials import brush_from_event

log = logging.getLogger("gcnc.explore")

DATA = [Input("versions", "data"), Input("study", "value"), Input("filter-spec", "data")]
DRAW = [Input(c, "value") for c in ("metric", "xaxis", "colour", "facet", "mode", "logy")]
SETTINGS = [
    Input(c, "value") for c in ("alpha", "correction", "comparison", "progress-by", "quantile")
]


def _draw(metric, x, colour, facet, mode, logy) -> dict:
    return {
        "metric": metric,
        "x": x or "epoch",
        "colour": colour,
        "facet": facet,
        "mode": mode or "groups",
        "log_y": "log" in (logy or []),
    }


def _changes(alpha, correction, comparison, progress_by, quantile) -> dict:
    return R.overrides(
        alpha=alpha,
        correction=correction,
        comparison=comparison,
        progress_by=progress_by,
        progress_quantile=quantile,
    )


def register(app: dash.Dash, hub: StudyHub) -> None:
    """Attach every callback of the page to ``app``."""

    def on(*deps, fallback: Callable[[Exception], object] | None = None, opened: bool = False):
        """``app.callback`` whose unexpected error is logged and shown through
        ``fallback`` (or leaves the view as it was), never raised into the page; not called
        as the page opens where the layout holds its output already (``opened``)."""

        def wrap(fn):
            @functools.wraps(fn)
            def run(*args):
                try:
                    return fn(*args)
                except PreventUpdate:
                    raise
                except Exception as exc:  # a view must never take the page down
                    log.exception("explorer view %s failed", fn.__name__)
                    if fallback is None:
                        raise PreventUpdate from exc
                    return fallback(exc)

            return app.callback(*deps, prevent_initial_call=opened)(run)

        return wrap

    def study(value) -> int:
        try:
            return hub.index(value)
        except ValueError:
            raise PreventUpdate from None

    def problem(exc: Exception) -> list:
        return [html.Div(f"cannot show this view: {exc}", className="problem")]

    def figure_problem(exc: Exception) -> dict:
        return message_figure(f"cannot draw this figure: {exc}")

    @on(
        Output("versions", "data"),
        Output("refresh-line", "children"),
        Output("problem", "children"),
        Input("tick", "n_intervals"),
        Input("study", "value"),
        State("versions", "data"),
    )
    def tick(_, value, shown):
        i = study(value)
        versions = hub.refresh()
        line, trouble = V.refresh_line(hub, i)
        return (no_update if versions == shown else versions), line, trouble

    @on(
        Output("progress", "children"),
        Output("study-warnings", "children"),
        Input("versions", "data"),
        Input("study", "value"),
        fallback=lambda e: (problem(e), []),
    )
    def show_progress(_, value):
        i = study(value)
        return V.progress_panel(hub, i), V.warnings_panel(hub, i)

    @on(
        Output("metric", "options"),
        Output("metric", "value"),
        Output("xaxis", "options"),
        Output("xaxis", "value"),
        Output("colour", "options"),
        Output("colour", "value"),
        Output("facet", "options"),
        Output("facet", "value"),
        Input("versions", "data"),
        Input("study", "value"),
        State("metric", "value"),
        State("xaxis", "value"),
        State("colour", "value"),
        State("facet", "value"),
        opened=True,
    )
    def draw_options(_, value, metric, x, colour, facet):
        i = study(value)
        fresh = ctx.triggered_id in (None, "study")  # the page opened, or another study
        options = V.draw_options(hub, i)
        xs = [o["value"] for o in options["xaxis"]]
        keys = [o["value"] for o in options["keys"]]
        if fresh:
            hyper = hub.study(i).hyper_params
            colour, facet = (hyper[0] if hyper else None), None
        return (
            options["metric"],
            V.default_metric(options["metric"], metric),
            options["xaxis"],
            x if x in xs else "epoch",
            options["keys"],
            colour if colour in keys else None,
            options["keys"],
            facet if facet in keys else None,
        )

    @on(Output("param-filters", "children"), Input("study", "value"), fallback=problem, opened=True)
    def param_filters(value):
        return V.param_filters(hub, study(value))

    @on(
        Output("filter-spec", "data"),
        Input("status-filter", "value"),
        Input("diverged-filter", "value"),
        Input("brush", "data"),
        Input({"type": "pf-values", "param": ALL}, "value"),
        State({"type": "pf-values", "param": ALL}, "options"),
        State({"type": "pf-values", "param": ALL}, "id"),
        Input({"type": "pf-range", "param": ALL, "log": ALL}, "value"),
        State({"type": "pf-range", "param": ALL, "log": ALL}, "min"),
        State({"type": "pf-range", "param": ALL, "log": ALL}, "max"),
        State({"type": "pf-range", "param": ALL, "log": ALL}, "id"),
    )
    def filters(
        statuses, diverged, brushed, values, options, value_ids, ranges, lows, highs, range_ids
    ):
        extents = [[lo, hi] for lo, hi in zip(lows, highs, strict=True)]
        return V.filter_spec(
            statuses, diverged, values, options, value_ids, ranges, extents, range_ids,
            brushed=brushed,
        )  # fmt: skip

    @on(
        Output("brush", "data"),
        Output("brush-note", "children"),
        Input("parcoords", "restyleData"),
        Input("clear-brush", "n_clicks"),
        Input("study", "value"),
        State("parcoords-axes", "data"),
        State("brush", "data"),
        opened=True,
    )
    def brush(event, _clear, _study, axes, brushed):
        if ctx.triggered_id in ("clear-brush", "study"):
            return {}, ""
        new = brush_from_event(brushed or {}, event, axes or [])
        if new == (brushed or {}):
            raise PreventUpdate
        return new, V.brush_note(new)

    @on(
        Output("curves", "figure"),
        Output("curves-key", "data"),
        *DATA,
        *DRAW,
        State("curves-key", "data"),
        fallback=lambda e: (figure_problem(e), None),
    )
    def curves(_, value, spec, *rest):
        i, draw, shown = study(value), _draw(*rest[:-1]), rest[-1]
        key = V.curves_key(hub, i, spec, draw)
        if key == shown:  # the page holds this figure already (drawn with the layout)
            raise PreventUpdate
        return V.curves_figure(hub, i, spec, **dict(draw)), key

    @on(
        Output("trial-table", "children"),
        Output("sort-by", "options"),
        Output("trial-count", "children"),
        *DATA,
        Input("metric", "value"),
        Input("sort-by", "value"),
        Input("sort-order", "value"),
        Input("trial-page", "value"),
        fallback=lambda e: (problem(e), [], ""),
    )
    def trials(_, value, spec, metric, sort_by, order, page):
        i = study(value)
        listing, sortable = V.trial_list(
            hub, i, spec, metric, sort_by=sort_by, descending=order == "desc", page=page
        )
        return listing, sortable, V.trial_count(hub, i, spec)

    @on(
        Output("parcoords", "figure"),
        Output("parcoords-axes", "data"),
        *DATA,
        Input("metric", "value"),
        Input("tabs", "value"),
        fallback=lambda e: (figure_problem(e), []),
    )
    def parcoords(_, value, spec, metric, tab):
        if tab != "trials":
            raise PreventUpdate
        return V.parcoords_figure(hub, study(value), spec, metric)

    @on(
        Output("heatmap", "figure"),
        Output("splom", "figure"),
        *DATA,
        Input("tabs", "value"),
        fallback=lambda e: (figure_problem(e), figure_problem(e)),
    )
    def finals(_, value, spec, tab):
        if tab != "finals":
            raise PreventUpdate
        return V.finals_figures(hub, study(value), spec)

    @on(
        Output("selected-trial", "data"),
        Input("curves", "clickData"),
        Input({"type": "trial-row", "trial": ALL}, "n_clicks"),
        Input("study", "value"),
    )
    def select(click, _rows, value):
        i = study(value)
        trigger = ctx.triggered_id
        if trigger == "study":
            return None
        row_clicks = ctx.triggered[0].get("value") if ctx.triggered else None
        found = V.find_trial(hub, i, V.clicked_trial(trigger, click, row_clicks=row_clicks))
        if found is None:
            raise PreventUpdate
        return found

    @on(
        Output("trial-detail", "children"),
        Input("selected-trial", "data"),
        Input("versions", "data"),
        Input("study", "value"),
        Input("xaxis", "value"),
        State("image-format", "value"),
        fallback=problem,
    )
    def detail(trial_id, _, value, x, fmt):
        return V.trial_detail(hub, study(value), trial_id, x, fmt=fmt)

    @on(
        Output("verdicts", "children"),
        Input("versions", "data"),
        Input("study", "value"),
        *SETTINGS,
        Input("tabs", "value"),
        fallback=problem,
    )
    def verdicts(_, value, *rest):
        if rest[-1] != "verdicts":
            raise PreventUpdate
        return R.verdict_panel(hub, study(value), _changes(*rest[:-1]))

    if len(hub) > 1:

        @on(
            Output("compare", "children"),
            Input("versions", "data"),
            *SETTINGS,
            Input("tabs", "value"),
            State("image-format", "value"),
            fallback=problem,
        )
        def comparison(_, *rest):
            if rest[-2] != "compare":
                raise PreventUpdate
            return R.compare_panel(hub, _changes(*rest[:-2]), fmt=rest[-1])

    @on(
        Output("download", "data"),
        Input("dl-csv", "n_clicks"),
        Input("dl-parquet", "n_clicks"),
        Input("dl-html", "n_clicks"),
        State("study", "value"),
        State("filter-spec", "data"),
        *[State(c.component_id, "value") for c in DRAW + SETTINGS],
    )
    def download(_csv, _parquet, _html, value, spec, *rest):
        i, trigger = study(value), ctx.triggered_id
        if trigger in ("dl-csv", "dl-parquet"):
            return R.rows_download(hub, i, spec or {}, trigger.removeprefix("dl-"))
        if trigger == "dl-html":
            return R.snapshot(hub, i, spec or {}, _draw(*rest[:6]), _changes(*rest[6:]))
        raise PreventUpdate

    @on(*[Output(g, "config") for g in GRAPHS], Input("image-format", "value"))
    def image_format(fmt):
        return tuple(graph_config(fmt, g) for g in GRAPHS)
