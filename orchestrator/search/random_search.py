"""``algorithm = "random"``: independent draws from the space, seeded, all made up front (a
resumed study draws the same ones)."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.search._base import SpaceSearch
from studyfiles import InputError

if TYPE_CHECKING:
    from orchestrator.spec import Distribution, StudySpec


class RandomSearch(SpaceSearch):
    """``budget`` points drawn from ``[search.space]`` with ``search.seed``."""

    name = "random"

    def points(self, spec: StudySpec) -> list[dict[str, Any]]:
        search = spec.search
        assert search is not None and search.budget is not None
        rng = np.random.default_rng(search.seed)
        space = search.space.items()
        return [{key: sample(dist, rng) for key, dist in space} for _ in range(search.budget)]

    def check(self, spec: StudySpec) -> None:
        super().check(spec)
        assert spec.search is not None
        if spec.search.budget is None:
            raise InputError("search.budget", "required", "give the number of trials, e.g. 20")

    def points_to_check(self, spec: StudySpec) -> list[dict[str, Any]]:
        return self.points(spec)  # the very points the study runs


def sample(dist: Distribution, rng: np.random.Generator) -> Any:
    """One draw from ``dist``; integer bounds are inclusive."""
    if dist.kind == "choice":
        assert dist.choice is not None
        return copy.deepcopy(dist.choice[int(rng.integers(len(dist.choice)))])
    low, high = dist.bounds
    if dist.kind == "uniform":
        return float(rng.uniform(low, high))
    if dist.kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if dist.kind == "integer":
        return int(rng.integers(int(low), int(high) + 1))
    drawn = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
    return int(min(high, math.floor(drawn)))
