"""``algorithm = "tpe"``: Optuna's tree-structured Parzen estimator, learning from the metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.search._base import OptunaSearch
from studyfiles import InputError

if TYPE_CHECKING:
    from orchestrator.spec import StudySpec


class TPESearch(OptunaSearch):
    """``budget`` trials proposed by ``optuna.samplers.TPESampler`` (seeded), with Optuna's
    constant liar: the trials still running count as bad results, so that trials proposed
    while others run (every trial of a study run many at a time) spread out instead of
    crowding the same region."""

    name = "tpe"

    def count(self, spec: StudySpec) -> int:
        assert spec.search is not None
        return int(spec.search.budget or 0)

    def check(self, spec: StudySpec) -> None:
        super().check(spec)
        assert spec.search is not None
        if spec.search.budget is None:
            raise InputError("search.budget", "required", "give the number of trials, e.g. 20")

    def sampler(self, spec: StudySpec) -> Any:
        import optuna

        assert spec.search is not None
        return optuna.samplers.TPESampler(seed=spec.search.seed, constant_liar=True)
