"""``[sweep]``: grids over dotted keys (every combination), times the seeds."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from orchestrator.points import freeze, in_base
from orchestrator.search._base import SearchAlgorithm
from studyfiles import InputError
from studyfiles.schema import SEED_PARAM

if TYPE_CHECKING:
    from orchestrator.spec import StudySpec

MAX_CHECKED_COMBINATIONS = 20_000  # past this, grid values are checked one key at a time


class Sweep(SearchAlgorithm):
    """Every combination of each grid, run once per seed (one trial without a sweep)."""

    name = "sweep"

    def points(self, spec: StudySpec) -> list[dict[str, Any]]:
        sweep = spec.sweep
        if sweep is None:
            return [{}]
        combos = _grid_points(sweep.all_grids(), base=spec.base_config())
        seeds: list[int | None] = list(sweep.seeds) if sweep.seeds is not None else [None]
        points = []
        for seed in seeds:  # all combinations of one seed first: early results cover the grid
            for combo in combos:
                point = dict(combo)
                if seed is not None:
                    point[SEED_PARAM] = seed
                points.append(point)
        return points

    def check(self, spec: StudySpec) -> None:
        if spec.sweep is None:
            return
        for i, grid in enumerate(spec.sweep.all_grids()):
            prefix = f"sweep.grids[{i}]" if spec.sweep.grids else "sweep.grid"
            for key, values in grid.items():
                field = f"{prefix}.{key}"
                if not values:
                    raise InputError(field, "no values", "list at least one value")
                if len({freeze(v) for v in values}) < len(values):
                    raise InputError(field, f"repeated values in {values}", "list each value once")
        seeds = spec.sweep.seeds
        if seeds is not None:
            if SEED_PARAM in spec.sweep.varied_keys():
                raise InputError("sweep.seeds", "train.seed is also in sweep.grid", "keep one")
            if not seeds or len(set(seeds)) < len(seeds):
                raise InputError("sweep.seeds", f"{seeds} is empty or repeats a seed", "list seeds")

    def points_to_check(self, spec: StudySpec) -> list[dict[str, Any]]:
        """Every point, or for a huge grid each value of each key on its own."""
        sweep = spec.sweep
        grids = sweep.all_grids() if sweep is not None else []
        if sum(math.prod(len(v) for v in g.values()) for g in grids) <= MAX_CHECKED_COMBINATIONS:
            return self.points(spec)
        assert sweep is not None
        singles = [{k: v} for g in grids for k, vals in g.items() for v in vals]
        return singles + [{SEED_PARAM: s} for s in sweep.seeds or ()]


def _grid_points(
    grids: list[dict[str, list[Any]]], *, base: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every combination of each grid, in order; a trial two grids share is kept once.

    Two points are the same trial when they differ from ``base`` in the same way, e.g. the
    centre config ``{"train.lr": 0.01}`` and ``{"train.batch_size": 256}`` of two
    one-at-a-time sweeps around lr 0.01, batch 256.
    """
    seen: set[Any] = set()
    points = []
    for grid in grids:
        for combo in itertools.product(*grid.values()):
            point = dict(zip(grid, combo, strict=True))
            key = freeze({k: v for k, v in point.items() if not in_base(base, k, v)})
            if key not in seen:
                seen.add(key)
                points.append(point)
    return points
