"""Streaming per-class statistics of embeddings, the input of every neural-collapse measure.

Accumulated in float64 with the shifted-data batch step and Chan et al.'s parallel merge
(Chan, Golub & LeVeque 1979; Welford 1962), never with the raw-moment form
``E||h||² − ||μ||²``, which cancels catastrophically exactly when classes collapse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ClassStats:
    """Count, mean and sum of squared deviations per class, plus the pooled within-class
    scatter matrix ``Σ_c Σ_{i∈c} (h_i − μ_c)(h_i − μ_c)ᵀ`` (for NC1), all float64.

    Build with :meth:`empty` or :meth:`from_embeddings`; feed batches with :meth:`update`
    and combine partial results (other batches, other workers) with :meth:`merge`.

    Attributes:
        count: ``(C,)`` int64 samples per class.
        mean: ``(C, p)`` class means (zero for an empty class).
        m2: ``(C,)`` sum over the class of ``||h − μ_c||²`` (trace of its scatter).
        scatter: ``(p, p)`` pooled within-class scatter, or None when not tracked.
    """

    count: Tensor
    mean: Tensor
    m2: Tensor
    scatter: Tensor | None

    @classmethod
    def empty(
        cls, num_classes: int, dim: int, *, scatter: bool = True, device: str | torch.device = "cpu"
    ) -> ClassStats:
        """Statistics of no samples; ``scatter=False`` skips the ``p × p`` matrix."""
        f64 = {"dtype": torch.float64, "device": device}
        return cls(
            count=torch.zeros(num_classes, dtype=torch.int64, device=device),
            mean=torch.zeros(num_classes, dim, **f64),
            m2=torch.zeros(num_classes, **f64),
            scatter=torch.zeros(dim, dim, **f64) if scatter else None,
        )

    @classmethod
    def from_embeddings(
        cls,
        embeddings: Tensor,
        labels: Tensor,
        *,
        num_classes: int | None = None,
        scatter: bool = True,
    ) -> ClassStats:
        """Statistics of one set of embeddings ``(N, p)`` with integer labels ``(N,)``."""
        if num_classes is None:
            num_classes = int(labels.max()) + 1 if len(labels) else 0
        stats = cls.empty(
            num_classes, embeddings.shape[1], scatter=scatter, device=embeddings.device
        )
        stats.update(embeddings, labels)
        return stats

    @property
    def num_classes(self) -> int:
        return self.count.shape[0]

    @property
    def present(self) -> Tensor:
        """``(C,)`` bool, classes with at least one sample."""
        return self.count > 0

    @property
    def variance(self) -> Tensor:
        """``Var_c = mean ||h − μ_c||²`` (1/N_c), ``(C,)``; NaN for an empty class."""
        return torch.where(self.present, self.m2 / self.count.clamp(min=1), torch.nan)

    def update(self, embeddings: Tensor, labels: Tensor) -> None:
        """Add a batch of embeddings ``(N, p)`` with labels ``(N,)`` in place."""
        self.merge(self._of_batch(embeddings, labels))

    def merge(self, other: ClassStats) -> None:
        """Add ``other``'s samples in place (Chan et al.'s pairwise update)."""
        other = other.to(self.mean.device)
        n_a, n_b = self.count.double(), other.count.double()
        n = n_a + n_b
        delta = other.mean - self.mean  # (C, p)
        weight = torch.where(n > 0, n_a * n_b / n.clamp(min=1), 0.0)  # n_a n_b / n
        share = torch.where(n > 0, n_b / n.clamp(min=1), 0.0)
        self.mean = self.mean + delta * share[:, None]
        self.m2 = self.m2 + other.m2 + weight * delta.square().sum(dim=1)
        if self.scatter is not None:
            if other.scatter is None:
                raise ValueError("cannot merge statistics without a scatter matrix into one with")
            self.scatter = self.scatter + other.scatter + (delta.T * weight) @ delta
        self.count = self.count + other.count

    def to(self, device: str | torch.device) -> ClassStats:
        """A copy on ``device`` (or self if already there)."""
        if self.mean.device == torch.device(device):
            return self
        scatter = None if self.scatter is None else self.scatter.to(device)
        return ClassStats(self.count.to(device), self.mean.to(device), self.m2.to(device), scatter)

    def _of_batch(self, embeddings: Tensor, labels: Tensor) -> ClassStats:
        """One batch's statistics, each class shifted by its first sample before averaging,
        so a collapsed class (all samples equal) has deviations and ``m2`` exactly 0."""
        h = embeddings.detach().to(self.mean.device, torch.float64)
        labels = labels.to(h.device).long()
        num = self.num_classes
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < num:
            raise ValueError(f"labels must lie in [0, {num}); got {labels.min()}..{labels.max()}")
        count = torch.bincount(labels, minlength=num)
        order = torch.arange(len(labels), device=h.device)
        first = torch.full((num,), len(labels), device=h.device).scatter_reduce(
            0, labels, order, reduce="amin"
        )  # (C,) index of each class's first sample
        shifted = h - h[first[labels]]  # (N, p)
        shift_mean = torch.zeros_like(self.mean).index_add(0, labels, shifted)
        shift_mean = shift_mean / count.clamp(min=1)[:, None]
        dev = shifted - shift_mean[labels]  # (N, p) deviations from the class mean
        mean = torch.zeros_like(self.mean)
        mean[count > 0] = h[first[count > 0]] + shift_mean[count > 0]
        m2 = torch.zeros_like(self.m2).index_add(0, labels, dev.square().sum(dim=1))
        scatter = dev.T @ dev if self.scatter is not None else None
        return ClassStats(count, mean, m2, scatter)
