"""Exact GC: all ``p`` rows of every sample's Jacobian, by batched VJPs (SPEC 2.1)."""

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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Exact(GCEstimator):
    """``||J_b||_F² = Σ_k ||e_kᵀ J_b||²``: one forward pass, then ``p`` VJPs per sample,
    ``chunk_size`` of them per batched backward pass.

    Args:
        chunk_size: VJPs per backward pass; memory grows with ``chunk_size × B``.
    """

    name = "exact"
    chunk_size: int = chunk_field()

    def __post_init__(self) -> None:
        check_positive(chunk_size=self.chunk_size)

    def per_sample(
        self,
        fn: EmbeddingFn,
        x: Tensor,
        *,
        create_graph: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        lin = Linearization(fn, x, create_graph=create_graph)
        rows = torch.arange(lin.out_dim, device=lin.y.device).expand(lin.batch, -1)  # (B, p)
        return basis_sq_norms(
            lin.vjp, rows, lin.out_dim, chunk_size=self.chunk_size, dtype=lin.y.dtype
        )
