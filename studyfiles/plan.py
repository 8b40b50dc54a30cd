"""A study's analysis plan: what its verdicts test, declared before the run (SPEC §4,
verdict statistics; docs/analysis.md).

The study file's ``[analysis]`` table holds it; ``study.json`` records it (``plan``); the
analysis reads it back and labels anything computed with other settings *exploratory*.
Every field has the default a study without the table gets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from studyfiles.errors import InputError

#: The claim groups on one swept mechanism (its dotted key).
MECHANISM_GROUPS: tuple[str, ...] = (
    "train.lr",
    "train.batch_size",
    "train.l2",
    "train.gc_reg.alpha",
)
#: Claim groups: the claims on one swept mechanism (its dotted key); ``chain`` (the claims
#: between quantities: lower source GC ⇒ lower target NC ⇒ higher few-shot accuracy); and
#: ``depth``, the mechanism groups' claims on GC, geometric collapse and NC at each layer
#: the study measures beside its embedding (``metrics.layers``; docs/analysis.md).
CLAIM_GROUPS: tuple[str, ...] = (*MECHANISM_GROUPS, "chain", "depth")
#: Where trials are compared: at their final epoch, at matched training progress, or both.
COMPARISONS: tuple[str, ...] = ("final", "matched", "both")
#: Familywise error control over the claims a table tests.
CORRECTIONS: tuple[str, ...] = ("holm", "bonferroni", "none")
PROGRESS_MEASURES: tuple[str, ...] = ("train_loss", "train_acc")
EVIDENCE: tuple[str, ...] = ("extremes", "spearman")
REQUIRE: tuple[str, ...] = ("all", "any")
#: The familywise error rates a plan may declare, ``ALPHA_MIN <= alpha < ALPHA_MAX``, in
#: the study file and on the command line alike. Below 1e-6 no test of a study this size
#: can decide (a permutation p-value is never below ``1 / (n_perm + 1)``, 5e-5 by default)
#: and ``1 - alpha`` loses the digits its intervals need; from 0.5 up the intervals
#: (at ``1 - alpha``) would cover less than half the time.
ALPHA_MIN, ALPHA_MAX = 1e-6, 0.5


@dataclass(frozen=True)
class Plan:
    """The analysis plan of a study.

    Attributes:
        claims: ``("all",)`` or a tuple of :data:`CLAIM_GROUPS` (held in that order,
            without repeats, as ``evidence`` is in the order of :data:`EVIDENCE`).
        comparison: one of :data:`COMPARISONS`; every comparison tested joins the family.
        progress_by: the training-progress measure of a matched comparison.
        progress_quantile: the matched level is the one this fraction of trials reached.
        alpha: the familywise error rate of the verdicts, in ``[ALPHA_MIN, ALPHA_MAX)``;
            intervals are at ``1 - alpha``.
        correction: one of :data:`CORRECTIONS`.
        evidence: the tests a verdict rests on (:data:`EVIDENCE`).
        require: ``all`` (every test must reject) or ``any`` (one suffices, Bonferroni
            across the tests of a claim); under both, tests whose estimates point opposite
            ways leave the claim inconclusive.
    """

    claims: tuple[str, ...] = ("all",)
    comparison: str = "both"
    progress_by: str = "train_loss"
    progress_quantile: float = 1.0
    alpha: float = 0.05
    correction: str = "holm"
    evidence: tuple[str, ...] = EVIDENCE
    require: str = "all"

    def __post_init__(self) -> None:
        for name, value, known in (
            ("comparison", self.comparison, COMPARISONS),
            ("progress_by", self.progress_by, PROGRESS_MEASURES),
            ("correction", self.correction, CORRECTIONS),
            ("require", self.require, REQUIRE),
        ):
            if value not in known:
                _bad(name, f"unknown value {value!r}", f"use one of {', '.join(known)}")
        groups = ("all", *CLAIM_GROUPS)
        unknown = [c for c in self.claims if c not in groups]
        if not self.claims or unknown or ("all" in self.claims and len(self.claims) > 1):
            what = '"all" with other groups'
            if unknown:
                what = f"unknown claim group {unknown[0]!r}"
            elif not self.claims:
                what = "no claim group"
            _bad("claims", what, f'use "all" or a list of {", ".join(CLAIM_GROUPS)}')
        if "depth" in self.claims and not set(self.claims) & set(MECHANISM_GROUPS):
            _bad(
                "claims",
                '"depth" without a mechanism group (its claims are theirs, at each layer)',
                f"add the groups to test across depth: {', '.join(MECHANISM_GROUPS)}",
            )
        bad_ev = [e for e in self.evidence if e not in EVIDENCE]
        if not self.evidence or bad_ev:
            what = f"unknown test {bad_ev[0]!r}" if bad_ev else "no test"
            _bad("evidence", what, f"use a list of {', '.join(EVIDENCE)}")
        # sets, held in a fixed order: a plan that lists them otherwise is the same plan
        object.__setattr__(self, "claims", _in_order(self.claims, groups))
        object.__setattr__(self, "evidence", _in_order(self.evidence, EVIDENCE))
        if not 0.0 < self.progress_quantile <= 1.0:
            _bad("progress_quantile", f"{self.progress_quantile} is not in (0, 1]", "use e.g. 1.0")
        problem = alpha_problem(self.alpha)
        if problem:
            _bad("alpha", problem, "use e.g. 0.05")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Plan:
        """A plan from the ``[analysis]`` table (or ``study.json``'s ``plan``); None: defaults.

        Raises:
            InputError: an unknown key, a value of the wrong type or out of range.
        """
        if data is not None and not isinstance(data, Mapping):
            raise InputError("analysis", f"{data!r} is not a table", "write [analysis] key = value")
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                _bad(str(key), "unknown key", f"known: {', '.join(sorted(known))}")
        values = dict(data)
        for key in ("claims", "evidence"):
            if key in values:
                v = values[key]
                values[key] = (v,) if isinstance(v, str) else tuple(_strings(key, v))
        for key in ("comparison", "progress_by", "correction", "require"):
            if key in values and not isinstance(values[key], str):
                _bad(key, f"{values[key]!r} is not a string", "give a quoted name")
        for key in ("progress_quantile", "alpha"):
            if key in values:
                v = values[key]
                if isinstance(v, bool) or not isinstance(v, int | float):
                    _bad(key, f"{v!r} is not a number", "give a number")
                values[key] = float(v)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, the form ``from_mapping`` reads back."""
        out = asdict(self)
        return out | {"claims": list(self.claims), "evidence": list(self.evidence)}

    def differences(self, other: Plan) -> list[str]:
        """The fields where ``other`` departs from this plan, as ``name=value`` (numbers
        equal to 12 significant digits are the same)."""
        return [
            f"{f.name}={_show(getattr(other, f.name))}"
            for f in fields(self)
            if not _same(getattr(self, f.name), getattr(other, f.name))
        ]

    def wants(self, group: str) -> bool:
        """Whether the plan tests the claims of ``group`` (``depth``: across depth, of the
        mechanism groups it wants)."""
        return "all" in self.claims or group in self.claims


def alpha_problem(alpha: float) -> str:
    """Why ``alpha`` is no familywise error rate a plan may declare ("" when it is one)."""
    if ALPHA_MIN <= alpha < ALPHA_MAX:
        return ""
    return f"{alpha} is not in [{ALPHA_MIN:g}, {ALPHA_MAX:g})"


class UnreadablePlan(Plan):
    """Stands for a plan a study directory records but that cannot be read: the default
    settings, from which every analysis departs, so that nothing is labelled primary."""

    def differences(self, other: Plan) -> list[str]:
        return ["plan=unreadable", *super().differences(other)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _strings(key: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        _bad(key, f"{value!r} is not a list of names", "give a list of quoted names")
    return list(value)


def _in_order(given: tuple[str, ...], order: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in order if name in given)


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


def _bad(key: str, problem: str, fix: str) -> None:
    raise InputError(f"analysis.{key}", problem, fix)
