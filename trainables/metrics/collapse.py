"""Geometric collapse: the CDNV with each class variance replaced by its class GC (SPEC 2.4).

``GeoCol = mean_{i<j} (GC_i + GC_j) / (2 ||μ_i − μ_j||²)``, with ``GC_c`` the class-conditional
GC and ``μ_c`` the class means of the embedding. It is the right-hand side of the paper's
"GC controls NC" bound: under a Poincaré inequality ``Var_c ≤ κ GC_c`` per class, so
``CDNV ≤ κ · GeoCol`` (Munn, Dherin & Gonzalvo 2024, Prop. 4.1; the definition here is
reconstructed from that bound).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainables.metrics._pairs import mean_pair_ratio
from trainables.metrics.estimators import EmbeddingFn
from trainables.metrics.gc import class_gc
from trainables.metrics.stats import ClassStats


def geometric_collapse(
    fn: EmbeddingFn,
    x: Tensor,
    labels: Tensor,
    *,
    num_classes: int | None = None,
    estimator: str = "exact",
    generator: torch.Generator | None = None,
    **options: Any,
) -> float:
    """Geometric collapse of ``fn`` on ``x``: class GCs by ``estimator`` and class means of
    ``fn(x)``, over the classes present in ``labels``.

    Args:
        fn: per-sample independent embedding ``(B, ...) -> (B, p)``; the caller sets eval mode.
        x: inputs ``(B, ...)``.
        labels: integer classes ``(B,)``.
        num_classes: number of classes; None takes ``labels.max() + 1``.
        estimator: GC estimator name; ``options`` are its options.
        generator: seeds the estimator's random draws.
    """
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    gcs = class_gc(
        fn, x, labels, num_classes=num_classes, estimator=estimator, generator=generator, **options
    )
    with torch.no_grad():
        embeddings = fn(x)
    stats = ClassStats.from_embeddings(embeddings, labels, num_classes=num_classes, scatter=False)
    return geometric_collapse_from(gcs, stats.mean)


def geometric_collapse_from(class_gc: Tensor, class_means: Tensor) -> float:
    """Geometric collapse from class GCs ``(C,)`` (NaN for a class left out) and class means
    ``(C, p)``: ``mean_{i<j} (GC_i + GC_j) / (2 ||μ_i − μ_j||²)``."""
    return mean_pair_ratio(class_gc, class_means)
