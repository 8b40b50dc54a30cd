"""NCC test error and reconstructed bounds on it from training-side quantities (SPEC 3).

The paper's exact bound is not known here: these are standard Markov/Chebyshev-type
bounds (Galanti, György & Hutter 2022), labelled as reconstructions. A bound is worth
plotting only if it could fail, so the right-hand sides here use **training-side**
quantities only (class means and within-class variances of a training sample, class GCs),
and are compared with an error measured on held-out data: the NCC error on the source test
set (:func:`ncc_error_bound`) and the few-shot error on the target classes
(:func:`fewshot_error_bound`).

The earlier ``nc_bound`` took ``E_i||x − μ_i||²`` from the test embeddings themselves: by
Markov's inequality it was at least the class-balanced test error whatever the network,
so "the bound holds" carried no evidence, and no GC entered it. The earlier
``fewshot_bound`` was ``16 (k − 1)(1 + 1/n)`` times the CDNV of the *target* classes, the
pool the episodes are drawn from: a rescaled ``target_nc_cdnv``, not a prediction. Both are
dropped rather than kept under other names: they measure nothing the stored NCC test error
and target CDNV do not already show.

A class with fewer than two training samples has no variance estimate (one sample's is 0,
which would make a bound 0): :func:`training_variance` gives it NaN, and the bounds leave
it out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from trainables.metrics._pairs import mean_pair_ratio, nearest_centre
from trainables.metrics.stats import ClassStats

MIN_SAMPLES = 2  # a class variance needs two samples


def _num_classes(*labels: Tensor) -> int:
    return max((int(y.max()) + 1 for y in labels if len(y)), default=0)


def ncc_error(train_emb: Tensor, train_y: Tensor, test_emb: Tensor, test_y: Tensor) -> float:
    """Error of the nearest-class-centre classifier on the test set, with centres the class
    means of the training embeddings (Euclidean). A test sample of a class absent from the
    training labels is always an error; NaN for an empty test set (the loaders refuse one).

    Raises:
        ValueError: with no training sample (no centre to classify by).
    """
    if len(train_y) == 0:
        raise ValueError("ncc_error needs training samples for the class centres; got none")
    if len(test_y) == 0:
        return math.nan
    stats = ClassStats.from_embeddings(
        train_emb, train_y, num_classes=_num_classes(train_y, test_y), scatter=False
    )
    classes = torch.nonzero(stats.present).squeeze(1)
    centres = stats.mean[classes]
    pred = classes[nearest_centre(test_emb.to(centres.device), centres)]
    return float((pred != test_y.to(pred.device)).double().mean())


def ncc_error_bound(train_emb: Tensor, train_y: Tensor, *, num_classes: int | None = None) -> float:
    """Train-side bound on the NCC test error; the ``nc_bound`` column (SPEC 3, reconstructed).

    Uses only the training sample: class means ``μ_i`` and within-class variances
    ``Var_i = mean ||h − μ_i||²`` (1/N_i, the CDNV convention; a class with fewer than two
    samples has none and is left out, :func:`training_variance`). The value is

        B = (1/C) Σ_i Σ_{j≠i} 4 Var_i / ||μ_i − μ_j||²  =  4 (C − 1) · CDNV_train.

    Derivation. The NCC classifier has centres ``μ_i``. A held-out sample ``x`` of class
    ``i`` (distribution ``Q_i``) goes to ``j`` only if ``||x − μ_j|| ≤ ||x − μ_i||``, and then
    ``||μ_i − μ_j|| ≤ 2||x − μ_i||`` (triangle inequality). A union bound over ``j`` and
    Markov's inequality on ``||x − μ_i||²`` give

        P(err | i) ≤ Σ_{j≠i} 4 E_{Q_i}||x − μ_i||² / ||μ_i − μ_j||²,

    and averaging over classes bounds the class-balanced error (the plain error on a
    balanced test set). It is the pairwise Markov/Chebyshev argument behind Galanti,
    György & Hutter's few-shot bound (ICLR 2022, arXiv 2112.15121; SPEC 3), here with the
    centres fixed by a large training sample instead of drawn from ``n`` shots, so without
    their ``(1 + 1/n)`` factor and with 4 instead of 16.

    Assumption (A), under which ``B`` bounds the error: for every class,
    ``E_{Q_i}||x − μ_i||² ≤ Var_i`` — the held-out class is no wider about the training
    mean than the training sample is. For an embedding independent of the training sample
    (A) holds in expectation up to a factor ``(N_i + 1)/(N_i − 1)`` (about 1.01 at
    ``N_i = 200``, neglected). A trained network is fitted to its training sample, whose
    classes typically collapse more than held-out ones: there (A), and so the bound, can
    fail — which is what makes "bound ≥ error" evidence. It may also exceed 1 (vacuous).

    Args:
        train_emb: training embeddings ``(N, p)``.
        train_y: their integer classes ``(N,)``.
        num_classes: number of classes; None takes ``train_y.max() + 1``.
    """
    stats = ClassStats.from_embeddings(train_emb, train_y, num_classes=num_classes, scatter=False)
    return ncc_error_bound_from(training_variance(stats), stats.mean)


def training_variance(stats: ClassStats) -> Tensor:
    """``Var_c = mean ||h − μ_c||²`` (1/N_c) of each class of a training sample, ``(C,)``,
    NaN for a class with fewer than two samples: one sample's variance is 0, which is no
    estimate of the class's spread and would make every bound through it 0."""
    return torch.where(stats.count >= MIN_SAMPLES, stats.variance, torch.nan)


def ncc_error_bound_from(spread: Tensor, means: Tensor) -> float:
    """``(1/C) Σ_i Σ_{j≠i} 4 s_i / ||μ_i − μ_j||² = 4 (C − 1) · mean_{i<j} (s_i + s_j) /
    (2||μ_i − μ_j||²)`` over the ``C`` classes whose spread ``s`` ``(C,)`` and mean ``μ``
    ``(C, p)`` are not NaN; NaN with fewer than two.

    With ``s = Var`` it is :func:`ncc_error_bound`; with ``s = κ̂ · GC`` it is the bound
    through geometric collapse, ``4 (C − 1) κ̂ · GeoCol`` (see :func:`poincare_ratio`).
    """
    classes = int((~torch.isnan(spread) & ~torch.isnan(means).any(dim=1)).sum())
    return 4 * (classes - 1) * mean_pair_ratio(spread, means)


def poincare_ratio(variance: Tensor, class_gc: Tensor) -> float:
    """The empirical Poincaré ratio ``κ̂ = max_c Var_c / GC_c`` (SPEC 3).

    Under a Poincaré inequality with constant ``κ`` on each class distribution,
    ``Var_c ≤ κ · GC_c``, hence ``CDNV ≤ κ · GeoCol`` (Munn, Dherin & Gonzalvo 2024,
    Prop. 4.1). ``κ̂`` is the smallest constant for which that holds on the measured
    classes, so ``κ̂ · GeoCol ≥ CDNV`` on the same class means by construction: the bound
    through GeoCol is never below :func:`ncc_error_bound`, and its gap shows what the
    Poincaré step costs. It is reported with every bound that goes through GeoCol.
    It is exact only for exact class GCs (``gc_estimator = "exact"``): a maximum of ratios
    whose denominators are noisy estimates is biased upwards.

    Args:
        variance: ``(C,)`` within-class variances (1/N_c), NaN for a class not measured.
        class_gc: ``(C,)`` class GCs, NaN for a class not measured.

    Returns:
        ``κ̂`` over the classes with both values; a class with ``GC_c = 0 < Var_c`` makes it
        ``inf`` (no finite constant holds), one with both 0 is left out; NaN with none left.
    """
    var, gc = variance.double(), class_gc.double().to(variance.device)
    keep = ~torch.isnan(var) & ~torch.isnan(gc) & ((var > 0) | (gc > 0))
    if not keep.any():
        return math.nan
    return float((var[keep] / gc[keep]).max())


def fewshot_error_bound(
    train_emb: Tensor,
    train_y: Tensor,
    *,
    ways: int,
    shots: int,
    num_classes: int | None = None,
) -> float:
    """Train-side bound on the target few-shot NCC error; the ``fewshot_nc_bound`` column
    (SPEC 3, reconstructed):

        E[err] ≤ 16 (k − 1)(1 + 1/n) · CDNV_train,   k = ``ways``, n = ``shots``,

    with ``CDNV_train`` the CDNV of the **source** classes' training embeddings (class means
    ``μ_c`` and variances ``Var_c``, 1/N_c), so nothing of the target classes enters it. It
    is compared with the observed error ``1 − fewshot_acc_<n>shot`` on the target classes.

    Derivation (Galanti, György & Hutter, ICLR 2022, arXiv 2112.15121; SPEC 3). For ``k``
    classes with distributions ``Q_1..Q_k`` in the embedding, the NCC classifier whose
    centres are the means of ``n`` i.i.d. shots per class errs on a query of class ``i`` only
    if it is nearer some other centre; Chebyshev's inequality on the query's and the
    centres' deviations and a union bound over the ``k − 1`` other classes give, in
    expectation over the shots and the query,
    ``E[err] ≤ 16 (k − 1)(1 + 1/n) · mean_{i≠j} V(Q_i, Q_j)``, ``V`` the pair's CDNV.

    Assumptions, under which it bounds the error:

    (A1) finite class variances (the inequality above is then a theorem);
    (A2) the target classes are drawn from the same distribution over classes as the
         source classes, so the expected CDNV of a pair of new classes equals that of a
         pair of source classes, and the mean over the source pairs stands for it (the
         transfer step of Galanti et al.; better with many source classes);
    (A3) the training sample stands for its classes: ``Var_c`` and ``μ_c`` of the
         training embedding are those of the class distributions.

    A trained network is fitted to its source training sample and typically collapses it
    more than new classes (A2) and more than held-out images of the same classes (A3):
    then the bound fails, which is what makes "bound ≥ error" evidence. It is a bound on
    the mean over episodes, compared with the mean of finitely many (``fewshot_ci_<n>shot``
    is its sampling error), and it is often above 1 (vacuous): ``76.8 · CDNV`` at
    5-way 5-shot.

    Args:
        train_emb: source training embeddings ``(N, p)``.
        train_y: their integer classes ``(N,)``.
        ways: ``k``, classes per episode.
        shots: ``n``, support samples per class.
        num_classes: number of source classes; None takes ``train_y.max() + 1``.
    """
    stats = ClassStats.from_embeddings(train_emb, train_y, num_classes=num_classes, scatter=False)
    return fewshot_error_bound_from(training_variance(stats), stats.mean, ways=ways, shots=shots)


def fewshot_error_bound_from(spread: Tensor, means: Tensor, *, ways: int, shots: int) -> float:
    """``16 (k − 1)(1 + 1/n) · mean_{i<j} (s_i + s_j) / (2||μ_i − μ_j||²)`` over the source
    classes whose spread ``s`` ``(C,)`` and mean ``μ`` ``(C, p)`` are not NaN; NaN with
    fewer than two. With ``s = Var`` it is :func:`fewshot_error_bound`."""
    return 16 * (ways - 1) * (1 + 1 / shots) * mean_pair_ratio(spread, means)
