"""The configuration of one trial: data, model, training and metrics.

Defaults follow SPEC.md (tagged [ours] there where the paper is silent). Every section
rejects unknown keys, so a typo in a study file is an error, not a silently ignored value.
The orchestrator's study model embeds these sections; a trial receives them as a nested
dict (``TrialConfig.model_dump()``) and parses it back with ``TrialConfig.from_dict``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Options added after studies were written, each left out of a dump while it holds this
    # value: a study that does not use one keeps the trial configs and spec hash it had.
    LEFT_OUT_WHEN: ClassVar[dict[str, Any]] = {}

    @model_serializer(mode="wrap")
    def _without_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name, value in self.LEFT_OUT_WHEN.items():
            if name in data and data[name] == value:
                del data[name]
        return data


class DataConfig(_Section):
    """Which dataset, where its files are, and the source/target class split."""

    name: str = "digits"
    data_root: str | None = None
    download: bool = False
    source_classes: list[int] | None = None  # None: the dataset's default split
    target_classes: list[int] | None = None  # None with source_classes None: no transfer
    max_train_per_class: PositiveInt | None = None  # subsample the source train set
    max_target_per_class: PositiveInt | None = None  # subsample the target pool
    split_seed: int = 0  # seeds a documented split where no official class list exists
    options: dict[str, Any] = Field(default_factory=dict)  # dataset-specific

    LEFT_OUT_WHEN: ClassVar[dict[str, Any]] = {"max_target_per_class": None}


class ModelConfig(_Section):
    """Which network; ``width`` scales channels, ``options`` are model-specific."""

    name: str = "convnet"
    width: PositiveInt | None = None  # None: the model's own default
    options: dict[str, Any] = Field(default_factory=dict)


class GCRegConfig(_Section):
    """Explicit GC regularisation ``loss = CE + alpha * GC(f, batch)`` (SPEC 2.6)."""

    alpha: float = Field(default=0.0, ge=0.0)
    estimator: str = "projection"
    options: dict[str, Any] = Field(default_factory=lambda: {"probes": 1})


class TrainConfig(_Section):
    """Optimisation. L2 enters the loss as ``l2/2 * ||theta||^2`` (SPEC 4, [ours])."""

    optimizer: Literal["sgd"] = "sgd"
    lr: PositiveFloat = 0.01
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    batch_size: PositiveInt = 256
    l2: float = Field(default=0.0, ge=0.0)
    gc_reg: GCRegConfig = Field(default_factory=GCRegConfig)
    epochs: int = Field(default=30, ge=0)
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    lr_step_epochs: PositiveInt = 30  # for "step": multiply lr by lr_step_gamma every N
    lr_step_gamma: PositiveFloat = 0.1
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    bf16: bool = False  # autocast the forward pass to bfloat16 on CUDA
    channels_last: bool = False
    deterministic: bool = True  # deterministic kernels where torch has them


class MetricsConfig(_Section):
    """What to measure, how often and with how many samples (SPEC 2, defaults [ours])."""

    every: PositiveInt = 1  # evaluate every N epochs (and always at the last epoch)
    at_init: bool = True  # also evaluate before the first step (epoch 0)
    gc: bool = True
    gc_estimator: str = "exact"
    gc_options: dict[str, Any] = Field(default_factory=dict)
    gc_batches: PositiveInt = 4
    gc_batch_size: PositiveInt = 128
    # The GC sample is class-stratified (about gc_batches * gc_batch_size images, shared
    # evenly); each class gets at least this many (all it has if fewer), so that class GCs
    # (geometric collapse, the Poincaré ratio) never rest on a handful of images. When
    # classes * gc_min_per_class exceeds the budget, the minimum wins and GC costs more.
    gc_min_per_class: PositiveInt = 16
    gc_logits: bool = False  # also measure GC of the logits
    gc_reference: bool = False  # also measure exact GC on the same samples (gc_exact)
    nc: bool = True
    # NC sample per class; at least 2, since one sample's class variance is 0, which would
    # make the CDNV and every bound through it 0.
    nc_per_class: int = Field(default=200, ge=2)
    fewshot: bool = True  # needs a target split
    fewshot_ways: PositiveInt = 5
    fewshot_shots: list[PositiveInt] = Field(default_factory=lambda: [1, 5])
    fewshot_queries: PositiveInt = 15
    fewshot_episodes: PositiveInt = 600
    fewshot_seed: int = 0
    test: bool = True  # test accuracy and NCC test error
    # Train-side bounds (SPEC 3): nc_bound, κ̂, geocol_bound (on the NCC test error) and
    # fewshot_nc_bound (on the target few-shot error, where few-shot transfer is measured).
    bound: bool = True
    seed: int = 0  # seeds GC batch choice and estimator randomness
    # Per-layer measures (the layers table): "last" (none: the embedding is the metrics
    # table's), "all" of the model's measurable layers, or a list of their names.
    layers: Literal["last", "all"] | list[str] = "last"

    @field_validator("layers", mode="before")
    @classmethod
    def _check_layers(cls, layers: Any) -> Any:
        if layers in ("last", "all"):
            return layers
        if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers):
            raise ValueError('give "last", "all" or a list of layer names')
        if not layers:
            raise ValueError('an empty list of layers; give "last", "all" or layer names')
        repeated = sorted({name for name in layers if layers.count(name) > 1})
        if repeated:
            raise ValueError(f"layer {repeated[0]!r} is listed twice")
        return layers

    LEFT_OUT_WHEN: ClassVar[dict[str, Any]] = {"layers": "last"}


class TrialConfig(_Section):
    """Everything one trial needs."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @model_validator(mode="after")
    def _check_split(self) -> TrialConfig:
        src, tgt = self.data.source_classes, self.data.target_classes
        if src is not None and tgt is not None and set(src) & set(tgt):
            overlap = sorted(set(src) & set(tgt))
            raise ValueError(f"data.source_classes and data.target_classes overlap: {overlap}")
        return self

    @classmethod
    def from_dict(cls, config: dict[str, Any] | None) -> TrialConfig:
        """Parse a nested dict; unknown keys and bad values raise ``pydantic.ValidationError``."""
        return cls.model_validate(config or {})
