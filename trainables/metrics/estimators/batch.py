"""Batch sampling: exact GC on a random subset of the batch (SPEC 2.2, scheme 1)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from trainables.metrics.estimators._base import (
    EmbeddingFn,
    GCEstimator,
    check_positive,
    chunk_field,
)
from trainables.metrics.estimators._random import randperm
from trainables.metrics.estimators.exact import Exact


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchSample(GCEstimator):
    """Exact ``||J_b||_F²`` on ``size`` samples drawn without replacement from the batch.

    A drawn sample's estimate is its exact value times ``B / size`` and every other sample's
    is 0, so each entry is unbiased for its own ``||J_b||_F²`` (it is drawn with probability
    ``size / B``) and their mean is the GC of the drawn subset. Costs ``size / B`` of exact.

    Args:
        size: samples to keep; ``size >= B`` is exact GC.
        chunk_size: VJPs per backward pass.
    """

    name = "batch"
    size: int = 32
    chunk_size: int = chunk_field()

    def __post_init__(self) -> None:
        check_positive(size=self.size, chunk_size=self.chunk_size)

    def per_sample(
        self,
        fn: EmbeddingFn,
        x: Tensor,
        *,
        create_graph: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        exact = Exact(chunk_size=self.chunk_size)
        n = x.shape[0]
        if self.size >= n:
            return exact.per_sample(fn, x, create_graph=create_graph)
        keep = randperm(n, generator=generator, like=x)[: self.size]
        values = exact.per_sample(fn, x[keep], create_graph=create_graph) * (n / self.size)
        return torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, keep, values)
