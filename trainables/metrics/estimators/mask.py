"""Jacobian masking: keep each entry, row or column with probability q (SPEC 2.2, scheme 2)."""

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

MODES = ("entries", "rows", "cols")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mask(GCEstimator):
    """``(1/q) Σ_{kj} m_kj J_kj²`` with independent Bernoulli(q) keeps ``m``: unbiased.

    - ``entries``: one keep per Jacobian entry; needs the whole Jacobian (cost of exact).
    - ``rows``: one keep per output coordinate, computed by VJPs (about ``q·p`` per sample).
    - ``cols``: one keep per input coordinate, computed by JVPs (about ``q·d`` per sample).

    Keeps are drawn independently per sample; rows and columns are packed so that a batched
    pass serves every sample, and the number of passes is the largest count kept by any sample.

    Args:
        q: keep probability in (0, 1].
        mode: ``"entries"``, ``"rows"`` or ``"cols"``.
        chunk_size: Jacobian products per batched pass.
    """

    name = "mask"
    q: float = 0.1
    mode: str = "entries"
    chunk_size: int = chunk_field()

    def __post_init__(self) -> None:
        object.__setattr__(self, "q", float(self.q))
        check_positive(q=self.q, chunk_size=self.chunk_size)
        if self.q > 1 or self.mode not in MODES:
            raise ValueError(f"mask needs 0 < q <= 1 and mode in {MODES}; got {self}")

    def per_sample(
        self,
        fn: EmbeddingFn,
        x: Tensor,
        *,
        create_graph: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        lin = Linearization(fn, x, create_graph=create_graph)
        if self.mode == "entries":
            return self._entries(lin, generator) / self.q
        product, size = (lin.vjp, lin.out_dim) if self.mode == "rows" else (lin.jvp, lin.in_dim)
        keep = uniform((lin.batch, size), generator=generator, like=lin.y) < self.q  # (B, n)
        count = int(keep.sum(dim=1).max())
        index = (~keep).to(torch.uint8).argsort(dim=1, stable=True)[:, :count]  # kept first
        valid = torch.arange(count, device=keep.device) < keep.sum(dim=1, keepdim=True)
        total = basis_sq_norms(
            product, index, size, chunk_size=self.chunk_size, dtype=lin.y.dtype, valid=valid
        )
        return total / self.q

    def _entries(self, lin: Linearization, generator: torch.Generator | None) -> Tensor:
        total = torch.zeros(lin.batch, dtype=torch.float64, device=lin.y.device)
        eye = torch.eye(lin.out_dim, dtype=lin.y.dtype, device=lin.y.device)
        for rows in eye.split(self.chunk_size):
            jac = lin.vjp(rows[:, None, :].expand(-1, lin.batch, -1))  # (K, B, d)
            keep = uniform(tuple(jac.shape), generator=generator, like=jac) < self.q
            total = total + (jac.square() * keep).sum(dim=(0, 2), dtype=torch.float64)
        return total
