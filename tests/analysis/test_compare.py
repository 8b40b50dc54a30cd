"""The replication view of several studies: ``gcnc compare`` and ``analysis.compare``."""

from __future__ import annotations

import pathlib
import re

import plotly.offline
import pytest
from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import ResultsError, compute_results, load_results
from analysis.compare import (
    MISSING,
    compare_studies,
    comparison_notes,
    comparison_table,
    format_comparison,
    overlay_figures,
    study_labels,
)
from analysis.tables import headline
from orchestrator.cli import main

EVIL = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two lr sweeps sharing a name (different effects, seeds and α) and a batch sweep."""
    root = tmp_path_factory.mktemp("compare")
    seeds = (0, 1, 2, 3)
    specs = {
        "a": SyntheticSpec(name="lr-sweep", seeds=seeds),
        "b": SyntheticSpec(
            name="lr-sweep", seeds=seeds, effect=0.5, rng_seed=1,
            extra_spec={"analysis": {"alpha": 0.01}},
        ),
        "batch": SyntheticSpec(
            name="batch-sweep", lrs=(0.02,), batch_sizes=(32, 128, 512), transfer=False, shots=()
        ),
        "evil": SyntheticSpec(name=EVIL, seeds=seeds, rng_seed=2),
    }  # fmt: skip
    return {key: write_synthetic_study(root / key, spec) for key, spec in specs.items()}


@pytest.fixture(scope="module")
def results(dirs):
    return {key: compute_results(load_results(path)) for key, path in dirs.items()}


@pytest.fixture(scope="module")
def three(results):
    return [results["a"], results["b"], results["batch"]]


def test_studies_sharing_a_name_are_told_apart_by_their_directory(three):
    assert study_labels(three) == ["lr-sweep (a)", "lr-sweep (b)", "batch-sweep"]


def test_the_table_has_one_column_per_study_and_planned_comparison(three):
    table = comparison_table(three)
    studies = ["lr-sweep (a)", "lr-sweep (b)", "batch-sweep"]
    assert list(table.columns) == [
        "group",
        "claim",
        *(f"final: {s}" for s in studies),
        *(f"matched: {s}" for s in studies),
    ]
    assert not table.duplicated(["group", "claim"]).any()


def test_each_cell_is_the_studys_own_headline_cell(three):
    table = comparison_table(three).set_index(["group", "claim"])
    for label, r in zip(study_labels(three), three, strict=True):
        head = headline(r)
        assert len(head) > 0
        for row in head.itertuples():
            assert table.loc[(row.group, row.claim), f"final: {label}"] == row.final
            assert table.loc[(row.group, row.claim), f"matched: {label}"] == row.matched


def test_a_claim_a_study_cannot_test_shows_a_dash(three):
    table = comparison_table(three)
    lr = table[table["group"] == "lr"]
    batch = table[table["group"] == "batch_size"]
    chain = table[table["group"] == "transfer chain"]  # the batch sweep measured no transfer
    assert len(lr) and len(batch) and len(chain)
    assert (lr["final: batch-sweep"] == MISSING).all()
    assert (chain["matched: batch-sweep"] == MISSING).all()
    assert (batch["final: lr-sweep (a)"] == MISSING).all()
    assert MISSING not in set(lr["final: lr-sweep (a)"])
    groups = list(table["group"])  # each group's rows together, in the studies' order
    assert groups == sorted(groups, key=groups.index)


def test_differing_plans_and_matched_levels_are_noted(three, results):
    notes = comparison_notes(three)
    plans = [n for n in notes if "analysis plans differ" in n]
    assert len(plans) == 1
    assert "alpha: lr-sweep (a) 0.05, lr-sweep (b) 0.01, batch-sweep 0.05" in plans[0]
    assert "not on the same footing" in plans[0]
    assert any(n.startswith("matched: each study at the level") for n in notes)
    same_plan = comparison_notes([results["a"], results["evil"]])
    assert not any("analysis plans differ" in n for n in same_plan)


def test_the_text_names_each_study_and_shows_the_table(three, results):
    text = format_comparison(three)
    for r in three:
        assert r.study.path in text and r.study.meta["spec_hash"] in text
    assert "At the final epoch" in text and "At matched training progress" in text
    assert headline(results["a"])["final"].iloc[0] in text
    assert "familywise error ≤ 0.01 by Holm" in text  # study b's own family


def test_a_shared_sweep_is_overlaid_one_colour_per_value_one_dash_per_study(three):
    figures = overlay_figures(three)
    assert list(figures) == ["sweep_train.lr"]  # the batch sweep shares no key
    lines = [t for t in figures["sweep_train.lr"].data if t.mode == "lines"]
    dash = {t.name.split(":")[0]: t.line.dash for t in lines}
    assert dash == {"lr-sweep (a)": "solid", "lr-sweep (b)": "dash"}
    colours = {(t.name.split(": ")[1], t.line.color) for t in lines}
    assert len({name for name, _ in colours}) == len(colours) == 3  # 3 lrs, one colour each
    bands = [t for t in figures["sweep_train.lr"].data if t.fill == "toself"]
    assert len(bands) == len(lines)


def test_studies_without_a_common_sweep_overlay_all_their_trials(results):
    figures = overlay_figures([results["a"], results["batch"]])
    assert list(figures) == ["all_trials"]
    names = {t.name for t in figures["all_trials"].data if t.mode == "lines"}
    assert names == {"lr-sweep: all trials", "batch-sweep: all trials"}


@pytest.fixture(scope="module")
def page(dirs, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("page") / "compare.html"
    text, written = compare_studies([dirs["a"], dirs["b"], dirs["evil"]], output=str(out))
    assert written == str(out) and "lr-sweep (a)" in text
    return out.read_text(encoding="utf-8")


def test_the_page_is_self_contained(page):
    bundle = plotly.offline.get_plotlyjs()
    assert page.count(bundle) == 1
    rest = page.replace(bundle, "")
    assert "<script src" not in rest
    assert not re.search(r"(src|href)=[\"']?https?://", rest)
    assert 'id="fig-sweep_train.lr"' in rest
    assert '<td class="v-reproduced">reproduced: ' in rest


def test_every_string_on_the_page_is_escaped(page):
    rest = page.replace(plotly.offline.get_plotlyjs(), "")
    assert EVIL not in rest
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in rest
    assert rest.count("<script") == rest.count("</script>")  # only the page's own scripts


def test_fewer_than_two_studies_are_refused(dirs):
    with pytest.raises(ResultsError, match="two or more study directories"):
        compare_studies([dirs["a"]])


def test_the_cli_prints_the_table_and_the_page_written(dirs, tmp_path, capsys):
    out = tmp_path / "c.html"
    assert main(["compare", dirs["a"], dirs["batch"], "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Claims × studies" in printed and "batch-sweep" in printed
    assert printed.rstrip().endswith(str(out))
    assert out.stat().st_size > 0


@pytest.mark.parametrize("case", ["one directory", "not a study"])
def test_the_cli_refuses_bad_input_with_one_line(dirs, tmp_path, capsys, case):
    args = [dirs["a"]] if case == "one directory" else [dirs["a"], str(tmp_path)]
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gcnc: error: STUDY_DIR")
    assert ("two or more" in err) if case == "one directory" else (str(tmp_path) in err)


def test_the_page_is_written_to_a_uri(dirs, tmp_path):
    _, written = compare_studies([dirs["a"], dirs["b"]], output=f"file://{tmp_path}/c.html")
    assert written == f"file://{tmp_path}/c.html"
    assert pathlib.Path(tmp_path, "c.html").stat().st_size > 0
