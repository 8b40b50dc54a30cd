"""``algorithm = "grid"``: every combination of the choices, in Optuna's GridSampler order."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from orchestrator.search._base import OptunaSearch
from studyfiles import InputError

if TYPE_CHECKING:
    from orchestrator.spec import StudySpec


class OptunaGrid(OptunaSearch):
    """Each point of the ``{choice = [...]}`` grid once (at most ``budget`` of them), through
    ``optuna.samplers.GridSampler``; a grid searched with the metric reported as it goes."""

    name = "grid"

    def count(self, spec: StudySpec) -> int:
        assert spec.search is not None
        size = math.prod(len(d.choice or ()) for d in spec.search.space.values())
        return min(size, spec.search.budget or size)

    def check(self, spec: StudySpec) -> None:
        super().check(spec)
        assert spec.search is not None
        for key, dist in spec.search.space.items():
            if dist.kind != "choice":
                raise InputError(
                    f"search.space.{key}", "a grid needs {choice = [...]}", "list values"
                )

    def sampler(self, spec: StudySpec) -> Any:
        import optuna

        assert spec.search is not None
        grid = {k: list(d.choice or ()) for k, d in spec.search.space.items()}
        return optuna.samplers.GridSampler(grid, seed=spec.search.seed)
