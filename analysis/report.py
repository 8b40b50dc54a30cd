"""One self-contained HTML report per study: plotly.js inline, so it opens offline."""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from analysis import depth, search
from analysis import figures as F
from analysis.load import StudyResults, load_results
from analysis.options import Options
from analysis.tables import (
    Results,
    comparisons_line,
    compute_results,
    correlation_display,
    depth_verdicts,
    family_line,
    group_summary,
    headline,
    study_facts,
    summary_display,
    verdict_display,
)
from analysis.verdicts import (
    INCONCLUSIVE,
    NOT_APPLICABLE,
    NOT_REPRODUCED,
    NOT_TESTED,
    REPRODUCED,
)
from studyfiles import Storage


class PngExportError(RuntimeError):
    """Static images were asked for but cannot be made here; the message says why."""


def write_report(
    study_dir: str,
    *,
    output: str | None = None,
    png_dir: str | None = None,
    options: Options | None = None,
    overrides: Mapping[str, Any] | None = None,
    allow_missing: bool = False,
) -> str:
    """Write ``report.html`` for a study directory (local path or ``pyarrow.fs`` URI).

    Args:
        study_dir: the study directory.
        output: where to write (default ``<study dir>/report.html``), a path or URI.
        png_dir: also export every figure as ``<name>.png`` there, through kaleido.
        options: statistical and drawing settings (default: the study's analysis plan).
        overrides: analysis-plan fields to change (``alpha``, ``progress_quantile``, …);
            results that depart from the study's plan are labelled exploratory.
        allow_missing: report without the rows of metrics files that cannot be read.

    Returns:
        The path or URI written.

    Raises:
        PngExportError: after writing the HTML, when ``png_dir`` is given but kaleido or a
            Chromium for it is missing.
    """
    study = load_results(study_dir, allow_missing=allow_missing)
    results = compute_results(study, options=options, overrides=overrides)
    figures, notes = build_figures(study, results, options=results.options)
    target = Storage.open(output) if output else Storage.open(study_dir).child("report.html")
    target.write_bytes(target.root, render_html(results, figures, notes).encode("utf-8"))
    if png_dir is not None:
        export_png(figures, png_dir)
    return target.location


def build_figures(
    study: StudyResults, results: Results, *, options: Options
) -> tuple[dict[str, go.Figure], list[str]]:
    """Every figure that applies to the study, by name, and a note per figure left out."""
    figures: dict[str, go.Figure] = {}
    notes: list[str] = []
    mp = options.max_points

    def add(name: str, make: Callable[[], go.Figure]) -> None:
        try:
            figures[name] = make()
        except F.NotMeasured as exc:
            if str(exc) not in notes:
                notes.append(str(exc))

    progress = options.progress_by if study.measured(options.progress_by) else None
    aligns = ["epoch", *([progress] if progress else [])]
    for param in study.hyper_params or [None]:
        for kind, get in (("sweep", F._get_sweep_info), ("transfer", F._get_transfer_info)):
            for align in aligns:
                draw = lambda g=get, p=param, a=align: F.plot_curves(  # noqa: E731
                    g(study, p, align=a, options=options), max_points=mp
                )
                add(f"{kind}_{param or 'all'}_{align}", draw)
    if study.layers is not None:  # a study that measures layers: each measure against depth
        for param in study.hyper_params or [None]:
            for at in ("final", *(["matched"] if progress else [])):
                draw = lambda p=param, a=at: F.plot_depth(  # noqa: E731
                    F._get_depth_info(study, p, at=a, options=options)
                )
                add(f"depth_{param or 'all'}_{at}", draw)
    first = study.hyper_params[0] if study.hyper_params else None
    add("robustness", lambda: F.plot_robustness(F._get_robustness_info(study), max_points=mp))
    add(
        "bound",
        lambda: F.plot_bound(F._get_bound_info(study, param=first, options=options), max_points=mp),
    )
    add(
        "scatter_matrix",
        lambda: F.plot_scatter_matrix(F._get_scatter_matrix_info(study, frame=results.finals)),
    )
    add(
        "correlations",
        lambda: F.plot_correlation_heatmap(
            F._get_correlation_heatmap_info(study, table=results.correlations)
        ),
    )
    return figures, notes


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left} th{background:#f4f4f4}
.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:.5em 1em;margin:.3em 0}
.v-reproduced{background:#dff3e0} .v-not-reproduced{background:#fbe0e0}
.v-inconclusive{background:#f3f3f3}
.note{color:#555;font-size:13px} .figure{margin:1em 0;border:1px solid #eee}
.label{padding:.5em 1em;margin:.5em 0;font-weight:600}
.label-primary{background:#e8f0fe;border-left:4px solid #3367d6}
.label-exploratory{background:#fff4e5;border-left:4px solid #d93025}
details>summary{cursor:pointer;margin:.5em 0}
"""


def render_html(results: Results, figures: dict[str, go.Figure], notes: list[str]) -> str:
    """The whole report as one HTML document."""
    study = results.study
    title = f"gcnc report — {html.escape(study.name)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
        f"</head><body><h1>{title}</h1>",
        _label_banner(results),
        _search_section(results),
        _headline_section(results),
        _summary_section(study),
        _verdict_section(results),
        _section("Final values across seeds", _table(summary_display(results)), _FINAL_NOTE),
        *_depth_section(results),
        _figure_section(figures, notes),
        _section(
            "Correlations of final values",
            _table(correlation_display(results)),
            " ".join(filter(None, [_CORR_NOTE, search.search_note(study)])),
        ),
        _spec_section(study),
        "</body></html>",
    ]
    return "\n".join(parts)


_FINAL_NOTE = (
    "Each finished trial's last evaluation, per swept value: centre [interval] (n trials). "
    "The centre is the geometric mean for a positive quantity, the mean otherwise; the "
    "interval respects the quantity's range (docs/analysis.md, 'Comparing trials'). Raw GC stands "
    "beside the scale-free quantities (geometric collapse, NC)."
)
_CORR_NOTE = "Over finished trials at their last evaluation; [percentile-bootstrap interval]."


def _section(heading: str, body: str, note: str = "") -> str:
    text = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"<section><h2>{html.escape(heading)}</h2>{text}{body}</section>"


def _table(frame: pd.DataFrame, *, verdict_col: str | None = None) -> str:
    """``frame`` as HTML, the cells of ``verdict_col`` coloured by their verdict."""
    return html_table(
        frame, cell_class=lambda i, col, value: verdict_class(value) if col == verdict_col else ""
    )


def verdict_class(verdict: object) -> str:
    """The CSS class (``v-not-reproduced``, …) that colours a cell stating ``verdict``."""
    return "v-" + str(verdict).replace(" ", "-")


def html_table(
    frame: pd.DataFrame, *, cell_class: Callable[[int, str, object], str] | None = None
) -> str:
    """``frame`` as an HTML table, every string escaped; ``cell_class(position, column,
    value)`` names a cell's CSS class ("" for none)."""
    if frame.empty:
        return '<p class="note">Nothing to show.</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for i, (col, value) in enumerate(zip(frame.columns, row, strict=True)):
            cls = cell_class(i, col, value) if cell_class else ""
            attr = f' class="{html.escape(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _summary_section(study: StudyResults) -> str:
    facts = pd.DataFrame(study_facts(study), columns=["", "value"])
    warnings = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in study.warnings)
    return _section("Study", warnings + _table(facts))


def _label_banner(results: Results) -> str:
    cls = f"label label-{results.label}"
    return f'<div class="{cls}" id="analysis-label">{html.escape(results.label_line())}</div>'


def _search_section(results: Results) -> str:
    target = search.search_target(results.study)
    if target is None:
        return ""
    best, notes = search.best_table(results.study, k=10, options=results.options)
    note = " ".join(
        [
            f"The search's answer: trials ranked by {target.metric} ({target.mode}).",
            *notes,
            search.search_note(results.study) or "",
        ]
    )
    return _section(
        f"Best trials of the search ({target.metric}, {target.mode})", _table(best), note
    )


def _headline_section(results: Results) -> str:
    note = f"{family_line(results)}."
    if not results.verdicts.empty:
        note += f" {comparisons_line(results)}."
    groups = group_summary(results)
    body = _table(groups) if not groups.empty else ""
    body += _table(headline(results), verdict_col="verdict")
    return _section(f"Headline ({results.label})", body, note)


_RULES = {
    "all": "the largest of its tests', every test pointing the claimed way",
    "any": "the smallest of its tests' times their number (Bonferroni)",
}


def _verdict_section(results: Results) -> str:
    o = results.options
    planned = {
        "both": "at the final epoch and at matched training progress (SPEC 5)",
        "final": "at the final epoch (the plan's comparison; matched progress is secondary)",
        "matched": "at matched training progress (the plan's comparison; SPEC 5; the final "
        "epoch is secondary)",
    }[o.comparison]
    note = (
        f"Each claim is tested {planned} "
        f"by {' and '.join(o.evidence)}; each test gives a two-sided p-value (Welch's t-test "
        "between the extreme swept values, on the log scale for a positive quantity; a "
        f"permutation test of Spearman's ρ). A claim's p-value: {_RULES[o.require]}. "
        f"{family_line(results)}. Reproduced: adjusted p ≤ {o.alpha:g} with the estimates "
        "on the claimed side; not reproduced: adjusted p ≤ α on the other side; otherwise "
        "inconclusive, which is not evidence of no effect. 'raw' is the verdict on the "
        "unadjusted p-value, shown for reference only. Intervals are raw (unadjusted) "
        f"{o.confidence:.0%} intervals."
    )  # fmt: skip
    table = _table(verdict_display(results), verdict_col="verdict")
    body = f"<details><summary>Every test ({len(results.verdicts)} rows)</summary>{table}</details>"
    return _section(f"Verdicts in detail ({results.label})", body, note)


def _depth_section(results: Results) -> list[str]:
    """The verdicts across depth, one column per layer, and the values across depth; none
    for a study that measures no layers."""
    if results.depth_values is None:
        return []
    values = depth.values_display(results.depth_values)
    body = _depth_table(depth_verdicts(results)) + (
        f"<details><summary>Values across depth ({len(values)} rows)</summary>"
        f"{_table(values)}</details>"
    )
    return [_section(f"Across depth ({results.label})", body, _DEPTH_NOTE)]


_DEPTH_NOTE = (
    "Each claim on GC, geometric collapse and NC tested again on each measured layer's "
    "output (global-average-pooled), at the same comparisons and by the same tests, in the "
    "same family as the other claims (docs/analysis.md, 'Across depth'); the last column "
    "is the claim on the embedding. Each cell: the verdict and the percent change between "
    "the extreme swept values (raw). The figures below draw each measure against depth."
)


def _depth_table(frame: pd.DataFrame) -> str:
    """The verdicts per layer, each cell coloured by the verdict it starts with."""
    verdicts = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTED, NOT_APPLICABLE)

    def cls(i: int, col: str, value: object) -> str:
        text = str(value)
        found = [v for v in verdicts if text == v or text.startswith(f"{v} (")]
        return verdict_class(found[0]) if i > 1 and found else ""

    return html_table(frame, cell_class=cls)


def _figure_section(figures: dict[str, go.Figure], notes: list[str]) -> str:
    divs = [
        pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"fig-{name}")
        for name, fig in figures.items()
    ]
    divs = [f'<div class="figure">{div}</div>' for div in divs]
    left_out = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    body = "".join(divs) + (
        f'<p class="note">Left out:</p><ul class="note">{left_out}</ul>' if notes else ""
    )
    return _section("Figures", body)


def _spec_section(study: StudyResults) -> str:
    spec = html.escape(json.dumps(study.meta, indent=2, sort_keys=True, default=str))
    return _section(
        "Study spec", f"<details><summary>study.json</summary><pre>{spec}</pre></details>"
    )


def export_png(figures: dict[str, go.Figure], png_dir: str) -> list[str]:
    """Write each figure as ``<png_dir>/<name>.png`` through kaleido; return the paths."""
    try:
        import kaleido  # noqa: F401
    except ImportError as exc:
        raise PngExportError("PNG export needs kaleido: pip install 'gcnc[png]'") from exc
    base = Storage.open(png_dir)
    written = []
    with tempfile.TemporaryDirectory(prefix="gcnc-png-") as tmp:
        paths = [os.path.join(tmp, f"{name}.png") for name in figures]
        try:  # one browser session for every figure
            pio.write_images(list(figures.values()), paths, format="png")
        except Exception as exc:  # kaleido reports a missing Chromium in several ways
            raise PngExportError(f"PNG export failed, kaleido needs a Chromium: {exc}") from exc
        for name, path in zip(figures, paths, strict=True):
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:  # kaleido returned without writing it (its browser failed)
                raise PngExportError(
                    f"PNG export failed: kaleido wrote no image for {name} (its Chromium "
                    "may have crashed); try again"
                ) from None
            base.write_bytes(base.path(f"{name}.png"), data)
            written.append(base.child(f"{name}.png").location)
    return written
