"""The analysis plan: its defaults, what it reads, what it refuses, and how it compares."""

from __future__ import annotations

import json

import pytest

from studyfiles import InputError
from studyfiles.plan import CLAIM_GROUPS, Plan, UnreadablePlan

FULL = {
    "claims": ["train.lr", "chain"],
    "comparison": "matched",
    "progress_by": "train_acc",
    "progress_quantile": 0.7,
    "alpha": 0.01,
    "correction": "bonferroni",
    "evidence": ["spearman"],
    "require": "any",
}


def test_no_table_and_an_empty_table_are_the_defaults():
    assert Plan.from_mapping(None) == Plan.from_mapping({}) == Plan()
    assert Plan().as_dict() == {
        "claims": ["all"],
        "comparison": "both",
        "progress_by": "train_loss",
        "progress_quantile": 1.0,
        "alpha": 0.05,
        "correction": "holm",
        "evidence": ["extremes", "spearman"],
        "require": "all",
    }


@pytest.mark.parametrize("data", [{}, {"alpha": 0.01}, FULL], ids=["defaults", "alpha", "full"])
def test_as_dict_is_plain_json_that_reads_back_as_the_same_plan(data):
    plan = Plan.from_mapping(data)
    out = plan.as_dict()
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert Plan.from_mapping(out) == plan
    assert {k: out[k] for k in data} == data


def test_one_name_stands_for_a_list_of_it_and_integers_for_numbers():
    plan = Plan.from_mapping({"claims": "chain", "evidence": "spearman", "progress_quantile": 1})
    assert plan.claims == ("chain",) and plan.evidence == ("spearman",)
    assert plan.progress_quantile == 1.0 and isinstance(plan.progress_quantile, float)


def test_claims_and_evidence_are_sets_in_a_fixed_order():
    plan = Plan.from_mapping(
        {"claims": ["chain", "train.lr", "chain"], "evidence": ["spearman", "extremes"]}
    )
    assert plan.claims == ("train.lr", "chain")
    assert plan == Plan.from_mapping({"claims": ["train.lr", "chain"]})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"alfa": 0.05}, "alfa"),
        ({"claims": "foo"}, "claims"),
        ({"claims": []}, "claims"),
        ({"claims": ["all", "chain"]}, "claims"),
        ({"claims": [1]}, "claims"),
        ({"claims": ["depth"]}, "claims"),
        ({"claims": ["chain", "depth"]}, "claims"),
        ({"comparison": "sometimes"}, "comparison"),
        ({"comparison": 1}, "comparison"),
        ({"progress_by": "test_loss"}, "progress_by"),
        ({"progress_quantile": 0}, "progress_quantile"),
        ({"progress_quantile": 1.5}, "progress_quantile"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": 0.7}, "alpha"),
        ({"alpha": 0.5}, "alpha"),
        ({"alpha": 1e-13}, "alpha"),
        ({"alpha": "x"}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"correction": "fdr"}, "correction"),
        ({"evidence": []}, "evidence"),
        ({"evidence": ["pearson"]}, "evidence"),
        ({"require": "most"}, "require"),
    ],
)
def test_a_bad_value_is_an_input_error_naming_its_key(data, key):
    with pytest.raises(InputError) as caught:
        Plan.from_mapping(data)
    assert caught.value.field == f"analysis.{key}"
    assert caught.value.fix


def test_a_plan_that_is_no_table_is_refused():
    with pytest.raises(InputError) as caught:
        Plan.from_mapping(["alpha"])
    assert caught.value.field == "analysis"


def test_differences_name_the_fields_another_plan_changes_with_its_values():
    plan = Plan()
    assert plan.differences(Plan()) == []
    other = Plan.from_mapping(
        {"alpha": 0.01, "evidence": ["spearman"], "claims": ["train.lr", "chain"]}
    )
    assert plan.differences(other) == ["claims=train.lr,chain", "alpha=0.01", "evidence=spearman"]


def test_differences_do_not_see_float_noise():
    alpha = 0.05 / 3
    assert Plan(alpha=alpha).differences(Plan(alpha=1.0 - (1.0 - alpha))) == []
    assert Plan(alpha=alpha).differences(Plan(alpha=0.0166)) == ["alpha=0.0166"]


def test_every_plan_departs_from_an_unreadable_one():
    assert UnreadablePlan().differences(Plan()) == ["plan=unreadable"]
    assert UnreadablePlan().differences(Plan(alpha=0.01)) == ["plan=unreadable", "alpha=0.01"]


@pytest.mark.parametrize("alpha", [1e-13, 1e-6, 0.05 / 3, 0.4999999999999, 0.5, 0.7])
def test_the_study_file_and_the_command_line_take_the_same_alphas(alpha, capsys):
    from orchestrator import cli

    try:
        Plan.from_mapping({"alpha": alpha})
        planned = True
    except InputError:
        planned = False
    try:
        cli.build_parser().parse_args(["analyze", "DIR", "--alpha", repr(alpha)])
        parsed = True
    except SystemExit:
        parsed = False
        (line,) = capsys.readouterr().err.splitlines()
        assert f"--alpha: {alpha} is not in [1e-06, 0.5)" in line
    assert parsed == planned == (1e-6 <= alpha < 0.5)


def test_wants_a_group_it_names_or_every_group_with_all():
    assert all(Plan().wants(g) for g in CLAIM_GROUPS)
    plan = Plan.from_mapping({"claims": ["train.l2"]})
    assert plan.wants("train.l2") and not plan.wants("chain")


def test_depth_stands_for_the_claims_of_the_mechanism_groups_listed_at_each_layer():
    plan = Plan.from_mapping({"claims": ["depth", "train.lr"]})
    assert plan.claims == ("train.lr", "depth")
    assert plan.wants("depth") and plan.wants("train.lr") and not plan.wants("train.batch_size")
    with pytest.raises(InputError, match="mechanism group") as caught:
        Plan.from_mapping({"claims": "depth"})
    assert "train.lr" in caught.value.fix
