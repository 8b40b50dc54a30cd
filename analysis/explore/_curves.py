"""The explorer's curves: any metric against epoch, step, training progress or wall time,
coloured and faceted by swept keys, either one line per setting of every swept key but the
seed (centre and interval across seeds, :func:`analysis.aggregate.summarize`) or one line
per trial. :func:`curves_view` returns plain data (tested); :func:`plot_curves_view` draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import aggregate
from analysis.figures._base import band, format_value, thin, value_colors
from analysis.load import StudyResults
from studyfiles import schema

MODES = ("groups", "trials")
MAX_FACETS = 12
_ALL = "_all"  # the one group of a study that sweeps nothing but the seed


@dataclass(frozen=True)
class Trace:
    """One line: a setting's centre with its interval band (``groups``), or every trial of
    one colour and facet joined with gaps, ``trial_ids`` naming each point (``trials``)."""

    name: str
    colour: object
    facet: object
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    n: np.ndarray | None = None
    trial_ids: np.ndarray | None = None
    dash: str = "solid"  # tells apart the settings that share a colour and a facet


@dataclass(frozen=True)
class CurvesView:
    """Everything :func:`plot_curves_view` draws."""

    metric: str
    x: str
    colour: str | None
    facet: str | None
    mode: str
    traces: list[Trace]
    facets: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.95


def curves_view(
    study: StudyResults,
    trial_ids: list[str],
    *,
    metric: str,
    x: str = "epoch",
    colour: str | None = None,
    facet: str | None = None,
    mode: str = "groups",
    confidence: float = 0.95,
    n_levels: int = 40,
) -> CurvesView:
    """``metric`` against ``x`` for the trials ``trial_ids``.

    Args:
        x: ``epoch``, ``step``, ``train_loss`` / ``train_acc`` (training progress: in
            ``groups`` mode each trial is read where it first reaches each level, as the
            analysis does) or ``wall_time_s`` (``groups``: each epoch at the group's mean
            wall time).
        colour, facet: swept keys (the seed is no group in ``groups`` mode, so it is ignored
            there with a note).
        mode: ``groups`` or ``trials``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    m = study.metrics
    rows = m[m["trial_id"].astype(str).isin(trial_ids)]
    notes = []
    if mode == "groups":
        for key in (colour, facet):
            if key is not None and key == study.seed_param:
                notes.append(f"{schema.label(key)} is what each line averages over: ignored")
        colour = None if colour == study.seed_param else colour
        facet = None if facet == study.seed_param else facet
        traces = _group_traces(study, rows, metric, x, colour, facet, confidence, n_levels)
    else:
        traces = _trial_traces(rows, metric, x, colour, facet)
    facets = sorted({t.facet for t in traces}, key=_order) if facet else [None]
    if len(facets) > MAX_FACETS:
        notes.append(f"{len(facets)} values of {schema.label(facet)}: the first {MAX_FACETS} shown")
        facets = facets[:MAX_FACETS]
        traces = [t for t in traces if t.facet in facets]
    return CurvesView(metric, x, colour, facet, mode, traces, facets, notes, confidence)


def _group_traces(study, rows, metric, x, colour, facet, confidence, n_levels) -> list[Trace]:
    keys = [p for p in study.hyper_params if p in rows] or [_ALL]
    rows = rows.assign(**{_ALL: "all trials"}) if keys == [_ALL] else rows
    if x in ("train_loss", "train_acc"):
        levels = aggregate.progress_grid(rows[x], x, n=n_levels)
        data = aggregate.at_levels(rows, x, levels, [metric]).rename(columns={"level": "x"})
        data = data.merge(aggregate.trial_design(rows, keys), on="trial_id")
    else:
        data = rows.assign(x=rows["epoch" if x == "wall_time_s" else x])
    stats = aggregate.summarize(data, [*keys, "x"], [metric], confidence=confidence)
    stats = stats[stats["n"] > 0]
    if x == "wall_time_s":  # each epoch at its group's mean wall time
        wall = rows.groupby([*keys, "epoch"], observed=True, dropna=False)["wall_time_s"].mean()
        at = pd.MultiIndex.from_frame(stats[[*keys, "x"]])
        stats = stats.assign(x=wall.reindex(at).to_numpy())
    traces, rest = [], {}
    for values, part in stats.groupby(keys, sort=True, dropna=False, observed=True):
        setting = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        part = part.sort_values("x")
        name = ", ".join(format_value(k, v) for k, v in setting.items() if k != _ALL)
        traces.append(
            Trace(
                name or "all trials",
                setting.get(colour, name) if colour else (name or "all trials"),
                setting.get(facet) if facet else None,
                part["x"].to_numpy(dtype=float),
                part["mean"].to_numpy(dtype=float),
                part["ci_low"].to_numpy(dtype=float),
                part["ci_high"].to_numpy(dtype=float),
                part["n"].to_numpy(),
                dash=_DASHES[rest.setdefault(_others(setting, colour, facet), len(rest)) % 6],
            )
        )
    return traces


_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _others(setting: dict, colour: str | None, facet: str | None) -> tuple:
    """A setting's values of the keys that neither colour nor facet show."""
    return tuple(v for k, v in setting.items() if k not in (colour, facet, _ALL))


def _trial_traces(rows, metric, x, colour, facet) -> list[Trace]:
    """One trace per (colour, facet): the trials' lines joined with a gap between them."""
    cols = dict.fromkeys(["trial_id", x, metric, *(k for k in (colour, facet) if k)])
    rows = rows[list(cols)].dropna(subset=[x])
    rows = rows.assign(trial_id=rows["trial_id"].astype(str))
    keys = [k for k in (colour, facet) if k]
    parts = rows.groupby(keys, sort=True, dropna=False) if keys else [((), rows)]
    traces = []
    for values, part in parts:
        setting = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        xs, ys, ids = [], [], []
        for tid, one in part.groupby("trial_id", sort=True):
            xs += [*one[x].to_numpy(dtype=float), np.nan]
            ys += [*one[metric].to_numpy(dtype=float), np.nan]
            ids += [tid] * (len(one) + 1)
        name = format_value(colour, setting[colour]) if colour else "trials"
        traces.append(
            Trace(
                name,
                setting.get(colour, name),
                setting.get(facet),
                np.array(xs),
                np.array(ys),
                trial_ids=np.array(ids, dtype=object),
            )
        )
    return traces


def _order(value: object) -> tuple:
    return (0, float(value), "") if isinstance(value, int | float) else (1, 0.0, str(value))


def plot_curves_view(view: CurvesView, *, log_y: bool = False, max_points: int = 2000) -> go.Figure:
    """Draw a :class:`CurvesView`: one subplot per facet value, one colour per colour value."""
    n = len(view.facets)
    cols = min(n, 3)
    titles = [format_value(view.facet, v) for v in view.facets] if view.facet else None
    grid = make_subplots(rows=math.ceil(n / cols), cols=cols, subplot_titles=titles)
    colours = value_colors([t.colour for t in view.traces]) if view.traces else {}
    by_colour = _legend_by_colour(view, len(colours))
    data, shown = [], set()
    for t in view.traces:
        k = view.facets.index(t.facet) + 1
        axes = {"xaxis": f"x{k if k > 1 else ''}", "yaxis": f"y{k if k > 1 else ''}"}
        colour = colours[t.colour]
        group = format_value(view.colour, t.colour) if by_colour else t.name
        if by_colour and group not in shown:  # the colour's one legend entry
            data.append(_legend_entry(group, colour, axes))
        line = {"type": "scattergl" if t.trial_ids is not None and len(t.x) > 5000 else "scatter"}
        line |= {"x": t.x, "y": t.y, "mode": "lines", "name": t.name, "legendgroup": group}
        line |= {"showlegend": not by_colour and group not in shown}
        line |= {"line": {"color": colour, "dash": t.dash}} | axes
        if t.trial_ids is None:
            keep = thin(len(t.x), max_points)
            fill = band(t.x[keep], t.low[keep], t.high[keep], color=colour, group=group)
            data.append(fill | axes | {"mode": "lines"})  # no markers on a short band
            line |= {"x": t.x[keep], "y": t.y[keep], "customdata": t.n[keep]}
            line["hovertemplate"] = f"{t.name}<br>x=%{{x:.4g}}<br>y=%{{y:.4g}}<br>n=%{{customdata}}"
        else:
            # the ids twice: as text to show (escaped), as customdata for a click (kept)
            line |= {"customdata": t.trial_ids, "text": t.trial_ids}
            line |= {"line": {"color": colour, "width": 1}}
            line["hovertemplate"] = "%{text}<br>x=%{x:.4g}<br>y=%{y:.4g}"
        line["hovertemplate"] += "<extra></extra>"
        data.append(line)
        shown.add(group)
    # The traces are plain dicts of known properties: Plotly's checking each of them again
    # was a third of a redraw at 10,000 trials (0.4 of 1.3 s; the figure is the same).
    fig = go.Figure(data=data, layout=grid.layout, _validate=False)
    _axes(fig, view, log_y)
    if by_colour:
        settings = len({t.name for t in view.traces})
        fig.update_layout(
            legend_title_text=f"{schema.label(view.colour)}<br><sup>{settings} settings: "
            "hover a line for its own</sup>"
        )
    return fig


LEGEND_ENTRIES = 20  # more lines than this, sharing colours: one legend entry per colour


def _legend_by_colour(view: CurvesView, n_colours: int) -> bool:
    """Whether the legend lists the colours rather than every line: where more than
    :data:`LEGEND_ENTRIES` lines share fewer colours (a legend of 100 settings is not read,
    and drawing it is a good part of the figure's first paint)."""
    lines = len({t.name for t in view.traces})
    return view.colour is not None and lines > LEGEND_ENTRIES and n_colours < lines


def _legend_entry(name: str, colour: str, axes: dict) -> dict:
    """A trace drawn in the legend only: clicking it shows or hides the colour's lines."""
    return {
        "type": "scatter", "x": [None], "y": [None], "mode": "lines", "name": name,
        "legendgroup": name, "showlegend": True, "hoverinfo": "skip",
        "line": {"color": colour},
    } | axes  # fmt: skip


def _axes(fig: go.Figure, view: CurvesView, log_y: bool) -> None:
    x_title = "wall time (s)" if view.x == "wall_time_s" else schema.label(view.x)
    if view.x == "train_loss":
        fig.update_xaxes(type="log", autorange="reversed", title_text=f"{x_title} (training →)")
    else:
        fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=schema.label(view.metric), type="log" if log_y else None)
    if view.mode == "groups":
        what = "one line per setting of every swept key but the seed: centre across seeds"
        what += (
            f" (geometric mean of a positive quantity), band: its {view.confidence:.0%} interval"
        )
    else:
        what = "one line per trial (click one to see it below)"
    subtitle = "<br>".join([what, *view.notes])
    rows = math.ceil(len(view.facets) / min(len(view.facets), 3))
    fig.update_layout(
        title={"text": f"{schema.label(view.metric)}<br><sup>{subtitle}</sup>"},
        height=120 + 320 * rows,
        margin={"t": 100 + 14 * len(view.notes)},
        template="plotly_white",
        uirevision=f"{view.metric}|{view.x}|{view.colour}|{view.facet}|{view.mode}|{log_y}",
        hovermode="closest",
    )


TRIAL_METRICS = ("train_loss", "test_acc", "gc", "nc_cdnv")  # a trial's own curves


def plot_trial(study: StudyResults, trial_id: str, *, x: str = "epoch") -> go.Figure:
    """One trial's curves of :data:`TRIAL_METRICS` (those measured) against ``x``."""
    metrics = [m for m in TRIAL_METRICS if study.measured(m)]
    m = study.metrics
    rows = m[m["trial_id"].astype(str) == trial_id].dropna(subset=[x])
    fig = make_subplots(
        rows=1, cols=max(len(metrics), 1), subplot_titles=[schema.label(c) for c in metrics]
    )
    for k, metric in enumerate(metrics, start=1):
        fig.add_scatter(
            x=rows[x].to_numpy(dtype=float), y=rows[metric].to_numpy(dtype=float),
            mode="lines+markers", name=schema.label(metric), row=1, col=k,
            marker={"size": 4}, line={"color": "rgb(68, 1, 84)"},
        )  # fmt: skip
    x_title = "wall time (s)" if x == "wall_time_s" else schema.label(x)
    fig.update_xaxes(title_text=x_title, type="log" if x == "train_loss" else None)
    if x == "train_loss":
        fig.update_xaxes(autorange="reversed")
    fig.update_layout(
        title={"text": f"trial {trial_id}"}, height=280, showlegend=False,
        margin={"t": 70, "b": 40}, template="plotly_white",
    )  # fmt: skip
    return fig
