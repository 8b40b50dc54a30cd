"""Geometric collapse: the CDNV with each class variance replaced by its class GC (SPEC 2.4).

``GeoCol = mean_{i<j} (GC_i + GC_j) / (2 ||μ_i − μ_j||²)``, with ``GC_c`` the class-conditional
GC and ``μ_c`` the class means of the embedding. It is the right-hand side of the paper's
"GC controls NC" bound: under a Poincaré inequality ``Var_c ≤ κ GC_c`` per class, so
``CDNV ≤ κ · GeoCol`` (Munn, Dherin & Gonzalvo 2024, Prop. 4.1; the definition here is
reconstructed from that bound).

The class GCs come from a class-stratified sample (:func:`class_stratified_sample`) with a
stated minimum per class, so no class's GC — and no ratio ``Var_c / GC_c`` in the empirical
Poincaré constant (:func:`~trainables.metrics.bounds.poincare_ratio`) — rests on the
handful of images a plain random sample may give a class.
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


def class_stratified_sample(
    labels: Tensor, *, total: int, min_per_class: int, generator: torch.Generator | None = None
) -> Tensor:
    """Indices into ``labels`` of a class-stratified random sample, sorted; the GC sample.

    Each class present gets an equal share of ``total``, as even as the class sizes allow:
    classes are served smallest first, a class smaller than its share gives all its
    samples and what it leaves is shared among the rest, and the remainder of the division
    goes to the classes served last (the largest; among equal sizes, the highest labels).
    Each share is then raised to ``min_per_class``. So:

    - every class with at least ``min_per_class`` samples gets at least ``min_per_class``;
    - a class with fewer enters with all it has (its GC rests on fewer samples; nothing is
      repeated and no class is dropped);
    - when ``min_per_class`` times the number of classes exceeds ``total`` the minimum wins
      and the sample is larger than ``total`` (the GC cost grows with it).

    Args:
        labels: integer classes ``(N,)``.
        total: the sample size aimed at (capped at ``N``).
        min_per_class: the least number of samples of a class (all it has, if fewer).
        generator: seeds which samples of each class are taken.
    """
    labels = labels.cpu()
    classes, counts = labels.unique(sorted=True, return_counts=True)
    quota = torch.zeros_like(counts)
    left = min(total, len(labels))
    for served, c in enumerate(torch.argsort(counts, stable=True).tolist()):
        quota[c] = min(int(counts[c]), left // (len(classes) - served))
        left -= int(quota[c])
    quota = torch.maximum(quota, counts.clamp(max=min_per_class))
    picks = []
    for cls, q in zip(classes.tolist(), quota.tolist(), strict=True):
        idx = (labels == cls).nonzero().squeeze(1)
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:q]])
    return torch.cat(picks).sort().values
