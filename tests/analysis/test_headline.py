"""The headline ``gcnc analyze`` and the report open with: per claim group the count of
each verdict, per claim the verdict with its effect, unadjusted interval and adjusted
p-value; the family it rests on, in words; the study's facts after it."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from synthetic_study import SyntheticSpec, search_spec, write_synthetic_study

from analysis import compute_results, format_tables, load_results, results_json, write_report
from analysis.tables import comparisons_line, family_line, group_summary, headline


@pytest.fixture(scope="module")
def results(lr_study):
    return compute_results(lr_study)


def test_each_group_counts_its_claims_by_their_overall_verdict(results):
    head, groups = headline(results), group_summary(results)
    assert list(groups["claim group"]) == list(dict.fromkeys(head["group"]))
    for row in groups.itertuples(index=False):
        mine = head[head["group"] == row[0]]
        assert row.claims == len(mine)
        for verdict, n in mine["verdict"].value_counts().items():
            assert groups.loc[groups["claim group"] == row[0], verdict].item() == n
    assert {"reproduced", "not reproduced", "inconclusive"} <= set(groups.columns)


def test_a_headline_cell_holds_the_verdict_effect_and_adjusted_p(results):
    v = results.verdicts
    planned = v[v["role"] == "primary"]
    head = headline(results)
    for r in planned.itertuples():
        cell = head.loc[head["claim"] == r.claim, "final" if r.at == "final epoch" else "matched"]
        text = cell.item()
        assert text.startswith(r.verdict)
        if np.isfinite(r.p_adj):
            p = "<1e-4" if r.p_adj < 1e-4 else f"{r.p_adj:.2g}"
            assert text.endswith(f", p {p}")  # the adjusted p, not the raw one
    line = comparisons_line(results)
    assert "not adjusted" in line and "p adjusted (holm)" in line


def test_the_terminal_opens_with_the_headline_and_gives_the_facts_after(lr_study):
    text = format_tables(lr_study)
    first = text.splitlines()[0]
    assert first.startswith(f"{lr_study.name}: {len(lr_study.trials)} trials (")
    assert text.index("Headline (") < text.index("\nStudy\n=====") < text.index("spec hash:")
    assert text.index("claim group") < text.index("Verdicts on the paper's claims, in detail")


def test_without_correction_the_family_line_does_not_claim_control(lr_study):
    line = family_line(compute_results(lr_study, overrides={"correction": "none"}))
    assert "NOT controlled" in line and "≤" not in line


def test_a_plan_comparing_only_final_epochs_describes_only_that(lr_study):
    results = compute_results(lr_study, overrides={"comparison": "final"})
    line = comparisons_line(results)
    assert line.startswith("final: each finished trial's last evaluation")
    assert "matched:" not in line
    assert set(headline(results).columns) == {"group", "claim", "verdict", "final"}


def test_matched_only_without_a_progress_measure_says_why_nothing_was_tested(tmp_path):
    path = write_synthetic_study(tmp_path / "s", SyntheticSpec(name="no-progress"))
    meta = json.loads((pathlib.Path(path) / "study.json").read_text())
    study = load_results(path)
    study.metrics["train_loss"] = np.nan  # a study that measured no training loss
    assert not study.measured("train_loss") and meta
    line = family_line(compute_results(study, overrides={"comparison": "matched"}))
    assert "needs train_loss, which the study did not measure" in line


def test_the_json_holds_every_option_the_spec_hash_and_the_group_counts(results):
    data = results_json(results)
    assert data["spec_hash"] == results.study.meta["spec_hash"]
    for name in ("alpha", "correction", "min_per_group", "min_trials", "kendall_max_n", "n_perm"):
        assert name in data["options"], name
    assert data["group_summary"] and data["comparisons"].startswith("final:")
    json.dumps(data, allow_nan=False)


def test_a_grid_with_a_scheduler_carries_the_sampling_note(tmp_path):
    spec = SyntheticSpec(
        name="grid-asha",
        stopped={0: 4},
        extra_spec={"scheduler": {"type": "asha", "metric": "test_acc", "mode": "max"}},
    )
    text = format_tables(load_results(write_synthetic_study(tmp_path / "g", spec)))
    assert "not a random sample of settings: the scheduler (asha) stopped some early" in text


def test_the_reports_search_section_shows_numbers_as_the_terminal_does(tmp_path):
    path = write_synthetic_study(tmp_path / "search", search_spec())
    report = pathlib.Path(write_report(path)).read_text(encoding="utf-8")
    section = report[report.index("<h2>Best trials") : report.index("<h2>Headline")]
    assert "0.5800000000000001" not in section and "nan" not in section
    assert "8/8" in section  # epoch reached / planned
    assert "t00009 (diverged)" in section  # the notes the terminal prints
