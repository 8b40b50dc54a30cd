"""Neural-collapse measures: CDNV and NC1–NC4, as pure functions of embeddings or of
:class:`~trainables.metrics.stats.ClassStats` (SPEC 2.3).

Shared conventions: classes with no samples are left out, so ``C`` below is the number of
classes present; ``μ_c`` is a class mean, and "centred" means minus the *mean of the class
means* ``μ_G = (1/C) Σ_c μ_c`` (the global mean for balanced classes). Everything in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.metrics._pairs import mean_pair_ratio, nearest_centre
from trainables.metrics.stats import ClassStats

PINV_RTOL = 1e-10  # singular values below this fraction of the largest count as zero


def cdnv(embeddings: Tensor, labels: Tensor, *, num_classes: int | None = None) -> float:
    """Class-distance normalised variance (Galanti, György & Hutter 2022), the one CDNV
    gcnc computes (the ``nc_cdnv`` and ``target_nc_cdnv`` columns, and every bound).

    ``Var_c = (1/N_c) Σ_{i∈c} ||h_i − μ_c||²`` (the trace of the class covariance, divided
    by ``N_c``, not ``N_c − 1``), ``V(i, j) = (Var_i + Var_j) / (2||μ_i − μ_j||²)`` (squared
    distance), and the result is the mean of ``V`` over the unordered pairs ``i < j`` of the
    classes present (equal to the mean over ordered pairs ``i ≠ j``; not a sum).
    This is Galanti et al.'s ``Avg_{i≠j} V_f(Q_i, Q_j)`` with the plug-in variance, and Wu &
    Papyan's ``variability_cdnv`` at its default ``dist_exp=1``.
    Lower means more collapse; 0 for fully collapsed classes.

    Other conventions convert per class or per pair, not by one factor in general:
    ``Var_c`` with ``N_c − 1`` is ``N_c/(N_c − 1)`` times this one (so with equal class
    sizes ``n``, this CDNV = ``(n − 1)/n`` × theirs); a sum over unordered pairs is
    ``C(C−1)/2`` times this mean, over ordered pairs ``C(C−1)``; omitting the 2 doubles it;
    variances and distances averaged over the ``p`` coordinates instead of summed give the
    same value, a variance averaged but a distance summed gives ``1/p`` of it; a plain
    (unsquared) distance multiplies each ``V(i, j)`` by ``||μ_i − μ_j||`` (and is no longer
    scale-free). docs/schema.md ("CDNV") states the same.
    """
    stats = ClassStats.from_embeddings(embeddings, labels, num_classes=num_classes, scatter=False)
    return cdnv_from_stats(stats)


def cdnv_from_stats(stats: ClassStats) -> float:
    """:func:`cdnv` from accumulated statistics."""
    return mean_pair_ratio(stats.variance, stats.mean)


def centred_means(stats: ClassStats) -> Tensor:
    """``(C, p)`` class means of the classes present, minus the mean of those class means."""
    means = stats.mean[stats.present]
    return means - means.mean(dim=0)


def nc1(embeddings: Tensor, labels: Tensor, *, num_classes: int | None = None) -> float:
    """NC1 = ``tr(Σ_W Σ_B⁺) / C`` (Papyan, Han & Donoho 2020).

    ``Σ_W = (1/N) Σ_c Σ_{i∈c} (h_i − μ_c)(h_i − μ_c)ᵀ`` (average over all samples);
    ``Σ_B = (1/C) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ`` with ``μ_G`` the mean of the class means;
    ``⁺`` is the Moore–Penrose pseudo-inverse, cutting singular values below
    ``PINV_RTOL`` times the largest.
    """
    return nc1_from_stats(ClassStats.from_embeddings(embeddings, labels, num_classes=num_classes))


def within_class_covariance(stats: ClassStats) -> Tensor:
    """``Σ_W = (1/N) Σ_c Σ_{i∈c} (h_i − μ_c)(h_i − μ_c)ᵀ``, ``(p, p)``: the pooled
    within-class scatter over the number of samples ``N`` (Papyan, Han & Donoho 2020)."""
    if stats.scatter is None:
        raise ValueError("the within-class covariance needs ClassStats with scatter=True")
    return stats.scatter / stats.count.sum()


def nc1_from_stats(stats: ClassStats) -> float:
    """:func:`nc1` from statistics that track the scatter matrix."""
    if stats.scatter is None:
        raise ValueError("nc1 needs ClassStats with scatter=True")
    centred = centred_means(stats)  # (C, p); Σ_B = centredᵀ centred / C
    within = within_class_covariance(stats)  # Σ_W
    # Σ_B⁺ = C · M⁺ M⁺ᵀ with M = centred, so tr(Σ_W Σ_B⁺) / C = tr(M⁺ᵀ Σ_W M⁺).
    m_pinv = torch.linalg.pinv(centred, rtol=PINV_RTOL)  # (p, C)
    return float(((within @ m_pinv) * m_pinv).sum())


def nc2(embeddings: Tensor, labels: Tensor, *, num_classes: int | None = None) -> dict[str, float]:
    """NC2: convergence of the class means to a simplex equiangular tight frame (Papyan et al.
    2020). See :func:`nc2_from_means` for the three numbers returned."""
    stats = ClassStats.from_embeddings(embeddings, labels, num_classes=num_classes, scatter=False)
    return nc2_from_stats(stats)


def nc2_from_stats(stats: ClassStats) -> dict[str, float]:
    """:func:`nc2` from accumulated statistics."""
    return nc2_from_means(centred_means(stats))


def nc2_from_means(centred: Tensor) -> dict[str, float]:
    """NC2 of centred class means ``(C, p)``.

    Returns:
        ``etf_error``: ``‖G/‖G‖_F − E/‖E‖_F‖_F`` with ``G`` the Gram matrix of the centred
        means each normalised to unit length (the cosines) and ``E = (C/(C−1))(I − 11ᵀ/C)``
        the Gram matrix of a unit simplex ETF; 0 for a perfect ETF.
        ``equinorm``: std/mean of the centred-mean norms (population std).
        ``equiangularity``: population std of the cosines over pairs ``i < j``.
    """
    c = centred.shape[0]
    norms = centred.norm(dim=1)
    unit = centred / norms[:, None]
    gram = unit @ unit.T
    eye = torch.eye(c, dtype=gram.dtype, device=gram.device)
    etf = (c / (c - 1)) * (eye - 1.0 / c)
    error = (gram / gram.norm() - etf / etf.norm()).norm()
    i, j = torch.triu_indices(c, c, offset=1, device=gram.device)
    return {
        "etf_error": float(error),
        "equinorm": float(norms.std(correction=0) / norms.mean()),
        "equiangularity": float(gram[i, j].std(correction=0)),
    }


def nc3(embeddings: Tensor, labels: Tensor, weight: Tensor) -> float:
    """NC3, self-duality: ``‖W/‖W‖_F − M/‖M‖_F‖_F²`` (Papyan et al. 2020, squared here).

    ``W`` is the classifier weight ``(C, p)`` (row ``c`` scores class ``c``) and ``M`` the
    centred class means as rows; only the rows of classes present are compared.
    """
    stats = ClassStats.from_embeddings(
        embeddings, labels, num_classes=weight.shape[0], scatter=False
    )
    return nc3_from_stats(stats, weight)


def nc3_from_stats(stats: ClassStats, weight: Tensor) -> float:
    """:func:`nc3` from accumulated statistics."""
    means = centred_means(stats)
    w = weight.detach().to(means.device, torch.float64)[stats.present]
    return float((w / w.norm() - means / means.norm()).square().sum())


def nc4(embeddings: Tensor, labels: Tensor, logits: Tensor) -> float:
    """NC4, classifier/NCC agreement (Papyan et al. 2020): the fraction of samples whose
    nearest class mean (Euclidean, means of these embeddings, classes present) differs
    from ``argmax`` of the logits. 0 when the classifier behaves like NCC."""
    stats = ClassStats.from_embeddings(
        embeddings, labels, num_classes=logits.shape[1], scatter=False
    )
    classes = torch.nonzero(stats.present).squeeze(1)
    ncc = classes[nearest_centre(embeddings, stats.mean[classes])]
    return float((ncc != logits.argmax(dim=1).to(ncc.device)).double().mean())
