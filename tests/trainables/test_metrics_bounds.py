"""NCC error and the reconstructed bounds: brute force, bound property, CDNV identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.metrics import cdnv, fewshot_error_bound, ncc_error, ncc_error_bound


def blobs(n_per: int, *, classes: int = 4, dim: int = 5, spread: float = 1.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(classes, dim, dtype=torch.float64, generator=gen)
    labels = torch.arange(classes).repeat(n_per)
    noise = spread * torch.randn(len(labels), dim, dtype=torch.float64, generator=gen)
    return centres[labels] + noise, labels


def brute_force_ncc_error(train, train_y, test, test_y) -> float:
    classes = sorted(set(train_y.tolist()))
    centres = {c: train[train_y == c].mean(dim=0) for c in classes}
    wrong = 0
    for h, y in zip(test, test_y.tolist(), strict=True):
        pred = min(classes, key=lambda c: float((h - centres[c]).square().sum()))
        wrong += pred != y
    return wrong / len(test_y)


def brute_force_bound(train, train_y, test, test_y) -> float:
    classes = sorted(set(train_y.tolist()))
    mu = {c: train[train_y == c].mean(dim=0).numpy() for c in classes}
    total = 0.0
    for i in classes:
        dev = float(np.mean(((test[test_y == i].numpy() - mu[i]) ** 2).sum(axis=1)))
        total += sum(4 * dev / ((mu[i] - mu[j]) ** 2).sum() for j in classes if j != i)
    return total / len(classes)


def test_ncc_error_matches_a_per_sample_loop() -> None:
    train, train_y = blobs(20, seed=1)
    test, test_y = blobs(15, seed=2, spread=2.0)
    got = ncc_error(train, train_y, test, test_y)
    assert got == pytest.approx(brute_force_ncc_error(train, train_y, test, test_y), abs=1e-15)
    assert 0 < got < 1


@pytest.mark.parametrize("seed", range(5))
def test_bound_matches_its_formula_and_bounds_the_error(seed: int) -> None:
    train, train_y = blobs(25, seed=seed, spread=1.5)
    test, test_y = blobs(25, seed=seed + 100, spread=1.5)  # balanced test set
    bound = ncc_error_bound(train, train_y, test, test_y)
    assert bound == pytest.approx(brute_force_bound(train, train_y, test, test_y), rel=1e-12)
    assert bound >= ncc_error(train, train_y, test, test_y)


def test_bound_on_the_training_set_is_4_times_c_minus_1_times_cdnv() -> None:
    emb, labels = blobs(30, classes=5)
    bound = ncc_error_bound(emb, labels, emb, labels)
    assert bound == pytest.approx(4 * (5 - 1) * cdnv(emb, labels), rel=1e-12)


def test_fewshot_error_bound_formula() -> None:
    assert fewshot_error_bound(0.01, ways=5, shots=5) == pytest.approx(16 * 4 * 1.2 * 0.01)
    assert fewshot_error_bound(0.0, ways=5, shots=1) == 0.0
