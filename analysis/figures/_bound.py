"""The train-side error bounds against the held-out errors over training (SPEC 3, §4 E7).

Every bound here uses training-side quantities only (trainables.metrics.bounds), so each can
fail; each is drawn beside the error it bounds, with the fraction of evaluations where it held:

- ``nc_bound = 4 (C − 1) · CDNV`` of the training sample, against the NCC test error;
- ``geocol_bound = 4 (C − 1) · κ̂ · GeoCol``, the same through geometric collapse, against
  the NCC test error (where GC was measured);
- ``fewshot_nc_bound = 16 (k − 1)(1 + 1/n) · CDNV`` of the source training sample, against
  the target few-shot error ``1 − fewshot_acc_<n>shot``, n the largest shot count measured
  (where the study measures few-shot transfer).

The empirical Poincaré ratio ``κ̂ = max_c Var_c / GC_c`` (``poincare_kappa``) is drawn in
its own panel where measured.

Bands are 95 % (``options.confidence``) t-intervals across trials, each on its quantity's
scale (``schema.scale_of``): for a positive quantity (a bound, κ̂) the geometric mean and
the exponentiated interval of the mean log; for a fraction (an error) the mean and the
interval clipped to [0, 1] (``aggregate.summarize``). A bound or κ̂ of 0 or infinity has no
log: it is left out of its band, and the figure says how many were; the fractions of
evaluations where a bound held count every value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import aggregate
from analysis.figures._base import band, format_value, measured, thin, value_colors
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema

BOUND, ERROR, KAPPA = "nc_bound", "ncc_test_error", "poincare_kappa"
GEOCOL, FEWSHOT = "geocol_bound", "fewshot_nc_bound"
_TITLE = "Error bounds (train-side reconstructions, SPEC §3) vs held-out errors"
_DEFINITIONS = {
    BOUND: "NC bound = 4(C−1)·CDNV_train",
    GEOCOL: "GeoCol bound = 4(C−1)·κ̂·GeoCol",
    FEWSHOT: "few-shot bound = 16(k−1)(1+1/n)·CDNV_train of the source classes",
}
_LABELS = {BOUND: "NC bound", GEOCOL: "GeoCol bound", FEWSHOT: "few-shot bound"}


@dataclass(frozen=True)
class BoundCheck:
    """How often one bound held against the error it bounds, over the evaluations where
    both were measured."""

    bound: str  # nc_bound, geocol_bound or fewshot_nc_bound
    error: str  # ncc_test_error or fewshot_error_<n>shot (1 − fewshot_acc_<n>shot)
    holds: float  # fraction of evaluations with bound >= error
    non_vacuous: float  # fraction of evaluations with bound < 1
    n: int


@dataclass(frozen=True)
class BoundInfo:
    """Centre and band per group and epoch of each bound, the error it bounds and (where
    measured) κ̂, plus how often each bound held. ``holds``, ``non_vacuous`` and ``n`` are
    those of ``nc_bound`` (``checks[0]``)."""

    param: str | None
    stats: dict  # group value -> frame: epoch, metric, n, mean, ci_low, ci_high
    metrics: list[str]  # nc_bound, ncc_test_error[, geocol_bound][, few-shot pair][, κ̂]
    holds: float
    non_vacuous: float
    n: int
    checks: tuple[BoundCheck, ...] = ()  # nc_bound's, then geocol_bound's, few-shot's
    left_out: dict[str, int] | None = None  # metric -> values 0 or inf left out of its band


def fewshot_error_name(accuracy: str) -> str:
    """``fewshot_error_<n>shot``, the name under which ``1 − fewshot_acc_<n>shot`` is drawn."""
    return accuracy.replace("fewshot_acc_", "fewshot_error_")


def _get_bound_info(
    study: StudyResults, *, param: str | None = None, options: Options | None = None
) -> BoundInfo:
    """Bounds, errors and κ̂ by epoch across trials, per value of ``param`` (all trials if
    None), with the fraction of evaluations where each bound held."""
    options = options or Options()
    measured(study, [BOUND, ERROR], figure="bound figure", need=2)
    m = study.metrics
    errors = {ERROR: m[ERROR].to_numpy(float, na_value=np.nan)}
    pairs = [(BOUND, ERROR), *([(GEOCOL, ERROR)] if study.measured(GEOCOL) else [])]
    accuracy = _fewshot_accuracy(study)
    if accuracy is not None and study.measured(FEWSHOT):
        errors[fewshot_error_name(accuracy)] = 1.0 - m[accuracy].to_numpy(float, na_value=np.nan)
        pairs.append((FEWSHOT, fewshot_error_name(accuracy)))
    checks = tuple(_check(m[b].to_numpy(float, na_value=np.nan), errors[e], b, e) for b, e in pairs)
    metrics = [metric for pair in pairs for metric in pair]
    metrics = [*dict.fromkeys(metrics), *([KAPPA] if study.measured(KAPPA) else [])]
    group = m[param] if param else np.zeros(len(m))
    data = m[["epoch"]].assign(group=np.asarray(group))
    left_out: dict[str, int] = {}
    for metric in metrics:
        if metric in errors:  # an error is a fraction: summarised as the accuracy it mirrors
            data[_summarised_as(metric, accuracy)] = errors[metric]
            continue
        v = m[metric].to_numpy(dtype=float, na_value=np.nan)
        no_log = ~np.isnan(v) & ~(np.isfinite(v) & (v > 0))  # 0 or inf: no logarithm
        left_out[metric] = int(no_log.sum())
        data[metric] = np.where(no_log, np.nan, v)
    names = [_summarised_as(x, accuracy) for x in metrics]
    stats = aggregate.summarize(data, ["group", "epoch"], names, confidence=options.confidence)
    stats["metric"] = stats["metric"].replace(dict(zip(names, metrics, strict=True)))
    per_group = {g: part for g, part in stats.groupby("group", sort=True)}
    first = checks[0]
    return BoundInfo(
        param, per_group, metrics, first.holds, first.non_vacuous, first.n, checks, left_out
    )


def _fewshot_accuracy(study: StudyResults) -> str | None:
    """The measured ``fewshot_acc_<n>shot`` of the largest ``n`` (the shots the few-shot
    bound is computed for), or None."""
    found = [c for c in schema.fewshot_columns(study.metrics.columns) if study.measured(c)]
    return found[-1] if found else None


def _summarised_as(metric: str, accuracy: str | None) -> str:
    """A few-shot error ``1 − acc`` is summarised under the accuracy's name, a fraction, so
    its interval stays in [0, 1]; every other metric under its own."""
    return accuracy if accuracy and metric == fewshot_error_name(accuracy) else metric


def _check(bound: np.ndarray, error: np.ndarray, name: str, error_name: str) -> BoundCheck:
    both = ~np.isnan(bound) & ~np.isnan(error)
    b, e = bound[both], error[both]
    holds = float(np.mean(b >= e)) if len(b) else float("nan")
    non_vacuous = float(np.mean(b < 1.0)) if len(b) else float("nan")
    return BoundCheck(name, error_name, holds, non_vacuous, int(both.sum()))


def plot_bound(info: BoundInfo, *, max_points: int = 2000) -> go.Figure:
    """Each bound (dashed) and the error it bounds (solid) vs epoch on a log axis: the NCC
    test error's panel, the few-shot error's where measured, κ̂ in a last panel where
    measured; a band across trials for each."""
    panels = _panels(info)
    fig = make_subplots(
        rows=1, cols=len(panels), subplot_titles=[title for title, _ in panels] or None
    )
    colors = value_colors(list(info.stats))
    for value, part in info.stats.items():
        name = format_value(info.param, value)
        for col, (_, lines) in enumerate(panels, start=1):
            for metric, label, dash in lines:
                style = {"color": colors[value], "dash": dash}
                _add_line(fig, part, metric, f"{label} ({name})", style, col=col, cap=max_points)
    fig.update_xaxes(title_text="epoch")
    for col, (title, _) in enumerate(panels, start=1):
        is_kappa = title.startswith("Poincaré")
        if not is_kappa:
            fig.add_hline(y=1.0, line={"color": "grey", "width": 1, "dash": "dot"}, row=1, col=col)
        text = "max_c Var_c / GC_c" if is_kappa else "error / bound"
        fig.update_yaxes(type="log", title_text=text, row=1, col=col)
    subtitle = _subtitle(info)
    lines = subtitle.count("<br>") + 1
    fig.update_layout(
        title={
            "text": f"{_TITLE}<br><sup>{subtitle}</sup>",
            **{"y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 20}},
        },
        height=420 + 22 * lines,
        margin={"t": 90 + 22 * lines},  # the title's lines, then the panels' titles
        template="plotly_white",
    )
    return fig


def _panels(info: BoundInfo) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """``(title, [(metric, label, dash), ...])`` of each panel, left to right."""
    ncc = [(BOUND, "NC bound", "dash"), (GEOCOL, "GeoCol bound", "dashdot")]
    ncc = [*[x for x in ncc if x[0] in info.metrics], (ERROR, "NCC test error", "solid")]
    panels = [("NCC test error and its bounds", ncc)]
    fewshot = [c.error for c in info.checks if c.bound == FEWSHOT]
    if fewshot:
        error = _error_label(fewshot[0])
        lines = [(FEWSHOT, "few-shot bound", "dash"), (fewshot[0], error, "solid")]
        panels.append((f"target {error} and its bound", lines))
    if KAPPA in info.metrics:
        panels.append(("Poincaré ratio κ̂", [(KAPPA, "κ̂", "dot")]))
    return panels


def _add_line(
    fig: go.Figure,
    part: pd.DataFrame,
    metric: str,
    name: str,
    style: dict,
    *,
    col: int,
    cap: int,
) -> None:
    """One metric's band and centre line (at most ``cap`` points) in panel ``col``."""
    sub = part[(part["metric"] == metric) & (part["n"] > 0)].sort_values("epoch")
    sub = sub.iloc[thin(len(sub), cap)]
    low, high = (sub[c].where(sub[c] > 0) for c in ("ci_low", "ci_high"))  # log axis
    area = band(sub["epoch"], low, high, color=style["color"], group=name)
    fig.add_trace({**area, "mode": "lines"}, 1, col)  # no markers on a short band's corners
    line = go.Scatter(
        x=sub["epoch"], y=sub["mean"], mode="lines", name=name, legendgroup=name, line=style
    )
    fig.add_trace(line, 1, col)


def _error_label(error: str) -> str:
    """``error`` for the NCC test error, ``5-shot error`` for ``fewshot_error_5shot``."""
    if error == ERROR:
        return "error"
    return f"{error.removeprefix('fewshot_error_').removesuffix('shot')}-shot error"


def _subtitle(info: BoundInfo) -> str:
    """What each bound is, how often it held, and what the bands leave out."""
    checks = info.checks or (BoundCheck(BOUND, ERROR, info.holds, info.non_vacuous, info.n),)
    definitions = " · ".join(_DEFINITIONS[c.bound] for c in checks)
    lines = [f"{definitions}: training-side only, so each can fail"]
    for c in checks:
        lines.append(
            f"{_LABELS[c.bound]} ≥ {_error_label(c.error)} in {c.holds:.0%} and bound < 1 in "
            f"{c.non_vacuous:.0%} of {c.n} evaluations"
        )
    dropped = {k: v for k, v in (info.left_out or {}).items() if v}
    shown = ", ".join(f"{k} {v}" for k, v in dropped.items()) or "none"
    lines.append(
        "bands: t-intervals across trials, geometric for bounds and κ̂, within [0, 1] for "
        f"errors; values 0 or ∞ left out of the bands (no log): {shown}"
    )
    return "<br>".join(lines)
