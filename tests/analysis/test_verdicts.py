"""Ordering tests of the paper's claims and their verdicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import Options, StudyResults, compute_results, load_results, results_json
from analysis import verdicts as V
from analysis.tables import resolve_options
from studyfiles import InputError
from studyfiles.plan import Plan


def _study(tmp_path, **kw):
    spec = SyntheticSpec(seeds=(0, 1, 2, 3), epochs=8, running=0, **kw)
    return load_results(write_synthetic_study(tmp_path / "s", spec))


def _final(table):
    return table[table["at"] == "final epoch"].set_index("claim")


def _planned(study, **plan):
    """``study`` with ``plan`` as its analysis plan, where study.json records it: in the
    spec (which its hash covers) and as ``plan``."""
    data = Plan(**plan).as_dict()
    meta = study.meta | {"spec": study.meta["spec"] | {"analysis": data}, "plan": data}
    return dataclasses.replace(study, meta=meta, warnings=[])


def test_claimed_trends_are_reproduced(tmp_path):
    table = _final(V.verdict_table(_study(tmp_path, effect=1.0)))
    for claim in (
        "↑ lr ⇒ lower GC (raw)",
        "↑ lr ⇒ lower NC (CDNV)",
        "↑ lr ⇒ higher 5-shot accuracy",
    ):
        assert table.loc[claim, "verdict"] == V.REPRODUCED, claim
    row = table.loc["↑ lr ⇒ lower GC (raw)"]
    assert row["x_from"] == 0.005 and row["x_to"] == 0.1
    assert row["diff_high"] < 0 and row["rho_high"] < 0


def test_reversed_trends_are_not_reproduced(tmp_path):
    table = _final(V.verdict_table(_study(tmp_path, effect=-1.0)))
    for claim in ("↑ lr ⇒ lower GC (raw)", "↑ lr ⇒ lower geometric collapse"):
        assert table.loc[claim, "verdict"] == V.NOT_REPRODUCED, claim


def test_no_trend_is_inconclusive(tmp_path):
    table = _final(V.verdict_table(_study(tmp_path, effect=0.0, noise=0.2)))
    param_claims = table[table["x"] == "train.lr"]
    assert (param_claims["verdict"] == V.INCONCLUSIVE).all()


def test_smaller_batches_are_the_claimed_direction(tmp_path):
    study = _study(tmp_path, lrs=(0.02,), batch_sizes=(32, 128, 512), transfer=False, shots=())
    table = _final(V.verdict_table(study))
    assert table.loc["↓ batch_size ⇒ lower GC (raw)", "verdict"] == V.REPRODUCED
    row = table.loc["↓ batch_size ⇒ lower GC (raw)"]
    assert row["rho"] > 0  # GC rises with the batch size...
    assert row["x_from"] == 512 and row["x_to"] == 32  # ...so it falls along the arrow
    assert row["change_pct"] < 0 and row["change_high"] < 0 and row["mean_to"] < row["mean_from"]


def test_claims_follow_what_the_study_measured(lr_study, source_only_dir):
    ys = {c.y for c in V.claims_for(lr_study)}
    assert {"gc", "geo_collapse", "nc_cdnv", "target_nc_cdnv", "fewshot_acc_5shot"} <= ys
    source_only = V.claims_for(load_results(source_only_dir))
    assert {c.y for c in source_only} == {"gc", "geo_collapse", "nc_cdnv"}
    assert all(c.x == "train.batch_size" for c in source_only)


def test_transfer_chain_claims_are_rank_tests_only(lr_study):
    table = V.verdict_table(lr_study)
    chain = table[table["claim"] == "lower source GC ⇒ lower target NC"]
    assert len(chain) == 2 and chain["diff"].isna().all() and chain["rho"].notna().all()
    assert chain["reason"].str.startswith("spearman").all()
    assert (chain["p"] == chain["p_spearman"]).all()


def test_verdicts_are_given_at_the_final_epoch_and_at_matched_progress(lr_study):
    table = V.verdict_table(lr_study)
    ats = list(dict.fromkeys(table["at"]))
    assert ats[0] == "final epoch" and ats[1].startswith("train loss ≤ ")
    by_acc = V.verdict_table(lr_study, options=Options(progress_by="train_acc"))
    assert by_acc["at"].iloc[-1].startswith("train accuracy ≥ ")


def test_one_test_only_when_asked(lr_study):
    table = V.verdict_table(lr_study, options=Options(evidence=("extremes",)))
    param_rows = table[table["x"] == "train.lr"]
    assert not param_rows["reason"].str.contains("spearman").any()


def test_every_tested_row_is_one_family_and_the_verdict_uses_the_adjusted_p(lr_study):
    table = V.verdict_table(lr_study)
    tested = table["p"].notna()
    assert (table["family"] == tested.sum()).all() and (table["role"] == V.PRIMARY).all()
    assert (table.loc[tested, "p_adj"] >= table.loc[tested, "p"] - 1e-15).all()
    alpha = Options().alpha
    reproduced = table["verdict"] == V.REPRODUCED
    assert reproduced.any()
    assert (table.loc[reproduced, "p_adj"] <= alpha).all()
    assert (table.loc[reproduced, "direction"] == 1).all()
    # the raw verdict is at least as generous as the adjusted one
    assert ((table["verdict_raw"] == V.REPRODUCED) | ~reproduced).all()


def test_a_claims_p_value_is_the_largest_of_its_tests_when_all_must_agree(lr_study):
    table = V.verdict_table(lr_study)
    both = table.dropna(subset=["p_extremes", "p_spearman"])
    agree = both[both["direction"] != 0]
    assert len(agree)
    np.testing.assert_allclose(agree["p"], np.maximum(agree["p_extremes"], agree["p_spearman"]))


def test_without_correction_the_adjusted_p_is_the_raw_one(lr_study):
    table = V.verdict_table(lr_study, options=Options(correction="none"))
    np.testing.assert_allclose(table["p_adj"], table["p"])
    assert (table["verdict"] == table["verdict_raw"]).all()


def test_a_comparison_outside_the_plan_is_a_secondary_family(lr_study):
    table = V.verdict_table(_planned(lr_study, comparison="final"))
    final = table["at"] == V.FINAL
    assert (table.loc[final, "role"] == V.PRIMARY).all()
    assert (table.loc[~final, "role"] == V.SECONDARY).all()
    assert table.loc[final, "family"].iloc[0] == table.loc[final, "p"].notna().sum()


def test_options_off_the_plan_make_every_row_exploratory_in_the_same_families(lr_study):
    planned = V.verdict_table(_planned(lr_study, comparison="final"))
    table = V.verdict_table(lr_study, options=Options(comparison="final"))  # plan: "both"
    final = table["at"] == V.FINAL
    assert set(table.loc[final, "role"]) == {V.EXPLORATORY}
    assert set(table.loc[~final, "role"]) == {"exploratory (secondary)"}
    assert V.in_main_family(table).tolist() == final.tolist()
    pd.testing.assert_frame_equal(
        table.drop(columns="role"), planned.drop(columns="role"), check_dtype=False
    )


def test_claim_groups_in_the_plan_choose_the_claims(lr_study):
    table = V.verdict_table(lr_study, options=Options(claims=("chain",)))
    assert set(table["group"]) == {"chain"}


def test_a_matched_level_every_trial_had_passed_at_its_first_evaluation_is_not_applicable(
    lr_study,
):
    last = lr_study.metrics.groupby("trial_id", observed=True)["epoch"].transform("max")
    late = dataclasses.replace(
        lr_study, metrics=lr_study.metrics[lr_study.metrics["epoch"] == last]
    )
    table = V.verdict_table(late)
    matched = table[table["at"] != V.FINAL]
    assert len(matched) and (matched["verdict"] == V.NOT_APPLICABLE).all()
    assert matched["reason"].str.contains("by their first evaluation").all()
    final = table[table["at"] == V.FINAL]
    assert (final["family"] == final["p"].notna().sum()).all()  # n/a rows join no family


def test_results_that_depart_from_the_plan_are_exploratory_everywhere(lr_study):
    planned = compute_results(lr_study)
    assert planned.label == "primary" and planned.exploratory == []
    moved = compute_results(lr_study, overrides={"progress_quantile": 0.7, "alpha": 0.1})
    assert moved.label == "exploratory"
    assert sorted(moved.exploratory) == ["alpha=0.1", "progress_quantile=0.7"]
    data = results_json(moved)
    assert data["label"] == "exploratory" and data["plan"] == Plan().as_dict()
    assert {r["label"] for r in data["verdicts"]} == {"exploratory"}
    assert {r["role"] for r in data["verdicts"]} == {V.EXPLORATORY}
    assert data["options"]["alpha"] == 0.1
    assert set(planned.verdicts["role"]) == {V.PRIMARY}


def test_a_plans_alpha_is_kept_exactly_so_its_own_results_are_primary(lr_study):
    alpha = 0.05 / 3  # 1 - (1 - alpha) is not alpha in floating point
    assert Options.from_plan(Plan(alpha=alpha)).alpha == alpha
    assert Options.from_plan(Plan(alpha=0.4999999999999)).alpha == 0.4999999999999
    results = compute_results(_planned(lr_study, alpha=alpha, comparison="final"))
    assert results.label == "primary" and set(results.verdicts["role"]) == {"primary", "secondary"}


@pytest.mark.parametrize("alpha", [1e-13, 0.0, 0.5])
def test_an_alpha_out_of_the_plans_range_is_one_input_error(lr_study, alpha):
    with pytest.raises(InputError) as caught:
        resolve_options(lr_study, overrides={"alpha": alpha})
    assert caught.value.field == "analysis.alpha"


def test_options_take_alpha_or_confidence_and_refuse_them_disagreeing():
    assert Options(alpha=0.01).confidence == pytest.approx(0.99)
    assert Options(confidence=0.9).alpha == 0.1 and Options().alpha == 0.05
    with pytest.raises(ValueError, match="disagree"):
        Options(alpha=0.01, confidence=0.9)
    with pytest.raises(ValueError, match="alpha"):
        Options(confidence=1 - 1e-13)


def test_a_matched_level_near_where_most_trials_start_is_not_applicable(tmp_path):
    # lr 1e-4 barely learns: every trial reaches its best loss (≈ 2.15, from ≈ 2.3), the
    # others within their first 12 % of the way down from their first evaluation
    spec = SyntheticSpec(lrs=(1e-4, 0.02, 0.1), seeds=(0, 1, 2, 3, 4), running=0, restarted=0,
                         leftovers=0, stopped_merge=False)  # fmt: skip
    study = load_results(write_synthetic_study(tmp_path / "slow", spec))
    table = V.verdict_table(study)
    matched = table[table["at"] != V.FINAL]
    assert len(matched) and (matched["verdict"] == V.NOT_APPLICABLE).all()
    assert matched["reason"].str.contains("10 of 15 trials reached").all()
    assert (matched["family"] == 0).all()
    later = V.verdict_table(study, options=Options(progress_quantile=0.7))  # loss ≤ 1.55
    assert (later["verdict"] != V.NOT_APPLICABLE).all()


def test_a_trials_share_of_its_progress_runs_from_its_first_evaluation_to_its_best():
    metrics = pd.DataFrame(
        {
            "trial_id": ["a"] * 4 + ["b"] * 4,
            "epoch": [0, 1, 2, 3] * 2,
            "train_loss": [2.3, 2.2, 1.0, 0.1, 2.0, 1.9, 1.5, 1.2],
        }
    )
    study = StudyResults(meta={}, metrics=metrics, trials=pd.DataFrame())
    reached = pd.DataFrame({"trial_id": ["a", "b"], "epoch": [1.0, 0.0]})
    near, first = V.near_start(study, reached, by="train_loss", level=2.2, min_progress=0.2)
    assert near.tolist() == [True, True]  # a: 0.1 / 2.2 of its way; b: past it at epoch 0
    assert first.tolist() == [False, True]
    reached = pd.DataFrame({"trial_id": ["a", "b"], "epoch": [1.9, 2.0]})
    near, first = V.near_start(study, reached, by="train_loss", level=1.5, min_progress=0.2)
    assert near.tolist() == [False, False]  # a: 0.8 / 2.2 = 0.36; b: 0.5 / 0.8
    near, _ = V.near_start(study, reached, by="train_loss", level=1.5, min_progress=0.5)
    assert near.tolist() == [True, False]


def test_a_claim_without_data_is_not_tested_and_joins_no_family(lr_study):
    metrics = lr_study.metrics.copy()
    last = metrics.groupby("trial_id", observed=True)["epoch"].transform("max")
    metrics.loc[metrics["epoch"] == last, "target_nc_cdnv"] = np.nan  # none at the end
    table = V.verdict_table(dataclasses.replace(lr_study, metrics=metrics, warnings=[]))
    on_nc = (table["y"] == "target_nc_cdnv") | (table["x"] == "target_nc_cdnv")
    empty = table[on_nc & (table["at"] == V.FINAL)]
    assert len(empty) == 4 and (empty["n"] == 0).all()
    assert (empty["verdict"] == V.NOT_TESTED).all() and (empty["verdict_raw"] == V.NOT_TESTED).all()
    assert empty["reason"].str.startswith("no data: no trial has").all()
    assert (empty["family"] == 0).all()
    tested = table["p"].notna()
    assert (table.loc[tested, "family"] == tested.sum()).all()
    assert not table.loc[tested, "verdict"].isin(V.UNTESTED).any()


def test_with_require_any_one_test_suffices_unless_another_points_the_other_way():
    p, direction, reason = V._combine(
        {"extremes": (0.001, 1), "spearman": (0.5, -1)}, require="any"
    )
    assert (p, direction) == (1.0, 0) and "point different ways" in reason
    p, direction, _ = V._combine({"extremes": (0.001, 1), "spearman": (0.5, 0)}, require="any")
    assert p == pytest.approx(0.002) and direction == 1
    p, direction, _ = V._combine({"extremes": (0.001, 1), "spearman": None}, require="any")
    assert p == pytest.approx(0.001) and direction == 1


def test_a_study_plan_is_read_from_study_json(lr_study):
    results = compute_results(_planned(lr_study, alpha=0.01, comparison="final"))
    assert results.label == "primary" and results.options.alpha == pytest.approx(0.01)
    assert (results.verdicts.loc[results.verdicts["at"] != V.FINAL, "role"] == V.SECONDARY).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.5},
        {"correction": "fdr"},
        {"comparison": "sometimes"},
        {"n_perm": 10},
        {"evidence": ("vibes",)},
        {"require": "most"},
        {"progress_by": "wall"},
        {"n_boot": 5},
    ],
)
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Options(**kwargs)


def test_a_perfectly_ordered_sweep_gets_the_exact_least_p_value_whatever_the_seed(lr_study):
    import math

    x = np.repeat([0.005, 0.02, 0.1], 3)
    frame = pd.DataFrame({"train.lr": x, "gc": 100.0 - np.arange(9.0)})  # every trial in order
    claim = V.Claim("train.lr", "gc", -1, "↑ lr ⇒ lower GC (raw)", "")
    exact = 2 * math.factorial(3) ** 3 / math.factorial(9)  # 2 of the 1680 orderings
    ps = [V._spearman_p(frame, claim, Options(seed=s, n_perm=20000)) for s in range(6)]
    assert ps == [pytest.approx(exact)] * 6


def test_options_carry_every_field_of_a_plan_and_give_it_back():
    from analysis.options import _SHARED

    assert {f.name for f in dataclasses.fields(Plan)} == {*_SHARED, "alpha"}
    plan = Plan(claims=("chain",), comparison="final", alpha=0.01, correction="bonferroni",
                progress_by="train_acc", progress_quantile=0.8, require="any")  # fmt: skip
    assert Options.from_plan(plan).plan() == plan
    assert Options(n_boot=300).with_plan(plan).n_boot == 300
