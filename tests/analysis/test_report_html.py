"""The HTML report and the terminal tables."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import shutil
import sys

import plotly.offline
import pytest
from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import PngExportError, format_tables, load_results, write_report


@pytest.fixture(scope="module")
def report_html(lr_study_dir: str) -> str:
    path = write_report(lr_study_dir)
    assert path == os.path.join(lr_study_dir, "report.html")
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_the_report_is_self_contained(report_html):
    bundle = plotly.offline.get_plotlyjs()
    assert bundle in report_html  # plotly.js inline, once
    rest = report_html.replace(bundle, "")
    assert "<script src" not in rest
    assert not re.search(r"(src|href)=[\"']?https?://", rest)
    assert rest.count("Plotly.newPlot") == 7  # sweep and transfer × 2 alignments, 3 more


def test_the_report_holds_every_applicable_figure(report_html):
    for name in ("sweep_train.lr_epoch", "sweep_train.lr_train_loss", "transfer_train.lr_epoch"):
        assert f'id="fig-{name}"' in report_html
    for name in ("bound", "scatter_matrix", "correlations"):
        assert f'id="fig-{name}"' in report_html
    assert 'id="fig-robustness"' not in report_html
    assert "robustness figure: this study did not measure gc_exact" in report_html


def test_the_report_shows_verdicts_numbers_and_provenance(report_html, lr_study):
    assert '<td class="v-reproduced">reproduced</td>' in report_html
    assert "↑ lr ⇒ lower GC (raw)" in report_html
    assert "train loss ≤ " in report_html
    assert lr_study.meta["spec_hash"] in report_html
    assert "Correlations of final values" in report_html


def test_a_source_only_study_leaves_transfer_out_with_a_note(source_only_dir, tmp_path):
    out = write_report(source_only_dir, output=str(tmp_path / "r.html"))
    html = pathlib.Path(out).read_text(encoding="utf-8")
    assert "fig-transfer" not in html
    assert "transfer figure: this study did not measure target_nc_cdnv" in html
    assert 'id="fig-sweep_train.batch_size_epoch"' in html


def test_a_seeds_only_study_draws_all_trials_and_the_bound(tmp_path):
    spec = SyntheticSpec(lrs=(0.01,), seeds=(0, 1, 2, 3, 4), bound=True, transfer=False, shots=())
    out = write_report(write_synthetic_study(tmp_path / "e7", spec))
    html = pathlib.Path(out).read_text(encoding="utf-8")
    assert 'id="fig-sweep_all_epoch"' in html and 'id="fig-bound"' in html
    # the title sits in the figure's JSON, where "≥" may be escaped (plotly's encoder
    # escapes non-ASCII characters unless orjson is installed)
    assert "bound ≥ error in 100%" in html.replace("\\u2265", "≥")


def test_a_uri_study_dir_gets_its_report_inside(source_only_dir):
    out = write_report("file://" + source_only_dir)
    assert out == "file://" + os.path.join(source_only_dir, "report.html")  # as it was named
    assert os.path.getsize(os.path.join(source_only_dir, "report.html")) > 0


def test_warnings_reach_the_report(tmp_path):
    (tmp_path / "study.json").write_text(json.dumps({"name": "empty", "sweep_params": []}))
    html = pathlib.Path(write_report(str(tmp_path))).read_text(encoding="utf-8")
    assert '<div class="warn">no metrics files under' in html


def test_png_export_without_kaleido_says_how_after_writing_the_html(
    source_only_dir, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido raises ImportError
    out = tmp_path / "r.html"
    with pytest.raises(PngExportError, match="kaleido"):
        write_report(source_only_dir, output=str(out), png_dir=str(tmp_path / "png"))
    assert out.stat().st_size > 0


def test_terminal_tables_show_verdicts_values_and_correlations(lr_study):
    text = format_tables(lr_study)
    for heading in ("Verdicts on the paper's claims", "Final values across seeds", "Correlations"):
        assert heading in text
    assert "↑ lr ⇒ lower GC (raw)" in text and "reproduced" in text
    assert "lr-sweep" in text


def test_terminal_tables_print_the_warnings(tmp_path):
    (tmp_path / "study.json").write_text(json.dumps({"name": "empty", "sweep_params": []}))
    text = format_tables(load_results(str(tmp_path)))
    assert "WARNING: no metrics files" in text


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("kaleido") is None or shutil.which("chromium") is None,
    reason="needs kaleido (pip install 'gcnc[png]') and Chromium (Debian package 'chromium')",
)
def test_png_export_writes_one_image_per_figure(source_only_dir, tmp_path):
    out = write_report(
        source_only_dir, output=str(tmp_path / "r.html"), png_dir=str(tmp_path / "png")
    )
    html = pathlib.Path(out).read_text(encoding="utf-8")
    names = re.findall(r'id="fig-([^"]+)"', html)
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == sorted(f"{n}.png" for n in names) and len(pngs) >= 4
    for p in (tmp_path / "png").iterdir():
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000


def test_the_report_opens_with_its_label_and_headline(report_html):
    banner = report_html.index('id="analysis-label"')
    assert "primary: computed as the study" in report_html[banner : banner + 300]
    assert banner < report_html.index("<h2>Headline (primary)</h2>")
    assert report_html.index("<h2>Headline") < report_html.index("<h2>Verdicts in detail")
    assert "family: " in report_html and "by Holm" in report_html
    assert "<details><summary>Every test" in report_html


def test_a_report_off_the_plan_says_exploratory_everywhere(lr_study_dir, tmp_path):
    out = tmp_path / "explore.html"
    write_report(lr_study_dir, output=str(out), overrides={"progress_quantile": 0.7})
    text = out.read_text(encoding="utf-8")
    assert "EXPLORATORY: these results depart from the study&#x27;s analysis plan" in text
    assert "progress_quantile=0.7" in text
    assert "<h2>Headline (exploratory)</h2>" in text and "(primary)" not in text


def test_a_search_study_shows_its_best_trials_and_the_sampling_caveat(tmp_path):
    from synthetic_study import search_spec

    path = write_synthetic_study(tmp_path / "search", search_spec())
    text = format_tables(load_results(path))
    assert "Best trials of the search (test_acc, max)" in text
    assert "not a random sample of settings" in text
    report = pathlib.Path(write_report(path)).read_text(encoding="utf-8")
    assert "<h2>Best trials of the search (test_acc, max)</h2>" in report
    assert report.count("not a random sample of settings") >= 2  # search section, correlations
