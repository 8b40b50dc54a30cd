"""Ordering tests of the paper's claims and their verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from synthetic_study import SyntheticSpec, write_synthetic_study

from analysis import Options, load_results
from analysis import verdicts as V


def test_welch_interval_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5), rng.normal(1, 3, 7)
    diff, low, high = V.welch_interval(a, b, confidence=0.9)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
    assert diff == pytest.approx(b.mean() - a.mean())
    assert (low, high) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize(
    ("low", "high", "sign", "want"),
    [
        (-3, -1, -1, 1),
        (-3, -1, 1, -1),
        (1, 2, 1, 1),
        (1, 2, -1, -1),
        (-1, 1, -1, 0),
        (np.nan, 1, 1, None),
    ],
)
def test_side_of_an_interval(low, high, sign, want):
    assert V.side(low, high, sign) == want


@pytest.mark.parametrize(
    ("sides", "require", "want"),
    [
        ([1, 1], "all", V.REPRODUCED),
        ([1, 0], "all", V.INCONCLUSIVE),
        ([1, 0], "any", V.REPRODUCED),
        ([-1, -1], "all", V.NOT_REPRODUCED),
        ([-1, 0], "any", V.NOT_REPRODUCED),
        ([1, -1], "any", V.INCONCLUSIVE),
        ([None, 1], "all", V.REPRODUCED),
        ([None, None], "all", V.INCONCLUSIVE),
    ],
)
def test_combining_tests_into_a_verdict(sides, require, want):
    assert V.combine(sides, require=require)[0] == want


def _study(tmp_path, **kw):
    spec = SyntheticSpec(seeds=(0, 1, 2, 3), epochs=8, running=0, **kw)
    return load_results(write_synthetic_study(tmp_path / "s", spec))


def _final(table):
    return table[table["at"] == "final epoch"].set_index("claim")


def test_claimed_trends_are_reproduced(tmp_path):
    table = _final(V.verdict_table(_study(tmp_path, effect=1.0)))
    for claim in (
        "↑ lr ⇒ lower GC (raw)",
        "↑ lr ⇒ lower NC (CDNV)",
        "↑ lr ⇒ higher 5-shot accuracy",
    ):
        assert table.loc[claim, "verdict"] == V.REPRODUCED, claim
    row = table.loc["↑ lr ⇒ lower GC (raw)"]
    assert row["x_low"] == 0.005 and row["x_high"] == 0.1
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
    assert table.loc["↓ batch_size ⇒ lower GC (raw)", "rho"] > 0


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


@pytest.mark.parametrize(
    "kwargs",
    [
        {"confidence": 1.5},
        {"evidence": ("vibes",)},
        {"require": "most"},
        {"progress_by": "wall"},
        {"n_boot": 5},
    ],
)
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Options(**kwargs)
