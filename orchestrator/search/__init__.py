"""Search algorithms, looked up by name: how a study's trials are chosen.

``[sweep]`` (or nothing) is :class:`~orchestrator.search.sweep.Sweep`; ``[search]`` names
its algorithm (``algorithm = "tpe"``). A new algorithm is one module here: a subclass of
:class:`~orchestrator.search._base.SearchAlgorithm` (its points or its Optuna sampler, its
trial count and its checks), registered below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.search._base import OptunaSearch, SearchAlgorithm
from orchestrator.search.optuna_grid import OptunaGrid
from orchestrator.search.random_search import RandomSearch
from orchestrator.search.sweep import Sweep
from orchestrator.search.tpe import TPESearch
from studyfiles import InputError

if TYPE_CHECKING:
    from orchestrator.spec import StudySpec

SWEEP = Sweep()
ALGORITHMS: dict[str, SearchAlgorithm] = {}  # [search] algorithm name -> algorithm


def register(algorithm: SearchAlgorithm) -> None:
    """Make ``algorithm`` available to ``[search] algorithm = "<its name>"``."""
    if algorithm.name in ALGORITHMS or algorithm.name == SWEEP.name:
        raise ValueError(f"search algorithm {algorithm.name!r} is registered already")
    ALGORITHMS[algorithm.name] = algorithm


for _algorithm in (TPESearch(), RandomSearch(), OptunaGrid()):
    register(_algorithm)


def algorithm_of(spec: StudySpec) -> SearchAlgorithm:
    """The algorithm that chooses the trials of ``spec``.

    Raises:
        InputError: ``search.algorithm`` names no registered algorithm.
    """
    if spec.search is None:
        return SWEEP
    try:
        return ALGORITHMS[spec.search.algorithm]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise InputError(
            "search.algorithm", f"unknown algorithm {spec.search.algorithm!r}", f"known: {known}"
        ) from None


def trial_points(spec: StudySpec) -> list[dict[str, Any]] | None:
    """Every trial's point in run order, or None where a sampler proposes them."""
    return algorithm_of(spec).points(spec)


def trial_count(spec: StudySpec) -> int:
    """How many trials the study runs in all."""
    return algorithm_of(spec).count(spec)


__all__ = [
    "ALGORITHMS",
    "OptunaSearch",
    "SearchAlgorithm",
    "algorithm_of",
    "register",
    "trial_count",
    "trial_points",
]
