"""``algorithm = "tpe"``: Optuna's tree-structured Parzen estimator, learning from the metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.search._base import OptunaSearch
from studyfiles import InputError

if TYPE_CHECKING:
    from orchestrator.spec import StudySpec


#: Finished or running trials TPE learns from at most (:mod:`._bounded_tpe`).
HISTORY = 1000


class TPESearch(OptunaSearch):
    """``budget`` trials proposed by ``optuna.samplers.TPESampler`` (seeded), with Optuna's
    constant liar: the trials still running count as bad results, so that trials proposed
    while others run (every trial of a study run many at a time) spread out instead of
    crowding the same region. It learns from at most :data:`HISTORY` trials
    (:mod:`~orchestrator.search._bounded_tpe`): a suggestion costs about the same at
    10,000 trials as at 1,000."""

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
        from orchestrator.search._bounded_tpe import BoundedTPESampler

        assert spec.search is not None
        return BoundedTPESampler(seed=spec.search.seed, history=HISTORY)
