"""Pairwise class geometry shared by CDNV, geometric collapse, NCC and the bounds."""

from __future__ import annotations

import torch
from torch import Tensor


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """``||a_i − b_j||²``, float64 ``(n, m)``, from explicit differences (no Gram-matrix
    cancellation when the points sit far from the origin)."""
    a, b = a.double(), b.double()
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    return d.square()


def mean_pair_ratio(spread: Tensor, means: Tensor) -> float:
    """Mean over unordered class pairs ``i < j`` of ``(s_i + s_j) / (2 ||μ_i − μ_j||²)``.

    Classes whose ``spread`` or mean is NaN (no samples) are left out; NaN with fewer than
    two classes left. With ``s`` the class variances (1/N_c) this is the CDNV in the one
    convention gcnc computes (see :func:`trainables.metrics.nc.cdnv`), with the class GCs
    the geometric collapse.
    """
    keep = ~torch.isnan(spread) & ~torch.isnan(means).any(dim=1)
    s, mu = spread[keep].double(), means[keep].double()
    if len(s) < 2:
        return float("nan")
    i, j = torch.triu_indices(len(s), len(s), offset=1, device=s.device)
    dist2 = squared_distances(mu, mu)[i, j]
    return float(((s[i] + s[j]) / (2 * dist2)).mean())


def nearest_centre(points: Tensor, centres: Tensor) -> Tensor:
    """Index of the nearest centre (Euclidean) for each point, ``(N,)``.

    Both are shifted by the mean centre first (distances are translation invariant), which
    keeps the fast matrix-product distance accurate for embeddings far from the origin.
    """
    origin = centres.double().mean(dim=0)
    return torch.cdist(points.double() - origin, centres.double() - origin).argmin(dim=1)
