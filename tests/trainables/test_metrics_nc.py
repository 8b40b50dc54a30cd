"""Neural-collapse measures against explicit loops and numpy, and known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from trainables.metrics import (
    ClassStats,
    cdnv,
    cdnv_from_stats,
    nc1,
    nc1_from_stats,
    nc2,
    nc2_from_means,
    nc3,
    nc4,
)


def clustered(n_per: int = 12, classes: int = 4, dim: int = 6, seed: int = 0, offset: float = 0.0):
    """Noisy clusters with unequal class sizes (class c has n_per + 3c samples)."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, dim, dtype=torch.float64, generator=gen)
    labels = torch.arange(classes).repeat_interleave(n_per + 3 * torch.arange(classes))
    labels = labels[torch.randperm(len(labels), generator=gen)]
    noise = torch.randn(len(labels), dim, dtype=torch.float64, generator=gen)
    return offset + centres[labels] + noise, labels


def brute_force_cdnv(emb: torch.Tensor, labels: torch.Tensor) -> float:
    h, y = emb.numpy(), labels.numpy()
    classes = sorted(set(y.tolist()))
    mean = {c: h[y == c].mean(axis=0) for c in classes}
    var = {c: ((h[y == c] - mean[c]) ** 2).sum(axis=1).mean() for c in classes}
    pairs = [
        (var[i] + var[j]) / (2 * ((mean[i] - mean[j]) ** 2).sum())
        for i, j in itertools.combinations(classes, 2)
    ]
    return float(np.mean(pairs))


def test_cdnv_matches_explicit_pair_loop() -> None:
    emb, labels = clustered()
    assert cdnv(emb, labels) == pytest.approx(brute_force_cdnv(emb, labels), rel=1e-12)


def test_cdnv_skips_classes_without_samples() -> None:
    emb, labels = clustered(classes=3)
    labels = labels * 2  # classes 0, 2, 4 of 6
    assert cdnv(emb, labels, num_classes=6) == pytest.approx(
        brute_force_cdnv(emb, labels), rel=1e-12
    )


def test_collapsed_classes_have_cdnv_exactly_zero_where_raw_moments_do_not() -> None:
    gen = torch.Generator().manual_seed(0)
    means = 1e4 + torch.rand(3, 8, dtype=torch.float64, generator=gen)  # far from the origin
    labels = torch.arange(3).repeat_interleave(torch.tensor([7, 11, 13]))
    labels = labels[torch.randperm(len(labels), generator=gen)]
    emb = means[labels]  # every class collapsed to a point
    stats = ClassStats.empty(3, 8)
    for part in torch.arange(len(labels)).split(5):  # streamed in batches
        stats.update(emb[part], labels[part])
    assert cdnv_from_stats(stats) == 0.0
    assert (stats.m2 == 0).all()
    raw = torch.stack(
        [
            emb[labels == c].square().sum(dim=1).mean()
            - emb[labels == c].mean(dim=0).square().sum()
            for c in range(3)
        ]
    )
    assert (raw != 0).any()  # E||h||² − ||μ||² cancels catastrophically (even below 0)


def test_streaming_statistics_stay_accurate_far_from_the_origin() -> None:
    emb, labels = clustered(n_per=50, offset=1e6)
    stats = ClassStats.empty(4, 6)
    for part in torch.arange(len(labels)).split(7):
        stats.update(emb[part], labels[part])
    centred = emb - 1e6  # the exact same data, shifted by an exactly representable offset
    assert cdnv_from_stats(stats) == pytest.approx(brute_force_cdnv(centred, labels), rel=1e-8)


def test_merging_two_halves_equals_one_pass() -> None:
    emb, labels = clustered(n_per=20)
    whole = ClassStats.from_embeddings(emb, labels)
    first = ClassStats.from_embeddings(emb[:30], labels[:30], num_classes=4)
    first.merge(ClassStats.from_embeddings(emb[30:], labels[30:], num_classes=4))
    assert torch.equal(first.count, whole.count)
    for a, b in [(first.mean, whole.mean), (first.m2, whole.m2), (first.scatter, whole.scatter)]:
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_scatter_matrix_is_the_pooled_within_class_scatter() -> None:
    emb, labels = clustered()
    stats = ClassStats.from_embeddings(emb, labels)
    h, y = emb.numpy(), labels.numpy()
    dev = np.concatenate([h[y == c] - h[y == c].mean(axis=0) for c in range(4)])
    np.testing.assert_allclose(stats.scatter.numpy(), dev.T @ dev, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        stats.variance.numpy(),
        [((h[y == c] - h[y == c].mean(axis=0)) ** 2).sum(axis=1).mean() for c in range(4)],
        rtol=1e-12,
    )


def numpy_class_means(emb: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    h, y = emb.numpy(), labels.numpy()
    return np.stack([h[y == c].mean(axis=0) for c in np.unique(y)])


def test_nc1_matches_numpy() -> None:
    emb, labels = clustered(n_per=15, classes=4, dim=6)
    h, y = emb.numpy(), labels.numpy()
    means = numpy_class_means(emb, labels)
    dev = h - means[y]
    sigma_w = dev.T @ dev / len(h)
    centred = means - means.mean(axis=0)
    sigma_b = centred.T @ centred / len(means)
    want = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / len(means)
    assert nc1(emb, labels) == pytest.approx(want, rel=1e-9)
    assert nc1_from_stats(ClassStats.from_embeddings(emb, labels)) == pytest.approx(want, rel=1e-9)


def test_nc1_needs_the_scatter_matrix() -> None:
    emb, labels = clustered()
    with pytest.raises(ValueError, match="scatter"):
        nc1_from_stats(ClassStats.from_embeddings(emb, labels, scatter=False))


def test_nc2_matches_numpy() -> None:
    emb, labels = clustered(classes=5)
    centred = numpy_class_means(emb, labels)
    centred = centred - centred.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1)
    cos = (centred / norms[:, None]) @ (centred / norms[:, None]).T
    c = len(cos)
    etf = c / (c - 1) * (np.eye(c) - np.ones((c, c)) / c)
    got = nc2(emb, labels)
    assert got["etf_error"] == pytest.approx(
        np.linalg.norm(cos / np.linalg.norm(cos) - etf / np.linalg.norm(etf)), rel=1e-10
    )
    assert got["equinorm"] == pytest.approx(norms.std() / norms.mean(), rel=1e-10)
    assert got["equiangularity"] == pytest.approx(cos[np.triu_indices(c, 1)].std(), rel=1e-10)


def simplex_etf(classes: int, dim: int, *, scale: float = 2.0) -> torch.Tensor:
    """Vertices of a regular simplex, rotated into ``dim`` dimensions and shifted."""
    vertices = torch.eye(classes, dtype=torch.float64) - 1.0 / classes
    rotation, _ = torch.linalg.qr(torch.randn(dim, classes, dtype=torch.float64))
    return scale * vertices @ rotation.T + 5.0


def test_perfect_simplex_etf_has_zero_etf_error_and_equinorm() -> None:
    means = simplex_etf(6, 10)
    got = nc2_from_means(means - means.mean(dim=0))
    assert got["etf_error"] == pytest.approx(0.0, abs=1e-12)
    assert got["equinorm"] == pytest.approx(0.0, abs=1e-12)
    assert got["equiangularity"] == pytest.approx(0.0, abs=1e-12)
    labels = torch.arange(6).repeat(3)
    emb = means[labels] + 0.1 * torch.randn(18, 10, dtype=torch.float64)
    assert nc2(emb, labels)["etf_error"] > 1e-3  # noisy means are no longer an exact ETF


def test_nc3_is_zero_when_weights_are_the_centred_means_and_matches_numpy() -> None:
    emb, labels = clustered()
    centred = numpy_class_means(emb, labels)
    centred = centred - centred.mean(axis=0)
    assert nc3(emb, labels, torch.from_numpy(3.0 * centred)) == pytest.approx(0.0, abs=1e-24)
    weight = np.random.default_rng(0).normal(size=centred.shape)
    want = ((weight / np.linalg.norm(weight) - centred / np.linalg.norm(centred)) ** 2).sum()
    assert nc3(emb, labels, torch.from_numpy(weight)) == pytest.approx(want, rel=1e-12)


def test_nc4_matches_a_per_sample_loop() -> None:
    emb, labels = clustered(n_per=10, classes=4)
    logits = torch.randn(
        len(labels), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9)
    )
    means = numpy_class_means(emb, labels)
    disagree = [
        int(np.argmin(((means - h) ** 2).sum(axis=1)) != int(torch.argmax(z)))
        for h, z in zip(emb.numpy(), logits, strict=True)
    ]
    assert nc4(emb, labels, logits) == pytest.approx(np.mean(disagree), abs=1e-15)
    ncc_logits = -torch.cdist(emb, torch.from_numpy(means))  # a classifier that is the NCC
    assert nc4(emb, labels, ncc_logits) == 0.0


def test_labels_outside_the_classes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ClassStats.empty(3, 2).update(torch.zeros(2, 2), torch.tensor([0, 3]))
