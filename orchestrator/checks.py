"""The checks on a study beyond its file's shape: its trainable, its search, its scheduler,
and every trial's resolved config (names, options, few-shot ways), before anything runs."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from orchestrator import entrypoints
from orchestrator.errors import from_validation
from orchestrator.points import trial_config
from orchestrator.search import algorithm_of
from orchestrator.spec import StudySpec
from studyfiles import InputError
from studyfiles.schema import SEED_PARAM, check_metric
from trainables.config import DataConfig, TrialConfig
from trainables.data import preflight
from trainables.models import preflight as model_preflight
from trainables.overrides import get_dotted


def check_spec(spec: StudySpec) -> None:
    """Cross-field checks and a check of every trial's config; raises :class:`InputError`."""
    entrypoints.resolve(spec.trainable)
    if spec.sweep is not None and spec.search is not None:
        raise InputError("search", "a study has a [sweep] or a [search], not both", "drop one")
    algorithm = algorithm_of(spec)
    algorithm.check(spec)
    _check_scheduler(spec)
    _check_plan(spec)
    base = spec.base_config()
    for point in algorithm.points_to_check(spec):
        _check_point(spec, base, point)


def _check_scheduler(spec: StudySpec) -> None:
    sched, search = spec.scheduler, spec.search
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
    check_metric("scheduler.metric", metric)


def _check_plan(spec: StudySpec) -> None:
    """A claim group the plan names is a key the study varies, and ``depth`` is named only
    by a study that measures layers: else it tests nothing."""
    varied = spec.sweep_params()
    claims = spec.plan().claims
    if "depth" in claims and spec.metrics.layers == "last":
        raise InputError(
            "analysis.claims",
            'claims across depth ("depth"), but the study measures its embedding alone',
            'set metrics.layers = "all" (or a list of layers), or drop "depth"',
        )
    for group in claims:
        if group not in ("all", "chain", "depth") and group not in varied:
            raise InputError(
                "analysis.claims",
                f"claims on {group}, which the study does not vary",
                f"vary it, or drop it from the claims; the study varies: "
                f"{', '.join(varied) or 'nothing'}",
            )


def _check_point(spec: StudySpec, base: dict[str, Any], point: dict[str, Any]) -> None:
    try:
        config = trial_config(base, point)
    except ValueError as err:  # pydantic.ValidationError is a ValueError too
        raise _point_error(spec, err, point) from None
    if spec.trainable == "gcnc":
        _check_names(spec, config, point)
        _check_data(spec, config, point)
        _check_model_options(spec, config, point)
        _check_layers(spec, config, point)
        _check_device(spec, config, point)
    _check_fewshot(spec, config, point)


def _check_data(spec: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    """The data section as its loader will see it: option values and class ids (no torch)."""
    try:
        preflight.check(DataConfig.model_validate(config["data"]))
    except preflight.DataConfigError as err:
        problem = str(err).removeprefix(f"{err.field} ").removeprefix("= ")
        problem = _with_value(point, err.field, problem)
        name = config["data"]["name"]
        fix = f"see dataset {name!r} in docs/datasets.md"
        raise InputError(_field(spec, point, err.field), problem, fix) from None


def _check_model_options(spec: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    """The values of ``model.options`` as the model's factory will check them (no torch)."""
    name = config["model"]["name"]
    for key, value in (config["model"].get("options") or {}).items():
        try:
            model_preflight.check_option(name, key, value)
        except ValueError as err:
            field = f"model.options.{key}"
            problem = str(err).removeprefix(f"model {name!r}: ").removeprefix(f"{key} ")
            problem = _with_value(point, field, problem)
            raise InputError(_field(spec, point, field), problem, f"see model {name!r}") from None


def _check_layers(spec: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    """The layers ``metrics.layers`` names are layers of the trial's model (no torch)."""
    layers = config["metrics"].get("layers", "last")
    if not isinstance(layers, list):
        return
    name = config["model"]["name"]
    names = model_preflight.layer_names(name, config["model"].get("options") or {})
    unknown = [layer for layer in layers if layer not in (names or layers)]
    if unknown:  # a model registered outside gcnc (names None) is checked by its trial
        raise InputError(
            _field(spec, point, "metrics.layers"),
            _with_value(point, "metrics.layers", f"model {name!r} has no layer {unknown[0]!r}"),
            f'its layers: {", ".join(names or ())}; or "all"',
        )


def _check_device(spec: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    """A CUDA device needs a GPU from Ray: a trial without one sees none."""
    device = str(config["train"]["device"])
    if device.startswith("cuda") and spec.resources.gpus_per_trial == 0:
        raise InputError(
            _field(spec, point, "train.device"),
            f"{device!r} but resources.gpus_per_trial = 0: Ray gives the trial no GPU",
            'set resources.gpus_per_trial (e.g. 1, or 0.5 to share one), or train.device = "auto"',
        )


def data_configs(spec: StudySpec) -> list[dict[str, Any]]:
    """The distinct data sections of the study's trials (of the points that stand for all),
    for the trainable that reads datasets; none for another trainable."""
    if spec.trainable != "gcnc":
        return []
    base = spec.base_config()
    seen: dict[str, dict[str, Any]] = {}
    for point in algorithm_of(spec).points_to_check(spec):
        data = trial_config(base, point)["data"]
        seen.setdefault(json.dumps(data, sort_keys=True), data)
    return list(seen.values())


def _point_error(spec: StudySpec, err: ValueError, point: dict[str, Any]) -> InputError:
    if not isinstance(err, ValidationError):
        key, _, problem = str(err).partition(": ")
        return InputError(_field(spec, point, key), problem, "address a key inside a table")
    found = from_validation(err, model=TrialConfig)
    key = found.field
    if key == "study":  # a check across fields, e.g. overlapping class lists
        key = found.problem.split(" ", 1)[0]
    if found.problem != "unknown key":
        found.problem = _with_value(point, key, found.problem)
    return InputError(_field(spec, point, key), found.problem, found.fix)


def _with_value(point: dict[str, Any], key: str, problem: str) -> str:
    """``problem``, led by the value the point gave where the point set ``key``."""
    owner = _owner(point, key)
    return problem if owner is None else f"value {point[owner]!r}: {problem}"


def _owner(point: dict[str, Any], key: str) -> str | None:
    """The point's key that ``key`` lies under, if any."""
    return next((k for k in point if key == k or key.startswith(f"{k}.")), None)


def _field(spec: StudySpec, point: dict[str, Any], key: str) -> str:
    """The study-file field that set ``key`` of a trial config."""
    owner = _owner(point, key)
    if owner is None:
        return key
    rest = key[len(owner) :]
    if spec.search is not None:
        return f"search.space.{owner}{rest}"
    if owner == SEED_PARAM and spec.sweep is not None and spec.sweep.seeds is not None:
        return f"sweep.seeds{rest}"
    table = "sweep.grids" if spec.sweep is not None and spec.sweep.grids else "sweep.grid"
    return f"{table}.{owner}{rest}"


def _check_names(spec: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    for key, registry in _registries().items():
        name = get_dotted(config, key)
        if name not in registry:
            known = ", ".join(registry.names())
            field = _field(spec, point, key)
            raise InputError(field, f"unknown {registry.kind} {name!r}", f"known: {known}")
        section = key.rpartition(".")[0]  # "data" for "data.name"
        allowed = registry.option_names(name)
        given = get_dotted(config, f"{section}.options") if section in ("data", "model") else None
        unknown = sorted(set(given or ()) - allowed) if allowed is not None else []
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            field = _field(spec, point, f"{section}.options.{unknown[0]}")
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


def _check_fewshot(spec: StudySpec, config: dict[str, Any], point: dict[str, Any]) -> None:
    metrics, data = config["metrics"], config["data"]
    targets = data.get("target_classes")
    if metrics["fewshot"] and targets is not None and metrics["fewshot_ways"] > len(targets):
        ways = metrics["fewshot_ways"]
        field = _field(spec, point, "metrics.fewshot_ways")
        raise InputError(
            field,
            f"{ways}-way episodes need {ways} target classes, "
            f"data.target_classes has {len(targets)}",
            "lower metrics.fewshot_ways or list more target classes",
        )
