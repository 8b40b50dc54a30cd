"""The study file's models: a TOML document validated by :class:`StudySpec`.

A study names its trainable, gives the trial config's four sections (the very models of
:mod:`trainables.config`), and either a ``[sweep]`` (a grid over dotted keys, times seeds)
or a ``[search]`` (random, Optuna TPE, or an Optuna grid, with metric, mode and budget),
an optional ``[scheduler]`` (ASHA), ``[resources]``, an ``[analysis]`` plan and a ``[smoke]``
table of overrides::

    name = "lr-sweep"
    [train]
    epochs = 30
    [sweep]
    seeds = [0, 1, 2]
    [sweep.grid]
    train.lr = [0.005, 0.01, 0.05]       # or [[sweep.grids]] tables, one grid each
    [analysis]                           # the pre-registered analysis plan (docs/running.md)
    claims = ["train.lr", "chain"]       # "all" by default
    alpha = 0.05
    [smoke]
    train.epochs = 1
    sweep.seeds = [0]

A search instead of a sweep, with early stopping and resources::

    [search]
    algorithm = "tpe"                    # "tpe", "random", "grid" (choices only), …
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

These are the models alone; :mod:`orchestrator.studyfile` reads a file into them (with its
``[smoke]`` table and ``--set`` overrides) and :mod:`orchestrator.checks` checks the rest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from studyfiles import InputError
from studyfiles.plan import Plan
from studyfiles.schema import SEED_PARAM
from trainables.config import DataConfig, MetricsConfig, ModelConfig, TrainConfig, TrialConfig

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
    """A search over ``space`` by a registered algorithm (:mod:`orchestrator.search`)."""

    algorithm: str = "tpe"  # a name of orchestrator.search.ALGORITHMS
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


_DEFAULT_PLAN = Plan()


class AnalysisSpec(_Strict):
    """The ``[analysis]`` table: the study's analysis plan, declared before it runs.

    The fields are :class:`studyfiles.plan.Plan`'s, and each value goes through its checks;
    ``claims`` and ``evidence`` may be one name or a list.
    """

    claims: list[str] = Field(default_factory=lambda: list(_DEFAULT_PLAN.claims))
    comparison: str = _DEFAULT_PLAN.comparison
    progress_by: str = _DEFAULT_PLAN.progress_by
    progress_quantile: float = _DEFAULT_PLAN.progress_quantile
    alpha: float = _DEFAULT_PLAN.alpha
    correction: str = _DEFAULT_PLAN.correction
    evidence: list[str] = Field(default_factory=lambda: list(_DEFAULT_PLAN.evidence))
    require: str = _DEFAULT_PLAN.require

    @field_validator("*", mode="before")
    @classmethod
    def _as_the_plan_reads_it(cls, value: Any, info: ValidationInfo) -> Any:
        key = str(info.field_name)
        try:
            return Plan.from_mapping({key: value}).as_dict()[key]
        except InputError as err:
            raise custom_error(err.problem, err.fix) from None

    def plan(self) -> Plan:
        """The plan this table declares."""
        return Plan.from_mapping(self.model_dump())


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
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    smoke: dict[str, Any] = Field(default_factory=dict)

    def base_config(self) -> dict[str, Any]:
        """The trial config every trial starts from, as the nested dict a trial receives.

        Checks across sections (``TrialConfig``'s) run on each trial's resolved config.
        """
        return {k: getattr(self, k).model_dump(mode="json") for k in TrialConfig.model_fields}

    def plan(self) -> Plan:
        """The study's analysis plan (the defaults without an ``[analysis]`` table)."""
        return self.analysis.plan()

    def resolved(self) -> dict[str, Any]:
        """Every field with its defaults filled in, as JSON-ready data.

        The ``analysis`` key is left out while the plan is the default one, so a study
        without an ``[analysis]`` table (or one that states the defaults) keeps the spec
        hash it had before studies declared plans, and its directory still resumes.
        """
        spec = self.model_dump(mode="json")
        if self.plan() == _DEFAULT_PLAN:
            del spec["analysis"]
        return spec

    def sweep_params(self) -> list[str]:
        """The dotted keys the study varies."""
        if self.search is not None:
            return list(self.search.space)
        if self.sweep is None:
            return []
        keys = self.sweep.varied_keys()
        return [*keys, SEED_PARAM] if self.sweep.seeds is not None else keys


def spec_hash(spec: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``spec``, first 16 hex digits (docs/schema.md)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
