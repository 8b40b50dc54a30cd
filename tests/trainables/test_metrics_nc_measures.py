"""The neural-collapse measures against brute-force float64 references written here with
explicit loops over samples, classes and pairs, and against known answers: a perfect simplex
ETF with zero within-class variance, and embeddings of exact rank r."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from trainables.metrics import (
    ClassStats,
    between_class_covariance,
    cdnv,
    effective_rank,
    effective_rank_from_stats,
    gnc2,
    gnc2_from_means,
    nc1,
    nc1_from_stats,
    nc1_trace_ratio,
    nc1_trace_ratio_from_stats,
    nc2,
    nc2_etf_deviation,
    nc3,
    nc4,
    unc3,
    within_class_covariance,
)

F64 = torch.float64
SIZES = (5, 9, 14, 7)  # unequal class sizes


def clusters(seed: int = 0, *, sizes=SIZES, dim: int = 6, noise: float = 1.0):
    """Gaussian clusters around random centres, shuffled; float64."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(len(sizes), dim, dtype=F64, generator=gen)
    labels = torch.tensor([c for c, n in enumerate(sizes) for _ in range(n)])
    labels = labels[torch.randperm(len(labels), generator=gen)]
    emb = centres[labels] + noise * torch.randn(len(labels), dim, dtype=F64, generator=gen)
    return emb, labels


# ---- brute-force references: plain Python loops over lists of floats ------------------------


def groups(emb: torch.Tensor, labels: torch.Tensor) -> dict[int, list[list[float]]]:
    out: dict[int, list[list[float]]] = {}
    for h, y in zip(emb.tolist(), labels.tolist(), strict=True):
        out.setdefault(y, []).append(h)
    return dict(sorted(out.items()))


def mean_of(rows: list[list[float]]) -> list[float]:
    return [sum(r[k] for r in rows) / len(rows) for k in range(len(rows[0]))]


def sub(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(a: list[float]) -> float:
    return math.sqrt(dot(a, a))


def class_means(g: dict[int, list[list[float]]]) -> dict[int, list[float]]:
    return {c: mean_of(rows) for c, rows in g.items()}


def centred(means: dict[int, list[float]]) -> dict[int, list[float]]:
    grand = mean_of(list(means.values()))  # the mean of the class means
    return {c: sub(m, grand) for c, m in means.items()}


def cosine(a: list[float], b: list[float]) -> float:
    return dot(a, b) / (norm(a) * norm(b))


def pstd(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def bf_covariances(emb, labels) -> tuple[np.ndarray, np.ndarray]:
    g = groups(emb, labels)
    means = class_means(g)
    p, n = emb.shape[1], len(labels)
    within = [[0.0] * p for _ in range(p)]
    for c, rows in g.items():
        for h in rows:
            d = sub(h, means[c])
            for a in range(p):
                for b in range(p):
                    within[a][b] += d[a] * d[b] / n
    mc = centred(means)
    between = [
        [sum(m[a] * m[b] for m in mc.values()) / len(mc) for b in range(p)] for a in range(p)
    ]
    return np.array(within), np.array(between)


def bf_cdnv(
    emb, labels, *, ddof: int = 0, power: float = 2.0, half: bool = True, reduce: str = "mean"
) -> float:
    """CDNV in any of the conventions in use: variance over N_c − ddof, distance to ``power``,
    with or without the 1/2, mean over unordered pairs or sum over ordered pairs."""
    g = groups(emb, labels)
    means = class_means(g)
    var = {
        c: sum(dot(sub(h, means[c]), sub(h, means[c])) for h in g[c]) / (len(g[c]) - ddof)
        for c in g
    }
    values = []
    for i, j in (
        itertools.permutations(g, 2) if reduce == "ordered_sum" else itertools.combinations(g, 2)
    ):
        dist = norm(sub(means[i], means[j]))
        values.append((var[i] + var[j]) / ((2 if half else 1) * dist**power))
    return sum(values) if reduce == "ordered_sum" else sum(values) / len(values)


def bf_effective_rank(h: np.ndarray, *, eps: float = 0.0) -> float:
    sigma = np.linalg.svd(h, compute_uv=False).tolist()
    tol = max(sigma) * max(h.shape) * np.finfo(np.float64).eps
    sigma = [s if s > tol else 0.0 for s in sigma]
    total = sum(sigma)
    entropy = 0.0
    for s in sigma:
        q = s / total + eps
        if q > 0:
            entropy -= q * math.log(q)
    return math.exp(entropy)


# ---- against the brute-force references -------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nc1_both_variants_match_explicit_loops(seed: int) -> None:
    emb, labels = clusters(seed)
    within, between = bf_covariances(emb, labels)
    c = len(SIZES)
    pinv = np.linalg.pinv(between, rcond=1e-10, hermitian=True)
    trace = sum(within[a][b] * pinv[b][a] for a in range(6) for b in range(6))
    assert nc1(emb, labels) == pytest.approx(trace / c, rel=1e-9)
    ratio = sum(within[a][a] for a in range(6)) / sum(between[a][a] for a in range(6))
    assert nc1_trace_ratio(emb, labels) == pytest.approx(ratio, rel=1e-12)
    stats = ClassStats.from_embeddings(emb, labels)
    np.testing.assert_allclose(
        within_class_covariance(stats).numpy(), within, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        between_class_covariance(stats).numpy(), between, rtol=1e-12, atol=1e-14
    )


def test_nc1_trace_ratio_streams_without_the_scatter_matrix() -> None:
    emb, labels = clusters(3, sizes=(20, 31, 12))
    stats = ClassStats.empty(5, 6, scatter=False)  # classes 3 and 4 never appear
    for part in torch.arange(len(labels)).split(7):
        stats.update(emb[part], labels[part])
    assert nc1_trace_ratio_from_stats(stats) == pytest.approx(
        nc1_trace_ratio(emb, labels), rel=1e-12
    )
    assert math.isnan(nc1_trace_ratio(emb[labels == 0], labels[labels == 0]))


@pytest.mark.parametrize("seed", [0, 1])
def test_cdnv_matches_an_explicit_pair_loop(seed: int) -> None:
    emb, labels = clusters(seed)
    assert cdnv(emb, labels) == pytest.approx(bf_cdnv(emb, labels), rel=1e-12)


def test_cdnv_conversions_stated_in_the_schema_hold() -> None:
    emb, labels = clusters(4)
    ours = cdnv(emb, labels)
    c = len(SIZES)
    assert bf_cdnv(emb, labels, reduce="ordered_sum") == pytest.approx(
        c * (c - 1) * ours, rel=1e-12
    )
    assert bf_cdnv(emb, labels, half=False) == pytest.approx(2 * ours, rel=1e-12)
    # N_c − 1: per class, (N_c − 1)/N_c turns their variance into ours
    g = groups(emb, labels)
    means = class_means(g)
    unbiased = {
        k: sum(dot(sub(h, means[k]), sub(h, means[k])) for h in g[k]) / (len(g[k]) - 1) for k in g
    }
    back = [
        ((len(g[i]) - 1) / len(g[i]) * unbiased[i] + (len(g[j]) - 1) / len(g[j]) * unbiased[j])
        / (2 * norm(sub(means[i], means[j])) ** 2)
        for i, j in itertools.combinations(g, 2)
    ]
    assert sum(back) / len(back) == pytest.approx(ours, rel=1e-12)
    equal, equal_labels = clusters(5, sizes=(8, 8, 8))  # equal sizes: one factor (n − 1)/n
    assert cdnv(equal, equal_labels) == pytest.approx(
        7 / 8 * bf_cdnv(equal, equal_labels, ddof=1), rel=1e-12
    )
    # a plain distance multiplies each pair by its distance: not a rescaling of the mean
    plain = bf_cdnv(emb, labels, power=1.0)
    per_pair = [
        bf_cdnv(emb[(labels == i) | (labels == j)], labels[(labels == i) | (labels == j)])
        * norm(sub(means[i], means[j]))
        for i, j in itertools.combinations(g, 2)
    ]
    assert plain == pytest.approx(sum(per_pair) / len(per_pair), rel=1e-12)


def test_nc2_statistics_match_explicit_pair_loops() -> None:
    emb, labels = clusters(6, sizes=(6, 11, 4, 9, 13))
    mc = list(centred(class_means(groups(emb, labels))).values())
    c = len(mc)
    norms = [norm(m) for m in mc]
    cos = [cosine(mc[i], mc[j]) for i, j in itertools.combinations(range(c), 2)]
    got = nc2(emb, labels)
    assert got["equinorm"] == pytest.approx(pstd(norms) / (sum(norms) / c), rel=1e-10)
    assert got["equiangularity"] == pytest.approx(pstd(cos), rel=1e-10)
    stats = ClassStats.from_embeddings(emb, labels, scatter=False)
    means = stats.mean - stats.mean.mean(dim=0)
    deviation = sum(abs(x + 1 / (c - 1)) for x in cos) / len(cos)
    assert nc2_etf_deviation(means) == pytest.approx(deviation, rel=1e-12)


def test_gnc2_matches_an_explicit_pair_loop() -> None:
    emb, labels = clusters(7, sizes=(6, 11, 4, 9, 13), dim=3)  # more classes than p + 1
    mc = list(centred(class_means(groups(emb, labels))).values())
    unit = [[x / norm(m) for x in m] for m in mc]
    kernel = [
        -math.log(norm(sub(unit[i], unit[j]))) for i, j in itertools.combinations(range(5), 2)
    ]
    got = gnc2(emb, labels)
    assert got["energy"] == pytest.approx(sum(kernel) / len(kernel), rel=1e-12)
    assert got["variance"] == pytest.approx(pstd(kernel) ** 2, rel=1e-10)


def test_nc3_and_unc3_match_explicit_loops() -> None:
    emb, labels = clusters(8)
    mc = list(centred(class_means(groups(emb, labels))).values())
    weight = torch.randn(len(SIZES), 6, dtype=F64, generator=torch.Generator().manual_seed(1))
    w = weight.tolist()
    w_norm = math.sqrt(sum(x * x for row in w for x in row))
    m_norm = math.sqrt(sum(x * x for row in mc for x in row))
    want = sum(
        (w[c][k] / w_norm - mc[c][k] / m_norm) ** 2 for c in range(len(SIZES)) for k in range(6)
    )
    assert nc3(emb, labels, weight) == pytest.approx(want, rel=1e-12)
    cos = [cosine(w[c], mc[c]) for c in range(len(SIZES))]
    assert unc3(emb, labels, weight) == pytest.approx(pstd(cos) / (sum(cos) / len(cos)), rel=1e-12)


def test_nc4_matches_a_per_sample_loop() -> None:
    emb, labels = clusters(9, noise=2.5)  # noisy enough that NCC and the classifier disagree
    logits = torch.randn(
        len(labels), len(SIZES), dtype=F64, generator=torch.Generator().manual_seed(2)
    )
    means = class_means(groups(emb, labels))
    disagree = 0
    for h, z in zip(emb.tolist(), logits.tolist(), strict=True):
        nearest = min(means, key=lambda c: norm(sub(h, means[c])))
        disagree += nearest != max(range(len(z)), key=lambda k: z[k])
    assert nc4(emb, labels, logits) == pytest.approx(disagree / len(labels), abs=1e-15)


@pytest.mark.parametrize("eps", [0.0, 1e-7])
def test_effective_rank_matches_a_reference_entropy(eps: float) -> None:
    emb, _ = clusters(10, dim=9)
    h = emb.numpy()
    assert effective_rank(emb, eps=eps) == pytest.approx(bf_effective_rank(h, eps=eps), rel=1e-10)
    centred_h = h - h.mean(axis=0)
    assert effective_rank(emb, centre=True, eps=eps) == pytest.approx(
        bf_effective_rank(centred_h, eps=eps), rel=1e-10
    )


def test_effective_rank_from_streamed_statistics_is_that_of_the_centred_embeddings() -> None:
    emb, labels = clusters(11, dim=9)
    stats = ClassStats.empty(6, 9)
    for part in torch.arange(len(labels)).split(8):
        stats.update(emb[part] + 100.0, labels[part])  # far from the origin
    assert effective_rank_from_stats(stats) == pytest.approx(
        effective_rank(emb, centre=True), rel=1e-9
    )


# ---- known answers ----------------------------------------------------------------------------


def simplex_etf(classes: int, dim: int, *, scale: float = 2.0, shift: float = 5.0) -> torch.Tensor:
    """Vertices of a regular simplex rotated into ``dim`` dimensions, scaled and shifted."""
    vertices = torch.eye(classes, dtype=F64) - 1.0 / classes
    rotation, _ = torch.linalg.qr(
        torch.randn(dim, classes, dtype=F64, generator=torch.Generator().manual_seed(3))
    )
    return scale * vertices @ rotation.T + shift


def test_a_perfect_simplex_etf_with_no_within_class_variance_is_fully_collapsed() -> None:
    c, dim = 5, 8
    means = simplex_etf(c, dim)
    labels = torch.tensor([k for k, n in enumerate((3, 7, 4, 9, 5)) for _ in range(n)])
    emb = means[labels]  # every sample at its class mean
    centred_means = means - means.mean(dim=0)
    assert cdnv(emb, labels) == 0.0
    assert nc1(emb, labels) == 0.0
    assert nc1_from_stats(ClassStats.from_embeddings(emb, labels)) == 0.0
    assert nc1_trace_ratio(emb, labels) == 0.0
    got = nc2(emb, labels)
    assert got["equinorm"] == pytest.approx(0.0, abs=1e-12)
    assert got["equiangularity"] == pytest.approx(0.0, abs=1e-12)
    assert got["etf_error"] == pytest.approx(0.0, abs=1e-12)
    mc = list(centred(class_means(groups(emb, labels))).values())
    for i, j in itertools.combinations(range(c), 2):
        assert cosine(mc[i], mc[j]) == pytest.approx(-1 / (c - 1), abs=1e-12)
    assert nc2_etf_deviation(centred_means) == pytest.approx(0.0, abs=1e-12)
    uniformity = gnc2(emb, labels)
    assert uniformity["energy"] == pytest.approx(-0.5 * math.log(2 * c / (c - 1)), abs=1e-12)
    assert uniformity["variance"] == pytest.approx(0.0, abs=1e-12)
    assert nc3(emb, labels, 3.0 * centred_means) == pytest.approx(0.0, abs=1e-24)
    assert unc3(emb, labels, 3.0 * centred_means) == pytest.approx(0.0, abs=1e-12)
    logits = (emb - means.mean(dim=0)) @ centred_means.T  # the classifier W = M, bias −W μ̄
    assert nc4(emb, labels, logits) == 0.0


def test_uniform_duality_ignores_per_class_scales_where_self_duality_does_not() -> None:
    means = simplex_etf(4, 6)
    labels = torch.arange(4).repeat_interleave(3)
    emb = means[labels] + 0.05 * torch.randn(12, 6, dtype=F64)
    centred_means = ClassStats.from_embeddings(emb, labels).mean
    centred_means = centred_means - centred_means.mean(dim=0)
    weight = torch.tensor([[0.5], [1.0], [2.0], [4.0]], dtype=F64) * centred_means
    assert unc3(emb, labels, weight) == pytest.approx(0.0, abs=1e-12)
    assert nc3(emb, labels, weight) > 0.1


def test_the_simplex_minimises_the_logarithmic_hyperspherical_energy() -> None:
    c, dim = 5, 6
    floor = -0.5 * math.log(2 * c / (c - 1))
    simplex = simplex_etf(c, dim, shift=0.0)
    assert gnc2_from_means(simplex)["energy"] == pytest.approx(floor, abs=1e-12)
    gen = torch.Generator().manual_seed(4)
    for _ in range(20):
        other = torch.randn(c, dim, dtype=F64, generator=gen)
        assert gnc2_from_means(other)["energy"] > floor
        nudged = simplex + 0.05 * torch.randn(c, dim, dtype=F64, generator=gen)
        assert gnc2_from_means(nudged)["energy"] > floor


@pytest.mark.parametrize("rank", [1, 3, 5])
def test_effective_rank_of_an_exact_rank_r_embedding(rank: int) -> None:
    gen = torch.Generator().manual_seed(rank)
    n, p = 40, 12
    u, _ = torch.linalg.qr(torch.randn(n, rank, dtype=F64, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(p, rank, dtype=F64, generator=gen))
    equal = 7.0 * u @ v.T  # r equal singular values
    assert effective_rank(equal) == pytest.approx(rank, rel=1e-12)
    skewed = torch.randn(n, rank, dtype=F64, generator=gen) @ torch.randn(
        rank, p, dtype=F64, generator=gen
    )
    assert effective_rank(skewed) <= rank + 1e-12
    if rank > 1:
        assert 1.0 < effective_rank(skewed) < rank


def test_effective_rank_from_statistics_of_an_exact_rank_r_embedding() -> None:
    gen = torch.Generator().manual_seed(5)
    n, p, rank = 45, 10, 4
    basis = torch.randn(n, rank, dtype=F64, generator=gen)
    u, _ = torch.linalg.qr(basis - basis.mean(dim=0))  # columns orthogonal to the ones vector
    v, _ = torch.linalg.qr(torch.randn(p, rank, dtype=F64, generator=gen))
    emb = 3.0 * u @ v.T + torch.randn(p, dtype=F64, generator=gen)  # centred: r equal σ
    labels = torch.arange(n) % 3
    stats = ClassStats.from_embeddings(emb, labels)
    assert effective_rank_from_stats(stats) == pytest.approx(rank, rel=1e-9)
    assert effective_rank(emb, centre=True) == pytest.approx(rank, rel=1e-12)
    assert effective_rank(emb) <= rank + 1 + 1e-12  # uncentred: the offset adds a direction
    assert effective_rank(torch.zeros(5, 3, dtype=F64)) == 0.0
