"""Geometric complexity of an embedding (Dherin et al. 2022; Munn et al. 2024; SPEC 2.1).

``GC(f, B) = (1/|B|) Σ_{x∈B} ||∂f(x)/∂x||_F²``: the mean squared Frobenius norm of the input
Jacobian over a batch, the discrete Dirichlet energy of ``f``. No factor 1/2, no division by
the input or output dimension. GC scales as ``1/s²`` when the inputs are scaled by ``s``, so
the input normalisation belongs to the result.

Conventions:
- ``fn`` maps a batch ``(B, ...)`` to ``(B, p)`` (the embedding ``model.embed`` or, for GC of
  the logits, the model itself) and must treat samples independently: put the model in
  **eval mode** before measuring (BatchNorm on running statistics). These functions never
  change the mode.
- In train mode (the explicit regulariser ``CE + α·GC``), BatchNorm couples the samples and a
  per-sample Jacobian is not defined. Every product is then one of the whole batch (the
  sum-over-batch trick), so the couplings are included and
  ``gc_per_sample(..., create_graph=True).mean()`` is differentiable through them. Exact GC
  gives ``Σ_k ||∂(Σ_b' fn(x)_{b'k}) / ∂x_b||²`` for sample ``b`` (the Jacobian of the
  batch-summed output); projection, whose probes are independent across samples, estimates
  ``Σ_b' ||∂fn(x)_{b'} / ∂x_b||_F²`` (row ``b`` of the Frobenius norm of the whole batch
  Jacobian). Both equal ``||J_b||_F²`` in eval mode; in train mode use one of these two (the
  other estimators draw per-sample subsets whose cross-sample terms have no such meaning).
  Each call runs one forward pass, which in train mode updates BatchNorm's running
  statistics once more.
- Sums are accumulated in float64; the Jacobian products themselves are in the model's dtype.
- Autograd is switched on inside, so a caller under ``torch.no_grad()`` is fine; under
  ``torch.inference_mode()`` it is not (no graph can be built there).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainables.metrics.estimators import EmbeddingFn, make_estimator


def gc_per_sample(
    fn: EmbeddingFn,
    x: Tensor,
    *,
    estimator: str = "exact",
    create_graph: bool = False,
    generator: torch.Generator | None = None,
    **options: Any,
) -> Tensor:
    """Per-sample ``||∂fn(x_b)/∂x_b||_F²`` (estimates, each unbiased), float64 ``(B,)``.

    Args:
        fn: per-sample independent map ``(B, ...) -> (B, p)`` (eval mode; see module notes).
        x: the batch.
        estimator: a name in ``ESTIMATORS`` (``exact``, ``batch``, ``output_sample``, ``mask``,
            ``projection``); ``options`` are its options (SPEC 2.2).
        create_graph: keep the graph, so the result can be differentiated with respect to the
            parameters of ``fn`` (double backprop for the GC regulariser).
        generator: seeds the estimator's random draws; None uses the global generator.
    """
    est = make_estimator(estimator, options)
    return est.per_sample(fn, x, create_graph=create_graph, generator=generator)


def geometric_complexity(
    fn: EmbeddingFn,
    x: Tensor,
    *,
    estimator: str = "exact",
    generator: torch.Generator | None = None,
    **options: Any,
) -> float:
    """``GC(fn, x) = (1/|B|) Σ_b ||∂fn(x_b)/∂x_b||_F²``, by ``estimator`` (default exact).

    Args:
        fn: per-sample independent map ``(B, ...) -> (B, p)``; the caller sets eval mode.
        x: the batch ``(B, ...)``.
        estimator: estimator name; ``options`` are its options.
        generator: seeds the estimator's random draws.
    """
    values = gc_per_sample(fn, x, estimator=estimator, generator=generator, **options)
    return float(values.mean())


def gc_estimator_label(estimator: str, options: dict[str, Any] | None = None) -> str:
    """Canonical label of an estimator and its options, with every value that defines the
    estimate and keys sorted, e.g. ``exact`` or ``projection(dist=sphere,probes=64)``.
    Options that change only the cost (``chunk_size``) are left out.
    """
    return make_estimator(estimator, options).label()


def class_gc(
    fn: EmbeddingFn,
    x: Tensor,
    labels: Tensor,
    *,
    num_classes: int,
    estimator: str = "exact",
    generator: torch.Generator | None = None,
    **options: Any,
) -> Tensor:
    """Class-conditional GC, ``GC_c = GC(fn, S_c)`` on the samples ``S_c`` of class ``c``.

    Per-sample values are computed once for the whole batch and averaged per class.

    Returns:
        float64 ``(num_classes,)``; NaN for a class with no samples in ``x``.
    """
    values = gc_per_sample(fn, x, estimator=estimator, generator=generator, **options)
    return class_average(values, labels, num_classes=num_classes)


def class_average(values: Tensor, labels: Tensor, *, num_classes: int) -> Tensor:
    """Mean of ``values`` per class in float64, ``(num_classes,)``; NaN for an empty class."""
    labels = labels.to(values.device)
    sums = torch.zeros(num_classes, dtype=torch.float64, device=values.device)
    sums = sums.index_add(0, labels, values.detach().double())
    counts = torch.bincount(labels, minlength=num_classes).double()
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.nan)
