"""Trials of a study: their points (dotted overrides), resolved configs and the checks on them.

A *point* is the dict of dotted keys a trial changes in the study's base config, e.g.
``{"train.lr": 0.01, "train.seed": 1}``. Grids and random searches have all their points
up front (random points are drawn here, seeded, so a resumed study draws the same ones);
an Optuna search proposes its points while it runs.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import numpy as np
from pydantic import ValidationError

from orchestrator.errors import from_validation
from orchestrator.spec import Distribution, StudySpec
from studyfiles import InputError, schema
from trainables.config import TrialConfig
from trainables.overrides import set_dotted

TRAINABLES: dict[str, str] = {
    "gcnc": "trainables:run",
    "testing.sleep": "orchestrator._testing:run",
}
MAX_CHECKED_COMBINATIONS = 20_000  # past this, grid values are checked one key at a time


def trial_points(study: StudySpec) -> list[dict[str, Any]] | None:
    """Every trial's point in run order, or None where an Optuna sampler proposes them."""
    search, sweep = study.search, study.sweep
    if search is not None:
        return _random_points(study) if search.algorithm == "random" else None
    if sweep is None:
        return [{}]
    combos = _grid_points(sweep.all_grids(), base=study.base_config())
    seeds: list[int | None] = list(sweep.seeds) if sweep.seeds is not None else [None]
    points = []
    for seed in seeds:  # all combinations of one seed first: early results cover the grid
        for combo in combos:
            point = dict(combo)
            if seed is not None:
                point["train.seed"] = seed
            points.append(point)
    return points


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
            key = _freeze({k: v for k, v in point.items() if not _is_base(base, k, v)})
            if key not in seen:
                seen.add(key)
                points.append(point)
    return points


def trial_count(study: StudySpec) -> int:
    """How many trials the study runs in all."""
    search = study.search
    if search is None or search.algorithm == "random":
        return len(trial_points(study) or [])
    if search.algorithm == "grid":
        return min(_grid_size(study), search.budget or _grid_size(study))
    return int(search.budget or 0)


def _grid_size(study: StudySpec) -> int:
    assert study.search is not None
    return math.prod(len(d.choice or ()) for d in study.search.space.values())


def _random_points(study: StudySpec) -> list[dict[str, Any]]:
    search = study.search
    assert search is not None and search.budget is not None
    rng = np.random.default_rng(search.seed)
    return [
        {key: sample(dist, rng) for key, dist in search.space.items()} for _ in range(search.budget)
    ]


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


def optuna_space(study: StudySpec) -> dict[str, Any]:
    """The search space as Optuna distributions (keys stay dotted)."""
    import optuna.distributions as od

    assert study.search is not None
    out: dict[str, Any] = {}
    for key, dist in study.search.space.items():
        if dist.kind == "choice":
            out[key] = od.CategoricalDistribution(dist.choice or [])
            continue
        low, high = dist.bounds
        log = dist.kind.startswith("log")
        if dist.kind in ("integer", "log_integer"):
            out[key] = od.IntDistribution(int(low), int(high), log=log)
        else:
            out[key] = od.FloatDistribution(low, high, log=log)
    return out


def trial_config(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``point`` applied, validated and normalised (``1`` becomes ``1.0``...).

    Raises:
        ValueError: a key that runs into a value instead of a table.
        pydantic.ValidationError: a bad value for the trial config.
    """
    config = copy.deepcopy(base)
    for key, value in point.items():
        set_dotted(config, key, copy.deepcopy(value))
    return TrialConfig.from_dict(config).model_dump(mode="json")


def dotted(config: dict[str, Any], key: str) -> Any:
    """``config[a][b][c]`` for ``key = "a.b.c"``, or None where the path does not exist."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# ---------------------------------------------------------------- checks


def check_study(study: StudySpec) -> None:
    """Cross-field checks and a check of every trial's config; raises :class:`InputError`."""
    if study.trainable not in TRAINABLES:
        known = ", ".join(sorted(TRAINABLES))
        raise InputError("trainable", f"unknown trainable {study.trainable!r}", f"known: {known}")
    if study.sweep is not None and study.search is not None:
        raise InputError("search", "a study has a [sweep] or a [search], not both", "drop one")
    _check_sweep(study)
    _check_search(study)
    _check_scheduler(study)
    base = study.base_config()
    for point in _points_to_check(study):
        _check_point(study, base, point)


def _check_sweep(study: StudySpec) -> None:
    if study.sweep is None:
        return
    grids = study.sweep.all_grids()
    for i, grid in enumerate(grids):
        prefix = f"sweep.grids[{i}]" if study.sweep.grids else "sweep.grid"
        for key, values in grid.items():
            field = f"{prefix}.{key}"
            if not values:
                raise InputError(field, "no values", "list at least one value")
            if len({_freeze(v) for v in values}) < len(values):
                raise InputError(field, f"repeated values in {values}", "list each value once")
    seeds = study.sweep.seeds
    if seeds is not None:
        if "train.seed" in study.sweep.varied_keys():
            raise InputError("sweep.seeds", "train.seed is also in sweep.grid", "keep one")
        if not seeds or len(set(seeds)) < len(seeds):
            raise InputError("sweep.seeds", f"{seeds} is empty or repeats a seed", "list seeds")


def _check_search(study: StudySpec) -> None:
    search = study.search
    if search is None:
        return
    if not search.space:
        raise InputError("search.space", "empty", "add e.g. train.lr = {loguniform = [1e-3, 0.1]}")
    if search.algorithm in ("tpe", "grid"):
        for name in ("metric", "mode"):
            if getattr(search, name) is None:
                hint = 'e.g. metric = "test_acc"' if name == "metric" else 'mode = "max" or "min"'
                raise InputError(f"search.{name}", f"required for {search.algorithm}", hint)
    if search.metric is not None:
        _check_metric("search.metric", search.metric)
    if search.algorithm in ("tpe", "random") and search.budget is None:
        raise InputError("search.budget", "required", "give the number of trials, e.g. 20")
    if search.algorithm == "grid":
        for key, dist in search.space.items():
            if dist.kind != "choice":
                raise InputError(
                    f"search.space.{key}", "a grid needs {choice = [...]}", "list values"
                )
    if search.algorithm in ("tpe", "grid"):
        for key, dist in search.space.items():
            if dist.kind == "choice" and any(isinstance(v, list | dict) for v in dist.choice or ()):
                raise InputError(
                    f"search.space.{key}",
                    "Optuna choices must be scalars",
                    "use numbers, strings or booleans",
                )


def _check_scheduler(study: StudySpec) -> None:
    sched, search = study.scheduler, study.search
    if sched is None:
        return
    metric = sched.metric or (search.metric if search else None)
    mode = sched.mode or (search.mode if search else None)
    if metric is None:
        raise InputError(
            "scheduler.metric", "required without a search metric", 'e.g. metric = "test_acc"'
        )
    if mode is None:
        raise InputError(
            "scheduler.mode", "required without a search mode", 'mode = "max" or "min"'
        )
    _check_metric("scheduler.metric", metric)


def _check_metric(field: str, name: str) -> None:
    if not schema.is_metric_name(name) or name in schema.NOT_SEARCHABLE:
        known = ", ".join(schema.searchable_names())
        raise InputError(field, f"unknown metric {name!r}", f"known: {known}")


def _points_to_check(study: StudySpec) -> list[dict[str, Any]]:
    """Points that stand for every trial of the study."""
    search, sweep = study.search, study.sweep
    if search is not None:
        if search.algorithm == "random":
            return trial_points(study) or []
        return [{k: v} for k, d in search.space.items() for v in d.edge_values()]
    if (
        sweep is None
        or sum(math.prod(len(v) for v in g.values()) for g in sweep.all_grids())
        <= MAX_CHECKED_COMBINATIONS
    ):
        return trial_points(study) or []
    singles = [{k: v} for g in sweep.all_grids() for k, vals in g.items() for v in vals]
    return singles + [{"train.seed": s} for s in sweep.seeds or ()]


def _check_point(study: StudySpec, base: dict[str, Any], point: dict[str, Any]) -> None:
    try:
        config = trial_config(base, point)
    except ValueError as err:  # pydantic.ValidationError is a ValueError too
        raise _point_error(study, err, point) from None
    if study.trainable == "gcnc":
        _check_names(study, config, point)
    _check_fewshot(study, config, point)


def _point_error(study: StudySpec, err: ValueError, point: dict[str, Any]) -> InputError:
    if not isinstance(err, ValidationError):
        key, _, problem = str(err).partition(": ")
        return InputError(_field(study, point, key), problem, "address a key inside a table")
    found = from_validation(err, model=TrialConfig)
    key = found.field
    if key == "study":  # a check across fields, e.g. overlapping class lists
        key = found.problem.split(" ", 1)[0]
    owner = _owner(point, key)
    if owner is not None and found.problem != "unknown key":
        found.problem = f"value {point[owner]!r}: {found.problem}"
    return InputError(_field(study, point, key), found.problem, found.fix)


def _owner(point: dict[str, Any], key: str) -> str | None:
    """The point's key that ``key`` lies under, if any."""
    return next((k for k in point if key == k or key.startswith(f"{k}.")), None)


def _field(study: StudySpec, point: dict[str, Any], key: str) -> str:
    """The study-file field that set ``key`` of a trial config."""
    owner = _owner(point, key)
    if owner is None:
        return key
    rest = key[len(owner) :]
    if study.search is not None:
        return f"search.space.{owner}{rest}"
    if owner == "train.seed" and study.sweep is not None and study.sweep.seeds is not None:
        return f"sweep.seeds{rest}"
    table = "sweep.grids" if study.sweep is not None and study.sweep.grids else "sweep.grid"
    return f"{table}.{owner}{rest}"


def _check_names(study: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    for key, registry in _registries().items():
        name = dotted(config, key)
        if name not in registry:
            known = ", ".join(registry.names())
            field = _field(study, point, key)
            raise InputError(field, f"unknown {registry.kind} {name!r}", f"known: {known}")
        section = key.rpartition(".")[0]  # "data" for "data.name"
        allowed = registry.option_names(name)
        given = dotted(config, f"{section}.options") if section in ("data", "model") else None
        unknown = sorted(set(given or ()) - allowed) if allowed is not None else []
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            field = _field(study, point, f"{section}.options.{unknown[0]}")
            raise InputError(
                field, f"unknown option of {registry.kind} {name!r}", f"known: {known}"
            )


def _registries() -> dict[str, Any]:
    """The name registries of :mod:`trainables`, by the config key they check."""
    from trainables.data import DATASETS
    from trainables.metrics.estimators import ESTIMATORS
    from trainables.models import MODELS

    return {
        "data.name": DATASETS,
        "model.name": MODELS,
        "metrics.gc_estimator": ESTIMATORS,
        "train.gc_reg.estimator": ESTIMATORS,
    }


def _check_fewshot(study: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    metrics, data = config["metrics"], config["data"]
    targets = data.get("target_classes")
    if metrics["fewshot"] and targets is not None and metrics["fewshot_ways"] > len(targets):
        ways = metrics["fewshot_ways"]
        field = _field(study, point, "metrics.fewshot_ways")
        raise InputError(
            field,
            f"{ways}-way episodes need {ways} target classes, "
            f"data.target_classes has {len(targets)}",
            "lower metrics.fewshot_ways or list more target classes",
        )


def _is_base(base: dict[str, Any], key: str, value: Any) -> bool:
    """Whether ``base`` already holds ``value`` at the dotted ``key``."""
    node: Any = base
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node == value and isinstance(node, bool) == isinstance(value, bool)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value
