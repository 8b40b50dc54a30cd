"""NCC test error and reconstructed bounds on it (SPEC 3). The paper's exact bound is not
known here: these are standard Markov/Chebyshev-type bounds, labelled as reconstructions."""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.metrics._pairs import nearest_centre, squared_distances
from trainables.metrics.stats import ClassStats


def _train_centres(train_emb: Tensor, train_y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    stats = ClassStats.from_embeddings(train_emb, train_y, num_classes=num_classes, scatter=False)
    classes = torch.nonzero(stats.present).squeeze(1)
    return classes, stats.mean[classes]


def _num_classes(*labels: Tensor) -> int:
    return max(int(y.max()) for y in labels) + 1


def ncc_error(train_emb: Tensor, train_y: Tensor, test_emb: Tensor, test_y: Tensor) -> float:
    """Error of the nearest-class-centre classifier on the test set, with centres the class
    means of the training embeddings (Euclidean). A test sample of a class absent from the
    training labels is always an error."""
    classes, centres = _train_centres(train_emb, train_y, _num_classes(train_y, test_y))
    pred = classes[nearest_centre(test_emb.to(centres.device), centres)]
    return float((pred != test_y.to(pred.device)).double().mean())


def ncc_error_bound(train_emb: Tensor, train_y: Tensor, test_emb: Tensor, test_y: Tensor) -> float:
    """Reconstructed bound on the (class-balanced) NCC test error; the ``nc_bound`` column.

    Derivation. Let ``μ_c`` be the training class means. A test sample ``x`` of class ``i``
    is misclassified only if ``||x − μ_j|| ≤ ||x − μ_i||`` for some ``j ≠ i``; then, by the
    triangle inequality, ``||μ_i − μ_j|| ≤ ||x − μ_i|| + ||x − μ_j|| ≤ 2||x − μ_i||``. A union
    bound over ``j`` and Markov's inequality on ``||x − μ_i||²`` give

        P(err | i) ≤ Σ_{j≠i} P(||x − μ_i||² ≥ ||μ_i − μ_j||²/4)
                   ≤ Σ_{j≠i} 4 E_i||x − μ_i||² / ||μ_i − μ_j||²,

    and averaging over the ``C`` test classes,
    ``err ≤ (1/C) Σ_i Σ_{j≠i} 4 E_i||x − μ_i||² / ||μ_i − μ_j||²``.
    It bounds the class-balanced error (equal to :func:`ncc_error` on a balanced test set)
    and may exceed 1 (vacuous). When the test set is the training set, ``E_i||x − μ_i||² =
    Var_i`` and the sum over ordered pairs is ``4(C − 1)·CDNV``.

    ``i`` runs over classes present in both sets, ``j`` over all training classes.
    """
    classes, centres = _train_centres(train_emb, train_y, _num_classes(train_y, test_y))
    test_y = test_y.to(centres.device)
    spread = squared_distances(test_emb.to(centres.device), centres)  # (N, C_train)
    own = classes[None, :] == test_y[:, None]  # (N, C_train), one True per sample
    rows = own.any(dim=1)
    own_idx = own[rows].double().argmax(dim=1)
    sq_dev = spread[rows, own_idx]  # ||x − μ_i||² for test samples of a training class
    counts = torch.bincount(own_idx, minlength=len(classes))
    mean_dev = torch.zeros(len(classes), dtype=torch.float64, device=centres.device)
    mean_dev = mean_dev.index_add(0, own_idx, sq_dev) / counts.clamp(min=1)  # E_i||x − μ_i||²
    between = squared_distances(centres, centres)  # (C, C)
    ratio = 4 * mean_dev[:, None] / between.fill_diagonal_(torch.inf)
    return float(ratio.sum(dim=1)[counts > 0].mean())


def fewshot_error_bound(nc_target: float, *, ways: int, shots: int) -> float:
    """Expected few-shot NCC error bound ``16 (k − 1)(1 + 1/n) · NC`` on ``k = ways`` target
    classes with ``n = shots`` shots, ``NC`` the target CDNV (Galanti, György & Hutter
    2022; SPEC 3). Valid as an upper bound only where its assumptions hold; may exceed 1."""
    return 16 * (ways - 1) * (1 + 1 / shots) * nc_target
