"""The study file: a TOML document validated by :class:`StudySpec`.

A study names its trainable, gives the trial config's four sections (the very models of
:mod:`trainables.config`), and either a ``[sweep]`` (a grid over dotted keys, times seeds)
or a ``[search]`` (random, Optuna TPE, or an Optuna grid, with metric, mode and budget),
an optional ``[scheduler]`` (ASHA), ``[resources]`` and a ``[smoke]`` table of overrides::

    name = "lr-sweep"
    [train]
    epochs = 30
    [sweep]
    seeds = [0, 1, 2]
    [sweep.grid]
    train.lr = [0.005, 0.01, 0.05]       # or [[sweep.grids]] tables, one grid each
    [smoke]
    train.epochs = 1
    sweep.seeds = [0]

A search instead of a sweep, with early stopping and resources::

    [search]
    algorithm = "tpe"                    # "tpe", "random", or "grid" (choices only)
    metric = "fewshot_acc_5shot"
    mode = "max"
    budget = 40                          # trials
    [search.space]
    train.lr = {loguniform = [1e-3, 0.3]}
    train.batch_size = {choice = [32, 64, 128, 256]}
    model.width = {integer = [16, 64]}   # also uniform, log_integer
    [scheduler]                          # ASHA by epoch; metric and mode default to the search's
    grace_period = 5
    [resources]
    cpus_per_trial = 2
    gpus_per_trial = 0.25                # a fraction shares a GPU; above 1, whole numbers
    max_concurrent = 8                   # 0: as many as the resources allow
    max_failures = 2                     # restarts of a trial from its last checkpoint

Loading applies ``[smoke]`` (with ``smoke=True``) and then ``--set key=value`` overrides
to the document, validates it, and checks every trial's resolved config
(:mod:`orchestrator.space`), so bad input fails before anything is written.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orchestrator.errors import from_validation
from studyfiles import InputError
from trainables.config import DataConfig, MetricsConfig, ModelConfig, TrainConfig, TrialConfig
from trainables.overrides import parse_value, set_dotted

DIST_KINDS: tuple[str, ...] = ("choice", "uniform", "loguniform", "integer", "log_integer")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def custom_error(problem: str, fix: str) -> PydanticCustomError:
    """A validation error that :func:`orchestrator.errors.from_validation` prints verbatim."""
    return PydanticCustomError("gcnc", "{problem}", {"problem": problem, "fix": fix})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(_Strict):
    """One search dimension: exactly one of the keys, e.g. ``{loguniform = [1e-3, 1e-1]}``.

    ``integer`` and ``log_integer`` bounds are inclusive.
    """

    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    integer: tuple[int, int] | None = None
    log_integer: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [k for k in DIST_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise custom_error(
                f"give exactly one of {', '.join(DIST_KINDS)}; got {given or 'none'}",
                "e.g. {loguniform = [0.001, 0.1]} or {choice = [64, 128]}",
            )
        if self.kind == "choice":
            if not self.choice:
                raise custom_error("empty choice", "list at least one value")
            return self
        low, high = self.bounds
        if not low < high:
            raise custom_error(f"low {low} is not below high {high}", "write [low, high]")
        if self.kind.startswith("log") and low <= 0:
            raise custom_error(f"log scale needs low > 0, got {low}", "use a positive low")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in DIST_KINDS if getattr(self, k) is not None)

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = getattr(self, self.kind)
        return low, high

    def edge_values(self) -> list[Any]:
        """Values that stand for the whole dimension when checking trial configs."""
        return list(self.choice) if self.kind == "choice" else list(self.bounds)


class SweepSpec(_Strict):
    """Grids: every combination of the listed values, run once per seed.

    ``grid`` is one grid; ``grids`` is a list of grids run side by side (one-at-a-time
    sweeps around a centre config); a point that two grids share runs once.
    """

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    grids: list[dict[str, list[Any]]] = Field(default_factory=list)
    seeds: list[int] | None = None  # None: the train section's seed

    @model_validator(mode="after")
    def _one_form(self) -> SweepSpec:
        if self.grid and self.grids:
            raise custom_error(
                "give [sweep.grid] or [[sweep.grids]], not both",
                "move the [sweep.grid] keys into a [[sweep.grids]] table",
            )
        return self

    def all_grids(self) -> list[dict[str, list[Any]]]:
        """The grids of this sweep (one, possibly empty, when ``grids`` is not given)."""
        return list(self.grids) if self.grids else [self.grid]

    def varied_keys(self) -> list[str]:
        """Every dotted key any grid varies, in first-seen order."""
        return list(dict.fromkeys(k for g in self.all_grids() for k in g))


class SearchSpec(_Strict):
    """Random search, Optuna TPE, or an Optuna grid (GridSampler) over ``space``."""

    algorithm: Literal["tpe", "random", "grid"] = "tpe"
    metric: str | None = None
    mode: Literal["min", "max"] | None = None
    budget: PositiveInt | None = None  # trials; a grid defaults to all its points
    seed: int = 0  # seeds the sampler
    space: dict[str, Distribution]


class SchedulerSpec(_Strict):
    """Early stopping with ASHA on ``metric`` (by default the search's), by epoch."""

    type: Literal["asha"] = "asha"
    metric: str | None = None
    mode: Literal["min", "max"] | None = None
    grace_period: PositiveInt = 1
    reduction_factor: float = Field(default=3.0, gt=1.0)
    max_t: PositiveInt | None = None  # None: train.epochs


class ResourcesSpec(_Strict):
    """What each trial reserves, how many run at once, and how often a trial may fail."""

    cpus_per_trial: float = Field(default=1.0, gt=0.0)
    gpus_per_trial: float = Field(default=0.0, ge=0.0)
    max_concurrent: int = Field(default=0, ge=0)  # 0: as many as the resources allow
    max_failures: int = Field(default=2, ge=0)  # restarts of a trial from its checkpoint

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_gpus(cls, gpus: float) -> float:
        if gpus > 1 and not float(gpus).is_integer():
            raise custom_error(
                f"{gpus} GPUs per trial: more than one GPU must be a whole number",
                "use a fraction <= 1 to share a GPU, or a whole number",
            )
        return gpus


class StudySpec(_Strict):
    """A whole study file (see the module docstring)."""

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str = ""
    trainable: str = "gcnc"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    sweep: SweepSpec | None = None
    search: SearchSpec | None = None
    scheduler: SchedulerSpec | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    smoke: dict[str, Any] = Field(default_factory=dict)

    def base_config(self) -> dict[str, Any]:
        """The trial config every trial starts from, as the nested dict a trial receives.

        Checks across sections (``TrialConfig``'s) run on each trial's resolved config.
        """
        return {k: getattr(self, k).model_dump(mode="json") for k in TrialConfig.model_fields}

    def resolved(self) -> dict[str, Any]:
        """Every field with its defaults filled in, as JSON-ready data."""
        return self.model_dump(mode="json")

    def sweep_params(self) -> list[str]:
        """The dotted keys the study varies."""
        if self.search is not None:
            return list(self.search.space)
        if self.sweep is None:
            return []
        keys = self.sweep.varied_keys()
        return [*keys, "train.seed"] if self.sweep.seeds is not None else keys


def spec_hash(spec: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``spec``, first 16 hex digits (docs/schema.md)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document at ``path``; unreadable or malformed files raise :class:`InputError`."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InputError(str(path), f"cannot read it: {err.strerror}", "check the path") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(str(path), f"invalid TOML: {err}", "fix the syntax there") from None


def load_spec(path: str | Path, *, overrides: Sequence[str] = (), smoke: bool = False) -> StudySpec:
    """Read, override, validate and check the study file at ``path``.

    Args:
        path: a TOML study file; its stem is the study's name unless it sets ``name``.
        overrides: ``key=value`` assignments into the document (values read as TOML).
        smoke: apply the file's ``[smoke]`` table first and add ``-smoke`` to the name.

    Raises:
        InputError: the first problem found, naming its field.
    """
    doc = read_toml(path)
    doc.setdefault("name", Path(path).stem)
    return build_spec(doc, overrides=overrides, smoke=smoke)


def build_spec(
    doc: dict[str, Any], *, overrides: Sequence[str] = (), smoke: bool = False
) -> StudySpec:
    """Validate a study document (already parsed) with its smoke table and overrides."""
    from orchestrator.space import check_study  # the trial-level checks

    work = copy.deepcopy(doc)
    _canonical_tables(work)
    if smoke:
        _apply_smoke(work)
    for item in overrides:
        _apply_override(work, item)
    _canonical_tables(work)
    try:
        study = StudySpec.model_validate(work)
    except ValidationError as err:
        raise from_validation(err, model=StudySpec) from None
    check_study(study)
    if not smoke and study.smoke:
        try:  # a bad [smoke] table fails now, not when the smoke run starts
            build_spec(doc, overrides=overrides, smoke=True)
        except InputError as err:
            raise _smoke_error(err, study.smoke) from None
    return study


def _smoke_error(err: InputError, table: dict[str, Any]) -> InputError:
    """``err`` of the smoke form, naming the ``[smoke]`` key that caused it when one did."""
    keys = [k for k, _ in flatten(table, leaf=lambda v: not isinstance(v, dict) or not v)]
    f = err.field
    if any(f == k or f.startswith(f"{k}.") or k.startswith(f"{f}.") for k in keys):
        return InputError(f"smoke.{f}", err.problem, err.fix)
    return InputError(f, f"{err.problem} with [smoke] applied", err.fix)


def _apply_smoke(doc: dict[str, Any]) -> None:
    table = doc.get("smoke", {})
    if not isinstance(table, dict):
        raise InputError("smoke", "is not a table", "write [smoke] with key = value lines")
    for key, value in flatten(table, leaf=lambda v: not isinstance(v, dict) or not v):
        _set(doc, key, copy.deepcopy(value), field=f"smoke.{key}")
    if isinstance(doc.get("name"), str):
        doc["name"] = f"{doc['name']}-smoke"


def _apply_override(doc: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError("--set", f"{item!r} is not key=value", "write e.g. --set train.lr=0.1")
    _set(doc, key, parse_value(text.strip()), field=key)


def _set(doc: dict[str, Any], key: str, value: Any, *, field: str) -> None:
    try:
        set_dotted(doc, key, value)
    except ValueError as err:
        raise InputError(field, str(err).split(": ", 1)[-1], "set a key inside it") from None


def _canonical_tables(doc: dict[str, Any]) -> None:
    """Flatten ``sweep.grid`` and ``search.space`` to dotted keys (later keys win)."""
    sweep, search = doc.get("sweep"), doc.get("search")
    if isinstance(sweep, dict) and isinstance(sweep.get("grid"), dict):
        sweep["grid"] = _flat_grid(sweep["grid"])
    if isinstance(sweep, dict) and isinstance(sweep.get("grids"), list):
        sweep["grids"] = [_flat_grid(g) if isinstance(g, dict) else g for g in sweep["grids"]]
    if isinstance(search, dict) and isinstance(search.get("space"), dict):
        search["space"] = dict(flatten(search["space"], leaf=_is_distribution))


def _flat_grid(grid: dict[str, Any]) -> dict[str, Any]:
    return dict(flatten(grid, leaf=lambda v: not isinstance(v, dict)))


def _is_distribution(value: Any) -> bool:
    return not isinstance(value, dict) or not value or set(value) <= set(DIST_KINDS)


def flatten(tree: dict[str, Any], *, leaf: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``(dotted key, value)`` pairs of a nested dict, stopping where ``leaf(value)``."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if leaf(value):
            yield dotted, value
        else:
            yield from flatten(value, leaf=leaf, prefix=f"{dotted}.")
