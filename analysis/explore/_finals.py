"""Final values of the trials shown: parallel coordinates (brush an axis to pick trials),
the correlation heatmap and the scatter matrix (the report's own figures, on the filtered
trials). :func:`parcoords_info` returns plain data (tested); the rest draws."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis import aggregate
from analysis import figures as F
from analysis.correlate import quantities, study_correlations
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema
from studyfiles.schema import scale_of


@dataclass(frozen=True)
class Axis:
    """One axis of the parallel coordinates: its label and one value per trial drawn
    (codes, with ``ticktext``, for a key whose values are not numbers)."""

    name: str
    label: str
    values: np.ndarray
    ticktext: list[str] = field(default_factory=list)
    log: bool = False  # values are log10 of the quantity


@dataclass(frozen=True)
class ParcoordsInfo:
    axes: list[Axis]
    colour: np.ndarray
    colour_label: str
    trial_ids: list[str]
    left_out: int  # trials with a value missing on some axis (diverged, not yet measured)


def parcoords_info(study: StudyResults, table: pd.DataFrame, *, colour_by: str) -> ParcoordsInfo:
    """The trials of ``table`` (:func:`~analysis.explore._trials.trial_table` rows) on one
    axis per swept key and per final quantity, at their last evaluation; a quantity over
    more than two decades on the log10 scale."""
    names = [p for p in study.hyper_params if p in table]
    wanted = [*quantities(study), "train_loss", colour_by]
    names += [q for q in dict.fromkeys(wanted) if q in table and table[q].notna().any()]
    complete = table.dropna(subset=names) if names else table
    axes = [_axis(complete[n], n) for n in names]
    colour = next((a.values for a in axes if a.name == colour_by), np.zeros(len(complete)))
    label = next((a.label for a in axes if a.name == colour_by), "")
    ids = complete["trial_id"].astype(str).tolist()
    return ParcoordsInfo(axes, colour, label, ids, len(table) - len(complete))


def _axis(values: pd.Series, name: str) -> Axis:
    label = schema.label(name)
    if not pd.api.types.is_numeric_dtype(values):
        codes, uniques = pd.factorize(values.astype(str), sort=True)
        return Axis(name, label, codes.astype(float), [str(u) for u in uniques])
    v = values.to_numpy(dtype=float)
    if scale_of(name) == "positive" and len(v) and v.min() > 0 and v.max() > 100 * v.min():
        return Axis(name, f"log10 {label}", np.log10(v), log=True)
    return Axis(name, label, v)


def plot_parcoords(info: ParcoordsInfo, brushed: dict | None = None) -> go.Figure:
    """The parallel coordinates, each axis brushed as ``brushed`` says (the filters'
    ``brushed`` part, :func:`~analysis.explore._trials.brush_from_event`)."""
    dims = []
    for axis in info.axes:
        dim = {"label": axis.label, "values": axis.values}
        if axis.ticktext:
            dim |= {"tickvals": list(range(len(axis.ticktext))), "ticktext": axis.ticktext}
        spans = _constraint(axis, (brushed or {}).get(axis.name))
        if spans:
            dim["constraintrange"] = spans[0] if len(spans) == 1 else spans
        dims.append(dim)
    line = {"color": info.colour, "colorscale": "Viridis", "showscale": True}
    line["colorbar"] = {"title": {"text": info.colour_label}}
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    noun = "trial" if info.left_out == 1 else "trials"
    note = f"; {info.left_out} {noun} with a missing value not drawn" if info.left_out else ""
    fig.update_layout(
        title={
            "text": f"Last evaluation of {len(info.trial_ids)} trials<br><sup>drag along an "
            f"axis to brush a range, click it to clear{note}</sup>"
        },
        height=460,
        margin={"t": 110, "l": 70, "r": 70},
        template="plotly_white",
    )
    return fig


def _constraint(axis: Axis, brush: dict | None) -> list[list[float]]:
    """A brush as ranges along ``axis`` (a text value as a short range about its code)."""
    if not brush:
        return []
    if brush.get("values") is not None:
        chosen = set(brush["values"])
        return [[k - 0.25, k + 0.25] for k, t in enumerate(axis.ticktext) if t in chosen]
    return [list(span) for span in brush.get("spans", [])]


def finished_rows(study: StudyResults, trial_ids: list[str]) -> pd.DataFrame:
    """The analysis's final rows (finished trials, last evaluation) of ``trial_ids``."""
    finals = aggregate.final_rows(study)
    return finals[finals["trial_id"].astype(str).isin(trial_ids)].reset_index(drop=True)


def correlation_figure(study: StudyResults, finals: pd.DataFrame, options: Options) -> go.Figure:
    """The report's correlation heatmap over ``finals``; raises ``NotMeasured``."""
    table = study_correlations(study, frame=finals, options=options)
    return F.plot_correlation_heatmap(F._get_correlation_heatmap_info(study, table=table))


def scatter_figure(study: StudyResults, finals: pd.DataFrame) -> go.Figure:
    """The report's scatter matrix over ``finals``; raises ``NotMeasured``."""
    return F.plot_scatter_matrix(F._get_scatter_matrix_info(study, frame=finals))
