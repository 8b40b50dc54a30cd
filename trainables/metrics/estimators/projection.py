"""Random projections (Hutchinson): ``E_v ||vᵀJ||² = ||J||_F²`` (SPEC 2.2, item 4)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from trainables.metrics.estimators._base import (
    EmbeddingFn,
    GCEstimator,
    Linearization,
    check_positive,
    chunk_field,
    squared_norms,
)
from trainables.metrics.estimators._random import normal

DISTRIBUTIONS = ("gaussian", "rademacher", "sphere")


def probes(
    shape: tuple[int, ...], *, dist: str, generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """Random vectors along the last axis with ``E[v vᵀ] = I``, float64.

    ``gaussian``: N(0, I); ``rademacher``: independent ±1; ``sphere``: ``√p · g/||g||``,
    uniform on the sphere of radius ``√p``.
    """
    g = normal(shape, generator=generator, like=like)
    if dist == "gaussian":
        return g
    if dist == "rademacher":
        return torch.where(g < 0, -1.0, 1.0).to(g.dtype)
    return g * (shape[-1] ** 0.5 / g.norm(dim=-1, keepdim=True))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Projection(GCEstimator):
    """``(1/P) Σ_i ||v_ibᵀ J_b||²`` over ``P = probes`` output-space probes per sample
    (Hutchinson 1989; normalised probes as in Girard 1989).

    One VJP per probe, probes independent across samples. Variance per probe, with
    ``A = J Jᵀ``: gaussian ``2 tr(A²)``; rademacher ``2 (tr(A²) − Σ_k A_kk²)``; sphere
    ``(2p/(p+2)) (tr(A²) − tr(A)²/p)``, never above gaussian's and zero when ``A ∝ I``.

    Args:
        probes: probes per sample.
        dist: ``"gaussian"``, ``"rademacher"`` or ``"sphere"``.
        chunk_size: VJPs per backward pass.
    """

    name = "projection"
    probes: int = 32
    dist: str = "sphere"
    chunk_size: int = chunk_field()

    def __post_init__(self) -> None:
        check_positive(probes=self.probes, chunk_size=self.chunk_size)
        if self.dist not in DISTRIBUTIONS:
            raise ValueError(f"projection dist must be one of {DISTRIBUTIONS}, got {self.dist!r}")

    def per_sample(
        self,
        fn: EmbeddingFn,
        x: Tensor,
        *,
        create_graph: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        lin = Linearization(fn, x, create_graph=create_graph)
        total = torch.zeros(lin.batch, dtype=torch.float64, device=lin.y.device)
        for start in range(0, self.probes, self.chunk_size):
            count = min(self.chunk_size, self.probes - start)
            v = probes(
                (count, lin.batch, lin.out_dim), dist=self.dist, generator=generator, like=lin.y
            )
            total = total + squared_norms(lin.vjp(v))
        return total / self.probes
