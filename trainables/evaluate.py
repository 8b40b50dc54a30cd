"""One evaluation of a trial: every metric of the Parquet schema from the current model.

The evaluation is a pure function of the model, the data and a fixed :class:`EvalPlan`
(which samples measure GC and NC, which few-shot episodes), so a resumed trial measures
exactly what an uninterrupted one would, and every trial of a study is measured on the
same samples and episodes (paired comparisons, SPEC 2.5).

Where the study measures layers other than the embedding (``metrics.layers``), the row
also holds, under :data:`LAYERS`, one row per layer (SPEC "Across depth"): the same GC,
CDNV, NC1, geometric collapse, NCC test error and few-shot quantities of that layer's
pooled output, on the same samples and episodes. One forward pass per chunk gives every
layer's output; each layer's GC runs the layers up to it again for its own backward pass.
The last layer's row holds the values of the row itself.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trainables import metrics as M
from trainables.config import MetricsConfig
from trainables.data import Dataset
from trainables.forward import Embedded, embed_layers
from trainables.models import EmbeddingClassifier
from trainables.models.preflight import select_layers

LAYERS = "layers"  # the key of a row's per-layer rows, where the study measures layers
# The quantities a layer's row shares with the metrics row (the last layer's are copied).
LAYER_QUANTITIES = ("gc", "gc_estimator", "geo_collapse", "nc_cdnv", "nc1", "target_nc_cdnv",
                    "ncc_test_error")  # fmt: skip


class NonFiniteError(ArithmeticError):
    """The model's embeddings or training loss are no longer finite: the trial diverged."""


@dataclass(frozen=True)
class EvalPlan:
    """Sample indices chosen once per (data, metrics seed): identical for every evaluation."""

    gc_idx: torch.Tensor  # (≈ gc_batches * gc_batch_size,) class-stratified, source train set
    nc_idx: torch.Tensor  # (<= nc_per_class * C,) into the source train set
    target_nc_idx: torch.Tensor | None  # into the target pool


def make_plan(data: Dataset, cfg: MetricsConfig) -> EvalPlan:
    """Choose the GC and NC samples with a generator seeded by ``cfg.seed``.

    The GC sample is class-stratified: ``gc_batches * gc_batch_size`` images shared evenly
    among the source classes, at least ``gc_min_per_class`` of each (all of a class's
    images where it has fewer), see :func:`~trainables.metrics.class_stratified_sample`.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    gc_idx = M.class_stratified_sample(
        data.train_y,
        total=cfg.gc_batches * cfg.gc_batch_size,
        min_per_class=cfg.gc_min_per_class,
        generator=gen,
    )
    nc_idx = _per_class_subset(data.train_y.cpu(), cfg.nc_per_class, gen)
    target_nc_idx = None
    if data.target_y is not None:
        target_nc_idx = _per_class_subset(data.target_y.cpu(), cfg.nc_per_class, gen)
    return EvalPlan(gc_idx=gc_idx, nc_idx=nc_idx, target_nc_idx=target_nc_idx)


def _per_class_subset(labels: torch.Tensor, per_class: int, gen: torch.Generator) -> torch.Tensor:
    picks = []
    for c in labels.unique(sorted=True).tolist():
        idx = (labels == c).nonzero().squeeze(1)
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(picks).sort().values


def evaluate(
    model: EmbeddingClassifier,
    data: Dataset,
    plan: EvalPlan,
    cfg: MetricsConfig,
    *,
    epoch: int,
) -> dict[str, Any]:
    """Measure every enabled metric with ``model`` in eval mode; absent where not measured.

    Raises:
        NonFiniteError: the embeddings or the training loss are not finite.
    """
    was_training = model.training
    model.eval()
    try:
        with ieee_float32(data.train_x.device):
            return _evaluate(model, data, plan, cfg, epoch=epoch)
    finally:
        model.train(was_training)


@contextlib.contextmanager
def ieee_float32(device: torch.device) -> Iterator[None]:
    """Full float32 convolutions and matmuls on CUDA while metrics are measured.

    cuDNN convolutions default to TF32 (a 10-bit mantissa) on Ampere and later GPUs; the
    metrics are defined in float32 with float64 accumulation, so TF32 is turned off here
    (training keeps the default) and restored on exit. Only the ``fp32_precision`` API is
    used: mixing it with the legacy ``allow_tf32`` flags is an error in torch.
    """
    if device.type != "cuda":
        yield
        return
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


def measured_layers(model: EmbeddingClassifier, cfg: MetricsConfig) -> list[int]:
    """The 1-based indices of the layers ``cfg.layers`` selects from ``model``'s; none for
    ``"last"`` (the embedding alone is the metrics row's).

    Raises:
        ValueError: a layer the model does not have, naming the model's layers.
    """
    if cfg.layers == "last":
        return []
    try:
        return select_layers(model.layer_names(), cfg.layers)
    except ValueError as err:
        raise ValueError(f"metrics.layers: {err}") from None


def _evaluate(
    model: EmbeddingClassifier, data: Dataset, plan: EvalPlan, cfg: MetricsConfig, *, epoch: int
) -> dict[str, Any]:
    """:func:`evaluate`'s row, the model already in eval mode."""
    row: dict[str, Any] = {}
    layers = measured_layers(model, cfg)
    train = embed_layers(model, data.train_x, layers, rows=plan.nc_idx)
    emb, logits = train.emb, train.logits  # (N, p), (N, C)
    row["train_loss"] = F.cross_entropy(logits, data.train_y).item()
    if not (math.isfinite(row["train_loss"]) and torch.isfinite(emb).all()):
        raise NonFiniteError(f"non-finite embeddings or train loss at epoch {epoch}")
    row["train_acc"] = _accuracy(logits, data.train_y)
    nc_emb, nc_y = emb[plan.nc_idx], data.train_y[plan.nc_idx]
    if cfg.nc:
        row |= _nc_metrics(nc_emb, nc_y, logits[plan.nc_idx], model, data.num_classes)
    class_gc = None
    if cfg.gc:
        gc_row, class_gc = _gc_metrics(model, data, plan, cfg, nc_emb, nc_y, epoch=epoch)
        row |= gc_row
    test = embed_layers(model, data.test_x, layers) if cfg.test else None
    if test is not None:
        row["test_acc"] = _accuracy(test.logits, data.test_y)
        row["ncc_test_error"] = M.ncc_error(nc_emb, nc_y, test.emb, data.test_y)
    target = None
    if cfg.fewshot and data.target_x is not None:
        target = embed_layers(model, data.target_x, layers)
        row |= _target_metrics(target.emb, data, plan, cfg)
    if cfg.bound:
        row |= _bound_metrics(nc_emb, nc_y, class_gc, cfg, data)
    if layers:
        splits = LayerSplits(train.inner, test, target)
        row[LAYERS] = _layer_rows(model, data, plan, cfg, layers, splits, row, epoch=epoch)
    return row


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).double().mean().item()


def _nc_metrics(
    emb: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    model: EmbeddingClassifier,
    num_classes: int,
) -> dict[str, float]:
    nc2 = M.nc2(emb, labels)
    return {
        "nc_cdnv": M.cdnv(emb, labels, num_classes=num_classes),
        "nc1": M.nc1(emb, labels),
        "nc2_etf": nc2["etf_error"],
        "nc2_equinorm": nc2["equinorm"],
        "nc3": M.nc3(emb, labels, model.head.weight.detach()),
        "nc4": M.nc4(emb, labels, logits),
    }


def _gc_metrics(
    model: EmbeddingClassifier,
    data: Dataset,
    plan: EvalPlan,
    cfg: MetricsConfig,
    nc_emb: torch.Tensor,
    nc_y: torch.Tensor,
    *,
    epoch: int,
) -> tuple[dict[str, Any], torch.Tensor]:
    """GC of the embedding on the fixed class-stratified training sample, and geometric
    collapse from its classes; also the class GCs ``(C,)`` (float64, CPU) for the bounds."""
    gen = _gc_generator(cfg, epoch)
    row, class_gc = _gc_of(model.embed, data, plan, cfg, nc_emb, nc_y, gen)
    x = data.train_x[plan.gc_idx]
    if cfg.gc_reference:
        exact = _gc_per_sample(model.embed, x, cfg, "exact", {}, gen)
        row["gc_exact"] = exact.mean().item()
    if cfg.gc_logits:
        row["gc_logits"] = _gc_per_sample(model, x, cfg, "exact", {}, gen).mean().item()
    return row, class_gc


def _gc_generator(cfg: MetricsConfig, epoch: int) -> torch.Generator:
    """The estimator's draws at ``epoch``: the same for the embedding and for every layer."""
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)


#: Widest inner layer whose GC is exact when the study's estimator is exact: past it, an
#: inner layer's GC takes the projection estimator (its default probes), whose cost does not
#: grow with the width (exact GC takes one Jacobian product per output dimension).
LAYER_EXACT_MAX_P = 128


def layer_gc_estimator(cfg: MetricsConfig, width: int) -> tuple[str, dict[str, Any]]:
    """The estimator (and its options) of an inner layer of ``width`` outputs: the study's,
    except that exact GC of a layer wider than :data:`LAYER_EXACT_MAX_P` is estimated by
    projection. The embedding always takes the study's (its row is the metrics row's)."""
    if cfg.gc_estimator == "exact" and width > LAYER_EXACT_MAX_P:
        return "projection", {}
    return cfg.gc_estimator, cfg.gc_options


def _gc_of(
    fn: Callable[[torch.Tensor], torch.Tensor],
    data: Dataset,
    plan: EvalPlan,
    cfg: MetricsConfig,
    nc_emb: torch.Tensor,
    nc_y: torch.Tensor,
    gen: torch.Generator,
    estimator: tuple[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], torch.Tensor]:
    """``gc``, ``gc_estimator`` and ``geo_collapse`` of the map ``fn`` (whose outputs on the
    NC sample are ``nc_emb``), and its class GCs ``(C,)``; by ``estimator`` (name, options),
    the study's by default."""
    name, options = estimator or (cfg.gc_estimator, cfg.gc_options)
    x, y = data.train_x[plan.gc_idx], data.train_y[plan.gc_idx]
    per_sample = _gc_per_sample(fn, x, cfg, name, options, gen)
    class_gc = _class_means(per_sample, y, data.num_classes)  # (C,)
    means = _class_means(nc_emb.double(), nc_y, data.num_classes)  # (C, p)
    row: dict[str, Any] = {
        "gc": per_sample.mean().item(),
        "gc_estimator": M.gc_estimator_label(name, options),
        "geo_collapse": M.geometric_collapse_from(class_gc, means),
    }
    return row, class_gc


def _gc_per_sample(fn, x, cfg, estimator, options, gen) -> torch.Tensor:
    """Per-sample GC in chunks of ``gc_batch_size`` (float64, on CPU)."""
    parts = [
        M.gc_per_sample(
            fn, x[s : s + cfg.gc_batch_size], estimator=estimator, generator=gen, **options
        )
        .detach()
        .double()
        .cpu()
        for s in range(0, len(x), cfg.gc_batch_size)
    ]
    return torch.cat(parts)  # (n,)


def _class_means(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean of ``values`` (N, ...) per class; NaN rows for absent classes."""
    labels = labels.to(values.device)
    out = torch.full(
        (num_classes, *values.shape[1:]), math.nan, dtype=values.dtype, device=values.device
    )
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            out[c] = values[mask].mean(0)
    return out


def _bound_metrics(
    nc_emb: torch.Tensor,
    nc_y: torch.Tensor,
    class_gc: torch.Tensor | None,
    cfg: MetricsConfig,
    data: Dataset,
) -> dict[str, float]:
    """The reconstructed bounds (SPEC 3), from training-side quantities only: class means
    and variances of the source NC sample, class GCs of the GC sample (``class_gc`` None:
    GC not measured, so neither κ̂ nor the bound through GeoCol). ``fewshot_nc_bound``
    predicts the target few-shot error at the largest shot count from the source classes
    alone, where the study measures few-shot transfer."""
    stats = M.ClassStats.from_embeddings(nc_emb, nc_y, num_classes=data.num_classes, scatter=False)
    var = M.training_variance(stats)  # (C,), NaN for a class with < 2 samples
    row = {"nc_bound": M.ncc_error_bound_from(var, stats.mean)}
    if class_gc is not None:
        class_gc = class_gc.to(stats.mean.device)
        kappa = M.poincare_ratio(var, class_gc)
        row["poincare_kappa"] = kappa
        row["geocol_bound"] = (
            math.inf if math.isinf(kappa) else M.ncc_error_bound_from(kappa * class_gc, stats.mean)
        )
    if cfg.fewshot and data.target_y is not None and cfg.fewshot_shots:
        n = max(cfg.fewshot_shots)  # compared with 1 − fewshot_acc_<n>shot
        row["fewshot_nc_bound"] = M.fewshot_error_bound_from(
            var, stats.mean, ways=cfg.fewshot_ways, shots=n
        )
    return row


def _target_metrics(
    emb: torch.Tensor, data: Dataset, plan: EvalPlan, cfg: MetricsConfig
) -> dict[str, float]:
    """Target NC and few-shot accuracy from the target pool's embeddings ``(N_target, p)``."""
    assert data.target_y is not None
    idx = plan.target_nc_idx
    row = {"target_nc_cdnv": M.cdnv(emb[idx], data.target_y[idx])}
    for shots in cfg.fewshot_shots:
        acc, ci = M.fewshot_ncc(
            emb,
            data.target_y,
            ways=cfg.fewshot_ways,
            shots=shots,
            queries=cfg.fewshot_queries,
            episodes=cfg.fewshot_episodes,
            seed=cfg.fewshot_seed,
        )
        row[f"fewshot_acc_{shots}shot"] = acc
        row[f"fewshot_ci_{shots}shot"] = ci
    return row


@dataclass(frozen=True)
class LayerSplits:
    """The inner layers' outputs: on the NC sample, and the test and target splits where
    the study measures them."""

    nc: dict[int, torch.Tensor]
    test: Embedded | None
    target: Embedded | None


def _layer_rows(
    model: EmbeddingClassifier,
    data: Dataset,
    plan: EvalPlan,
    cfg: MetricsConfig,
    layers: list[int],
    splits: LayerSplits,
    row: dict[str, Any],
    *,
    epoch: int,
) -> list[dict[str, Any]]:
    """One row per measured layer: its index, name and width, then its quantities; the last
    layer's are the metrics row's own."""
    names, rows = model.layer_names(), []
    for k in layers:
        if k == len(names):
            values = {q: v for q, v in row.items() if _layer_quantity(q)}
            width = model.embed_dim
        else:
            values = layer_quantities(model, data, plan, cfg, k, splits, epoch=epoch)
            width = splits.nc[k].shape[1]
        rows.append({"layer": k, "layer_name": names[k - 1], "layer_dim": width} | values)
    return rows


def _layer_quantity(name: str) -> bool:
    return name in LAYER_QUANTITIES or name.startswith(("fewshot_acc_", "fewshot_ci_"))


def layer_quantities(
    model: EmbeddingClassifier,
    data: Dataset,
    plan: EvalPlan,
    cfg: MetricsConfig,
    layer: int,
    splits: LayerSplits,
    *,
    epoch: int,
) -> dict[str, Any]:
    """The quantities of layer ``layer`` (1-based) that the study measures, by the functions
    and on the samples and episodes of the metrics row (for the last layer, its values)."""
    nc_y = data.train_y[plan.nc_idx]
    h = splits.nc[layer]  # (n, p_k), the NC sample
    out: dict[str, Any] = {}
    if cfg.nc:
        out["nc_cdnv"] = M.cdnv(h, nc_y, num_classes=data.num_classes)
        out["nc1"] = M.nc1(h, nc_y)
    if cfg.gc:
        fn = functools.partial(model.layer_output, layer=layer)
        estimator = layer_gc_estimator(cfg, h.shape[1])
        gc_row, _ = _gc_of(fn, data, plan, cfg, h, nc_y, _gc_generator(cfg, epoch), estimator)
        out |= gc_row
    if splits.test is not None:
        test = splits.test.inner[layer]
        out["ncc_test_error"] = M.ncc_error(h, nc_y, test, data.test_y)
    if splits.target is not None:
        out |= _target_metrics(splits.target.inner[layer], data, plan, cfg)
    return out
