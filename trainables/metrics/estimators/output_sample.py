"""Output-dimension sampling: ``k`` of the ``p`` Jacobian rows, scaled (SPEC 2.2, scheme 3)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from trainables.metrics.estimators._base import (
    EmbeddingFn,
    GCEstimator,
    Linearization,
    basis_sq_norms,
    check_positive,
    chunk_field,
)
from trainables.metrics.estimators._random import uniform


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputSample(GCEstimator):
    """``(p / |K|) Σ_{k∈K} ||e_kᵀ J_b||²`` with ``K`` a uniform random subset of ``k`` of the
    ``p`` output coordinates, drawn independently for every sample at no extra cost (the
    sum-over-batch trick takes a different cotangent per sample). ``k`` VJPs per sample.

    Args:
        k: coordinates per sample; ``k >= p`` is exact.
        chunk_size: VJPs per backward pass.
    """

    name = "output_sample"
    k: int = 64
    chunk_size: int = chunk_field()

    def __post_init__(self) -> None:
        check_positive(k=self.k, chunk_size=self.chunk_size)

    def per_sample(
        self,
        fn: EmbeddingFn,
        x: Tensor,
        *,
        create_graph: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        lin = Linearization(fn, x, create_graph=create_graph)
        p = lin.out_dim
        k = min(self.k, p)
        keys = uniform((lin.batch, p), generator=generator, like=lin.y)
        rows = keys.argsort(dim=1)[:, :k]  # (B, k): a uniform k-subset per sample
        total = basis_sq_norms(lin.vjp, rows, p, chunk_size=self.chunk_size, dtype=lin.y.dtype)
        return total * (p / k)
