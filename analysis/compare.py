"""Several studies side by side: the replication view (``gcnc compare DIR DIR …``).

One row per claim, one column per study and planned comparison, each cell the study's own
headline cell (:func:`analysis.tables.headline`); overlaid curves of the sweeps the studies
share; a text table for the terminal and a self-contained HTML page like the report's.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from dataclasses import dataclass, field, fields

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

from analysis import columns as C
from analysis import figures as F
from analysis.figures._base import band, thin, value_colors
from analysis.load import ResultsError, load_results
from analysis.report import _CSS, _figure_section, _section, html_table, verdict_class
from analysis.tables import Results, compute_results, family_line, headline, study_facts
from analysis.verdicts import FINAL, UNTESTED, in_main_family
from studyfiles import Storage, schema
from studyfiles.plan import Plan

MISSING = "—"  # a claim (or comparison) a study did not test
COMPARISONS = ("final", "matched")  # the headline's columns, in this order
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def study_labels(results: list[Results]) -> list[str]:
    """One label per study: its name, followed by as much of its directory as tells apart
    studies that share a name (``lr-sweep (a)``, ``lr-sweep (b)``)."""
    names = [r.study.name or os.path.basename(r.study.path.rstrip("/")) for r in results]
    labels = list(names)
    for name, count in Counter(names).items():
        if count < 2:
            continue
        same = [i for i, n in enumerate(names) if n == name]
        parts = [results[i].study.path.rstrip("/").split("/") for i in same]
        for depth in range(1, max(len(p) for p in parts) + 1):
            tails = ["/".join(p[-depth:]) for p in parts]
            if len(set(tails)) == len(tails):
                break
        else:  # the same directory given twice
            tails = [str(k + 1) for k in range(len(same))]
        for i, tail in zip(same, tails, strict=True):
            labels[i] = f"{name} ({tail})"
    return labels


def comparison_table(results: list[Results]) -> pd.DataFrame:
    """Claims × studies: one row per (claim group, claim), one column per planned comparison
    and study (``final: <study>``, then ``matched: <study>``), each cell the study's
    headline cell, :data:`MISSING` where the study did not test the claim there."""
    labels = study_labels(results)
    heads = [headline(r) for r in results]
    cells: dict[str, dict[tuple[str, str], str]] = {}
    keys: list[tuple[str, str]] = []
    for label, head in zip(labels, heads, strict=True):
        for row in head.to_dict(orient="records"):
            key = (row["group"], row["claim"])
            keys.append(key)
            for at in COMPARISONS:
                if row.get(at):
                    cells.setdefault(f"{at}: {label}", {})[key] = row[at]
    if not keys:
        return pd.DataFrame(columns=["group", "claim"])
    groups = list(dict.fromkeys(g for g, _ in keys))
    keys = sorted(dict.fromkeys(keys), key=lambda k: groups.index(k[0]))  # groups together
    table = pd.DataFrame(keys, columns=["group", "claim"])
    for at in COMPARISONS:
        names = [f"{at}: {label}" for label in labels]
        if any(n in cells for n in names):
            for n in names:
                table[n] = [cells.get(n, {}).get(k, MISSING) for k in keys]
    return table


def cell_verdict(cell: str) -> str:
    """The verdict a comparison cell states (``reproduced``, ``not tested``, …, or —)."""
    return cell.split(":", 1)[0]


def comparison_notes(results: list[Results]) -> list[str]:
    """What a reader of :func:`comparison_table` must know: plans that differ (the verdicts
    are then not on the same footing), results that are exploratory, each study's matched
    level, and on how many claims the studies' verdicts differ."""
    labels = study_labels(results)
    notes = _plan_notes(results, labels)
    notes += [
        f"{label}: {r.label_line()}"
        for label, r in zip(labels, results, strict=True)
        if r.exploratory
    ]
    levels = []
    for label, r in zip(labels, results, strict=True):
        v = r.verdicts
        ats = [] if v.empty else v[in_main_family(v)]["at"]
        ats = [a for a in dict.fromkeys(ats) if a != FINAL]
        if ats:
            levels.append(f"{label} at {', '.join(ats)}")
    if levels:
        notes.append(
            "matched: each study at the level its own trials reached, not the same point of "
            f"training across studies ({'; '.join(levels)})"
        )
    return notes + _agreement_notes(comparison_table(results))


def _plan_notes(results: list[Results], labels: list[str]) -> list[str]:
    plans = [r.options.plan() for r in results]
    differ = []
    for f in fields(Plan):
        values = [_show(getattr(p, f.name)) for p in plans]
        if len(set(values)) > 1:
            each = ", ".join(f"{lab} {v}" for lab, v in zip(labels, values, strict=True))
            differ.append(f"{f.name}: {each}")
    if not differ:
        return []
    return [
        f"the studies' analysis plans differ ({'; '.join(differ)}): their verdicts are not on "
        "the same footing (each holds at its own α, correction, comparisons and family)"
    ]


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return "+".join(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _agreement_notes(table: pd.DataFrame) -> list[str]:
    """Per comparison, on how many claims the studies that tested them disagree."""
    out = []
    for at, part in _by_comparison(table):
        cells = part.iloc[:, 2:]
        if cells.shape[1] < 2:
            continue
        verdicts = cells.map(cell_verdict)
        verdicts = verdicts.where(~verdicts.isin([MISSING, *UNTESTED]))
        shared = verdicts[verdicts.notna().sum(axis=1) >= 2]
        differ = int((shared.nunique(axis=1) > 1).sum())
        out.append(
            f"{at}: the studies' verdicts differ on {differ} of the {len(shared)} claims "
            "that two or more of them tested"
        )
    return out


@dataclass(frozen=True)
class OverlayInfo:
    """Everything :func:`plot_overlay` draws: each study's sweep curves over one key."""

    name: str
    title: str
    param: str | None
    metrics: list[str]
    studies: list[tuple[str, str, F.CurvesInfo]]  # (label, line dash, curves)
    notes: list[str] = field(default_factory=list)


def _get_overlay_info(results: list[Results]) -> tuple[list[OverlayInfo], list[str]]:
    """One overlay per key that two or more studies sweep, else one of all trials per
    study; and a note per study or figure left out."""
    labels, notes = study_labels(results), []
    dashes = {label: _DASHES[i % len(_DASHES)] for i, label in enumerate(labels)}
    counts = Counter(p for r in results for p in r.study.hyper_params)
    shared = [
        p for p in dict.fromkeys(p for r in results for p in r.study.hyper_params) if counts[p] > 1
    ]
    infos = []
    for param in shared or [None]:
        curves = []
        for label, r in zip(labels, results, strict=True):
            if param is not None and param not in r.study.hyper_params:
                continue
            try:
                info = F._get_sweep_info(r.study, param, options=r.options)
            except F.NotMeasured as exc:
                notes.append(f"{label}: {exc}")
                continue
            curves.append((label, dashes[label], info))
        if not curves:
            continue
        metrics = [m for m in C.SOURCE_METRICS if any(m in c.metrics for _, _, c in curves)]
        title = f"Sweep over {schema.label(param)}" if param else "All trials"
        notes_here = [f"{label}: {n}" for label, _, c in curves for n in c.notes]
        name = f"sweep_{param}" if param else "all_trials"
        infos.append(OverlayInfo(name, title, param, metrics, curves, notes_here))
    if shared:
        alone = [
            lab
            for lab, r in zip(labels, results, strict=True)
            if not set(r.study.hyper_params) & set(shared)
        ]
        notes += [f"{lab}: sweeps no key another study sweeps; not overlaid" for lab in alone]
    return infos, notes


def plot_overlay(info: OverlayInfo, *, max_points: int = 2000) -> go.Figure:
    """Draw an :class:`OverlayInfo`: one subplot per metric, one colour per swept value,
    one line style per study, each line with its band."""
    grid = make_subplots(
        rows=1, cols=len(info.metrics), subplot_titles=[schema.label(m) for m in info.metrics]
    )
    colors = value_colors([ln.value for _, _, c in info.studies for ln in c.lines])
    traces, shown = [], set()
    for label, dash, curves in info.studies:
        for line in curves.lines:
            col = info.metrics.index(line.metric) + 1
            axes = {"xaxis": f"x{col}", "yaxis": f"y{col}"}
            keep = thin(len(line.x), max_points)
            name = html.escape(f"{label}: {line.name}")  # plotly reads names as markup
            color = colors[line.value]
            traces.append(
                band(line.x[keep], line.low[keep], line.high[keep], color=color, group=name) | axes
            )
            traces.append(
                {
                    "type": "scatter",
                    "x": line.x[keep],
                    "y": line.mean[keep],
                    "mode": "lines",
                    "name": name,
                    "legendgroup": name,
                    "showlegend": name not in shown,
                    "line": {"color": color, "dash": dash},
                    "customdata": line.n[keep],
                    "hovertemplate": f"{name}<br>x=%{{x:.4g}}<br>mean=%{{y:.4g}}"
                    "<br>n=%{customdata}<extra></extra>",
                    **axes,
                }
            )
            shown.add(name)
    fig = go.Figure(data=traces, layout=grid.layout)
    styles = ", ".join(f"{label} {dash}" for label, dash, _ in info.studies)
    band_name = info.studies[0][2].band if info.studies else ""
    lines = [
        f"geometric mean over trials (mean for fractions), band: {band_name}; "
        f"line style per study: {styles}",
        *info.notes,
    ]
    subtitle = "<br>".join(html.escape(line) for line in lines)
    fig.update_xaxes(title_text=schema.label("epoch"))
    fig.update_layout(
        title={
            "text": f"{html.escape(info.title)}<br><sup>{subtitle}</sup>",
            "yref": "container",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 20},
        },
        height=420 + 20 * len(info.notes),
        margin={"t": 105 + 20 * len(info.notes)},
        template="plotly_white",
    )
    return fig


def overlay_figures(results: list[Results]) -> dict[str, go.Figure]:
    """Overlaid sweep curves vs epoch of the keys two or more studies sweep (one colour per
    swept value, one line style per study, with bands); without such a key, one figure of
    all trials of each study. By name (``sweep_<key>`` or ``all_trials``)."""
    return _overlays(results)[0]


def _overlays(results: list[Results]) -> tuple[dict[str, go.Figure], list[str]]:
    infos, notes = _get_overlay_info(results)
    mp = min((r.options.max_points for r in results), default=2000)
    return {info.name: plot_overlay(info, max_points=mp) for info in infos}, notes


def compare_studies(locations: list[str], *, output: str | None = None) -> tuple[str, str | None]:
    """Load and analyse each study under its own plan and compare them.

    Args:
        locations: two or more study directories (local paths or URIs).
        output: also write the comparison as one self-contained HTML page there.

    Returns:
        The text for the terminal, and the path or URI written (None without ``output``).

    Raises:
        ResultsError: fewer than two directories, or one that cannot be analysed (named).
    """
    if len(locations) < 2:
        raise ResultsError(
            f"a comparison needs two or more study directories, got {len(locations)} "
            "(for one study: gcnc analyze or gcnc report)"
        )
    results = [compute_results(load_results(loc)) for loc in locations]
    text = format_comparison(results)
    if output is None:
        return text, None
    figures, left_out = _overlays(results)
    target = Storage.open(output)
    target.write_bytes(target.root, render_html(results, figures, left_out).encode("utf-8"))
    return text, target.location


def studies_frame(results: list[Results]) -> pd.DataFrame:
    """One row per study: its label, directory, trials, whether its results are primary,
    spec hash and code (commit, else code version)."""
    rows = []
    for label, r in zip(study_labels(results), results, strict=True):
        facts = dict(study_facts(r.study))
        rows.append(
            {
                "study": label,
                "directory": r.study.path,
                "trials": facts["trials"],
                "analysis": r.label,
                "spec hash": facts["spec hash"],
                "code": facts.get("code") or facts["code version"],
            }
        )
    return pd.DataFrame(rows)


_CELL = (
    "each cell: the study's own headline cell, verdict: effect [1 − α interval, not adjusted], "
    f"p adjusted by the study's correction; {MISSING}: the study did not test the claim there"
)


def format_comparison(results: list[Results]) -> str:
    """What ``gcnc compare`` prints: the studies, the claims × studies table (one block per
    comparison) and notes."""
    out = [f"Comparison of {len(results)} studies", ""]
    out.append(studies_frame(results).to_string(index=False))
    for label, r in zip(study_labels(results), results, strict=True):
        out.append(f"  {label}: {family_line(r)}")
        out += [f"  WARNING ({label}): {w}" for w in r.study.warnings]
    title = "Claims × studies (each study's verdicts under its own plan)"
    out += ["", title, "=" * len(title), _CELL]
    blocks = _by_comparison(comparison_table(results))
    for at, part in blocks:
        out += ["", _AT_TITLES[at], part.to_string(index=False)]
    if not blocks:
        out.append("(no claim could be tested)")
    notes = comparison_notes(results)
    if notes:
        out += ["", "Notes", "====="] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def render_html(results: list[Results], figures: dict[str, go.Figure], notes: list[str]) -> str:
    """The comparison as one HTML document, plotly.js inline."""
    labels = study_labels(results)
    title = html.escape(f"gcnc comparison — {', '.join(labels)}")
    families = "".join(
        f"<li>{html.escape(f'{lab}: {family_line(r)}')}</li>"
        for lab, r in zip(labels, results, strict=True)
    )
    warnings = "".join(
        f'<div class="warn">{html.escape(f"{lab}: {w}")}</div>'
        for lab, r in zip(labels, results, strict=True)
        for w in r.study.warnings
    )
    studies = warnings + _html_table(studies_frame(results)) + f'<ul class="note">{families}</ul>'
    blocks = _by_comparison(comparison_table(results))
    claims = (
        "".join(
            f"<h3>{html.escape(_AT_TITLES[at])}</h3>{_html_table(part, coloured=True)}"
            for at, part in blocks
        )
        or '<p class="note">No claim could be tested.</p>'
    )
    listed = "".join(f"<li>{html.escape(n)}</li>" for n in comparison_notes(results))
    if listed:
        claims += f'<p class="note">Notes:</p><ul class="note">{listed}</ul>'
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{title}</title><style>{_CSS}.v-missing{{color:#999}}</style>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            f"</head><body><h1>{title}</h1>",
            _section("Studies", studies),
            _section("Claims × studies", claims, _CELL),
            _figure_section(figures, notes),
            "</body></html>",
        ]
    )


_AT_TITLES = {"final": "At the final epoch", "matched": "At matched training progress"}


def _by_comparison(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """:func:`comparison_table` split per comparison, its study columns named by label."""
    out = []
    for at in COMPARISONS:
        prefix = f"{at}: "
        cols = [c for c in table.columns if c.startswith(prefix)]
        if cols:
            part = table[["group", "claim", *cols]]
            out.append(
                (at, part.set_axis(["group", "claim", *(c[len(prefix) :] for c in cols)], axis=1))
            )
    return out


def _html_table(frame: pd.DataFrame, *, coloured: bool = False) -> str:
    """An HTML table; ``coloured``: its cells after the first two (group, claim) coloured by
    the verdict they state, with the report's CSS."""
    return html_table(frame, cell_class=_verdict_cell if coloured else None)


def _verdict_cell(position: int, column: str, value: object) -> str:
    if position < 2:  # group and claim
        return ""
    verdict = cell_verdict(str(value))
    return "v-missing" if verdict == MISSING else verdict_class(verdict)
