"""docs/results.md's numbers come from the committed study outputs under docs/results/:
each block that the page marks with ``<!-- gcnc analyze docs/results/<study> -->`` is what
``gcnc analyze`` prints for that directory today (its headline), to the character."""

from __future__ import annotations

import pathlib
import re

import pytest

from analysis import compute_results, format_tables, load_results

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "results.md"
MARK = re.compile(r"<!-- gcnc analyze (docs/results/[\w.-]+) -->\n```text\n(.*?)\n```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return MARK.findall(PAGE.read_text(encoding="utf-8"))


def headline_block(study_dir: str) -> str:
    """The headline section of ``gcnc analyze STUDY_DIR``: from its title to the study's
    facts that follow it."""
    text = format_tables(load_results(study_dir))
    start = text.index("Headline (")
    end = text.index("\n\nStudy\n=====", start)
    return text[start:end]


def test_the_page_marks_a_block_for_every_committed_study():
    committed = sorted(p.name for p in (ROOT / "docs" / "results").iterdir() if p.is_dir())
    marked = sorted(pathlib.Path(d).name for d, _ in _blocks())
    assert committed and marked == committed


@pytest.mark.parametrize(("study_dir", "block"), _blocks(), ids=lambda v: str(v)[:40])
def test_the_numbers_on_the_page_are_what_the_committed_study_gives(study_dir, block):
    assert headline_block(str(ROOT / study_dir)) == block


@pytest.mark.parametrize("study_dir", sorted({d for d, _ in _blocks()}))
def test_a_committed_study_reads_without_a_warning_and_as_its_own_plan(study_dir):
    study = load_results(str(ROOT / study_dir))
    assert study.warnings == []
    results = compute_results(study)
    assert results.label == "primary" and not results.verdicts.empty


STUDY_FILES = {
    "quickstart": "studies/quickstart.toml",
    "glyphs-5-sources": "studies/transfer/glyphs_5_sources.toml",
    "glyphs-40-sources": "studies/transfer/glyphs_40_sources.toml",
    "fonts-64-sources": "studies/transfer/fonts_64_sources.toml",
    "fashion-mnist-vgg11-layers": "studies/depth/fashion_mnist_vgg11_layers.toml",
}


@pytest.mark.parametrize("name", sorted(STUDY_FILES))
def test_a_committed_study_is_what_its_study_file_runs(name):
    """Same spec hash: the study file in studies/ still resolves to the committed study."""
    import json

    from orchestrator.spec import spec_hash
    from orchestrator.studyfile import load_spec

    stored = json.loads((ROOT / "docs" / "results" / name / "study.json").read_text())
    assert spec_hash(load_spec(str(ROOT / STUDY_FILES[name])).resolved()) == stored["spec_hash"]
    assert stored["code"]["dirty"] is False  # run from a clean tree, its commit recorded


def test_the_page_names_the_commit_every_committed_study_was_run_at():
    import json

    named = re.findall(r"run at commit `([0-9a-f]{12})`", PAGE.read_text(encoding="utf-8"))
    assert named, "docs/results.md names the commits its studies were run at"
    for name in STUDY_FILES:
        stored = json.loads((ROOT / "docs" / "results" / name / "study.json").read_text())
        assert stored["code"]["commit"][:12] in named, name
