"""The neural-collapse measures beyond :mod:`~trainables.metrics.nc`: NC1 as a ratio of
traces, the NC2 ETF deviation, GNC2 hyperspherical uniformity, UNC3 uniform duality, and the
effective rank of an embedding.

Pure functions of embeddings and labels, of :class:`~trainables.metrics.stats.ClassStats`,
or of centred class means; float64 throughout. The conventions are those of
:mod:`~trainables.metrics.nc`: classes with no samples are left out (``C`` is the number
present); "centred" means minus the *mean of the class means* ``μ̄ = (1/C) Σ_c μ_c``
(Papyan et al. centre at the global sample mean ``μ_G``; the two agree for balanced
classes); ``Σ_W = (1/N) Σ_c Σ_{i∈c} (h_i − μ_c)(h_i − μ_c)ᵀ`` is averaged over all ``N``
samples and ``Σ_B = (1/C) Σ_c (μ_c − μ̄)(μ_c − μ̄)ᵀ`` over the classes.

The metrics table's ``nc1`` column is :func:`~trainables.metrics.nc.nc1`,
``tr(Σ_W Σ_B⁺)/C``; :func:`nc1_trace_ratio` is the other common variant, not a column.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trainables.metrics.nc import centred_means
from trainables.metrics.stats import ClassStats


def between_class_covariance(stats: ClassStats) -> Tensor:
    """``Σ_B = (1/C) Σ_c (μ_c − μ̄)(μ_c − μ̄)ᵀ``, ``(p, p)``, over the classes present,
    ``μ̄`` the mean of their means (Papyan, Han & Donoho 2020, with ``μ̄`` for ``μ_G``)."""
    centred = centred_means(stats)  # (C, p)
    return centred.T @ centred / centred.shape[0]


def nc1_trace_ratio(embeddings: Tensor, labels: Tensor, *, num_classes: int | None = None) -> float:
    """NC1 as a ratio of traces, ``tr(Σ_W) / tr(Σ_B)``.

    The variant analysed by Tirer, Huang & Niles-Weed, "Perturbation analysis of neural
    collapse" (ICML 2023), and the ``"quotient"`` metric of Wu & Papyan's neural-collapse
    library (``covariance_ratio``), with ``Σ_W``, ``Σ_B`` as in the module docstring.
    Unlike ``tr(Σ_W Σ_B⁺)/C`` it weighs every direction by its variance and needs no
    pseudo-inverse (nor the ``p × p`` scatter): ``tr(Σ_W) = Σ_c N_c Var_c / N`` with
    ``Var_c`` the CDNV's class variance. 0 for collapsed classes; NaN with fewer than two.
    """
    stats = ClassStats.from_embeddings(embeddings, labels, num_classes=num_classes, scatter=False)
    return nc1_trace_ratio_from_stats(stats)


def nc1_trace_ratio_from_stats(stats: ClassStats) -> float:
    """:func:`nc1_trace_ratio` from accumulated statistics (the scatter matrix is not used)."""
    if int(stats.present.sum()) < 2:
        return float("nan")
    within = stats.m2.sum() / stats.count.sum()  # tr Σ_W
    between = centred_means(stats).square().sum(dim=1).mean()  # tr Σ_B
    return float(within / between)


def nc2_etf_deviation(centred: Tensor) -> float:
    """NC2 maximal-angle equiangularity of centred class means ``(C, p)``:
    ``mean_{i<j} |cos(μ_i − μ̄, μ_j − μ̄) + 1/(C−1)|`` (Papyan, Han & Donoho 2020, Fig. 4).

    The cosines of a simplex ETF are all ``−1/(C−1)``, the most negative ``C`` equal
    cosines can be, so this is 0 exactly for a simplex ETF (where the equiangularity of
    :func:`~trainables.metrics.nc.nc2_from_means`, the std of the cosines, is 0 for any
    equiangular set). Mean over unordered pairs, which equals Papyan's mean over ``c ≠ c'``;
    NaN with fewer than two classes.
    """
    unit = _unit_rows(centred)
    c = unit.shape[0]
    if c < 2:
        return float("nan")
    i, j = torch.triu_indices(c, c, offset=1, device=unit.device)
    cos = (unit[i] * unit[j]).sum(dim=1)
    return float((cos + 1.0 / (c - 1)).abs().mean())


def gnc2(embeddings: Tensor, labels: Tensor, *, num_classes: int | None = None) -> dict[str, float]:
    """GNC2, hyperspherical uniformity of the class means; see :func:`gnc2_from_means`."""
    stats = ClassStats.from_embeddings(embeddings, labels, num_classes=num_classes, scatter=False)
    return gnc2_from_means(centred_means(stats))


def gnc2_from_means(centred: Tensor) -> dict[str, float]:
    """GNC2 of centred class means ``(C, p)``, with the logarithmic kernel.

    Each centred mean is normalised to the unit sphere, ``u_c = (μ_c − μ̄)/‖μ_c − μ̄‖``
    (exactly; Wu & Papyan's library adds float eps to the norm), and
    ``K_ij = log(1/‖u_i − u_j‖)`` over unordered pairs ``i < j``. The logarithmic
    hyperspherical energy is the generalised NC2 of Liu et al., "Generalizing and decoupling
    neural collapse via hyperspherical uniformity gap" (ICLR 2023); Wu & Papyan, "Linguistic
    collapse" (NeurIPS 2024) report the variation of ``K`` over pairs (their library's
    ``kernel_stats(M, mG, kernel=log_kernel)`` returns this mean and variance).

    Returns:
        ``energy``: ``mean_{i<j} K_ij``, lower = more uniform. With ``C ≤ p + 1`` its minimum
        is ``−½ log(2C/(C−1))``, reached exactly by a simplex ETF (``‖u_i − u_j‖² =
        2C/(C−1)`` for every pair; Jensen's inequality on the convex ``−½ log`` of the
        squared distances, whose mean is at most ``2C/(C−1)``). ``inf`` if two means share
        a direction.
        ``variance``: population variance of ``K_ij`` over the pairs, 0 when all pairs
        are equidistant.
    """
    unit = _unit_rows(centred)
    c = unit.shape[0]
    i, j = torch.triu_indices(c, c, offset=1, device=unit.device)
    kernel = -(unit[i] - unit[j]).norm(dim=1).log()  # log(1/‖u_i − u_j‖)
    return {"energy": float(kernel.mean()), "variance": float(kernel.var(correction=0))}


def unc3(embeddings: Tensor, labels: Tensor, weight: Tensor) -> float:
    """UNC3, uniform duality; see :func:`unc3_from_stats`. ``weight`` is the classifier
    ``(C, p)``, row ``c`` scoring class ``c``."""
    stats = ClassStats.from_embeddings(
        embeddings, labels, num_classes=weight.shape[0], scatter=False
    )
    return unc3_from_stats(stats, weight)


def unc3_from_stats(stats: ClassStats, weight: Tensor) -> float:
    """UNC3, uniform duality (Wu & Papyan, "Linguistic collapse", NeurIPS 2024): the
    coefficient of variation (population std / mean) over the classes present of
    ``cos(w_c, μ_c − μ̄)``, the cosine between each classifier row and its centred mean.

    0 when every class's row makes the same angle with its mean — in particular when
    ``w_c = a_c (μ_c − μ̄)`` with any ``a_c > 0``, where NC3 (self-duality) is 0 only for
    equal ``a_c``. Wu & Papyan's library stores these cosines
    (``similarities(W, M, mG, cos=True)``) and their mean and variance; the CoV is their
    ratio here.
    """
    means = centred_means(stats)  # (C, p)
    w = weight.detach().to(means.device, torch.float64)[stats.present]
    cos = (_unit_rows(w) * _unit_rows(means)).sum(dim=1)
    return float(cos.std(correction=0) / cos.mean())


def effective_rank(embeddings: Tensor, *, centre: bool = False, eps: float = 0.0) -> float:
    """Effective rank of an embedding matrix ``(N, p)`` (Roy & Vetterli 2007; RankMe,
    Garrido et al. 2023): ``exp(−Σ_k p_k log p_k)`` with ``p_k = σ_k / Σ_l σ_l + eps`` over
    its ``min(N, p)`` singular values ``σ_k``.

    Conventions: ``0 · log 0 = 0``; singular values at or below
    ``σ_max · max(N, p) · ε_float64`` (numpy's ``matrix_rank`` tolerance) count as 0, so a
    matrix of rank ``r`` has effective rank at most ``r``, equal to ``r`` when its ``r``
    non-zero singular values are equal; ``eps = 0`` is Roy & Vetterli's definition and
    ``eps = 1e-7`` RankMe's. Uncentred by default, as RankMe; ``centre=True`` subtracts
    the mean row first (the rank of the sample covariance). 0 for a zero matrix.
    """
    h = embeddings.detach().to(torch.float64)
    if centre:
        h = h - h.mean(dim=0)
    sigma = torch.linalg.svdvals(h)
    tol = sigma.max() * max(h.shape) * torch.finfo(torch.float64).eps if len(sigma) else 0.0
    return _entropy_rank(torch.where(sigma > tol, sigma, 0.0), eps)


def effective_rank_from_stats(stats: ClassStats, *, eps: float = 0.0) -> float:
    """:func:`effective_rank` of the *centred* embeddings, from streamed statistics.

    The centred matrix ``H`` has ``HᵀH = S_W + Σ_c N_c (μ_c − m)(μ_c − m)ᵀ``, ``S_W`` the
    within-class scatter and ``m`` the sample mean, so ``σ_k = sqrt(λ_k(HᵀH))``. Eigenvalues
    at or below ``λ_max · p · ε_float64`` (the backward error of the symmetric eigensolver)
    count as 0, i.e. ``σ ≤ σ_max · δ`` with ``δ = sqrt(p ε)`` (3.4e-7 at p = 512): a coarser
    cut than :func:`effective_rank`'s, so the two can differ by up to about
    ``p δ log(1/δ)`` relative where many singular values sit near ``δ σ_max``.
    """
    if stats.scatter is None:
        raise ValueError("effective_rank_from_stats needs ClassStats with scatter=True")
    n = stats.count.double()
    offset = stats.mean - (n @ stats.mean) / n.sum()  # (C, p), zero rows for empty classes
    total = stats.scatter + (offset.T * n) @ offset  # (p, p) = HᵀH
    lam = torch.linalg.eigvalsh(total)
    tol = lam.max() * total.shape[0] * torch.finfo(torch.float64).eps
    return _entropy_rank(torch.where(lam > tol, lam, 0.0).sqrt(), eps)


def _entropy_rank(sigma: Tensor, eps: float) -> float:
    """``exp`` of the Shannon entropy of ``σ / Σσ + eps``, with ``0 log 0 = 0``."""
    total = sigma.sum()
    if total <= 0:
        return 0.0
    p = sigma / total + eps
    entropy = -torch.where(p > 0, p * p.log(), 0.0).sum()
    return math.exp(float(entropy))


def _unit_rows(x: Tensor) -> Tensor:
    """Rows scaled to unit Euclidean length, float64."""
    x = x.to(torch.float64)
    return x / x.norm(dim=1, keepdim=True)
