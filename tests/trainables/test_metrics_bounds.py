"""NCC error and the train-side bounds (on the NCC test error and on the target few-shot
error): float64 brute force, known answers, and for each a case where the bound fails as well
as one where it holds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from trainables.metrics import (
    ClassStats,
    cdnv,
    class_gc,
    fewshot_error_bound,
    fewshot_error_bound_from,
    fewshot_ncc,
    geometric_collapse_from,
    ncc_error,
    ncc_error_bound,
    ncc_error_bound_from,
    poincare_ratio,
    training_variance,
)


def blobs(n_per: int, *, classes: int = 4, dim: int = 5, spread: float = 1.0, seed: int = 0):
    """Gaussian classes around centres fixed by ``classes`` and ``dim`` (not by ``seed``), so
    a training and a test set drawn with different seeds share the class distributions."""
    centres = 2 * torch.randn(classes, dim, dtype=torch.float64, generator=_gen(12345))
    labels = torch.arange(classes).repeat(n_per)
    noise = spread * torch.randn(len(labels), dim, dtype=torch.float64, generator=_gen(seed))
    return centres[labels] + noise, labels


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def brute_force_ncc_error(train, train_y, test, test_y) -> float:
    classes = sorted(set(train_y.tolist()))
    centres = {c: train[train_y == c].mean(dim=0) for c in classes}
    wrong = 0
    for h, y in zip(test, test_y.tolist(), strict=True):
        pred = min(classes, key=lambda c: float((h - centres[c]).square().sum()))
        wrong += pred != y
    return wrong / len(test_y)


def brute_force_bound(train: np.ndarray, train_y: np.ndarray) -> float:
    """``(1/C) Σ_i Σ_{j≠i} 4 Var_i / ||μ_i − μ_j||²`` from training data alone, in loops."""
    classes = sorted(set(train_y.tolist()))
    mu = {c: train[train_y == c].mean(axis=0) for c in classes}
    var = {c: np.mean(np.sum((train[train_y == c] - mu[c]) ** 2, axis=1)) for c in classes}
    total = 0.0
    for i in classes:
        for j in classes:
            if j != i:
                total += 4 * var[i] / np.sum((mu[i] - mu[j]) ** 2)
    return total / len(classes)


def test_ncc_error_matches_a_per_sample_loop() -> None:
    train, train_y = blobs(20, seed=1)
    test, test_y = blobs(15, seed=2, spread=2.0)
    got = ncc_error(train, train_y, test, test_y)
    assert got == pytest.approx(brute_force_ncc_error(train, train_y, test, test_y), abs=1e-15)
    assert 0 < got < 1


@pytest.mark.parametrize("seed", range(4))
def test_bound_matches_a_float64_brute_force_from_training_data(seed: int) -> None:
    train, train_y = blobs(25, classes=3 + seed, seed=seed, spread=1.5)
    got = ncc_error_bound(train.float(), train_y)  # float32 in, float64 inside
    want = brute_force_bound(train.float().double().numpy(), train_y.numpy())
    assert got == pytest.approx(want, rel=1e-12)


def test_bound_is_4_times_c_minus_1_times_cdnv() -> None:
    emb, labels = blobs(30, classes=5)
    assert ncc_error_bound(emb, labels) == pytest.approx(4 * (5 - 1) * cdnv(emb, labels), rel=1e-12)


def test_bound_known_answer_two_classes_on_a_line() -> None:
    emb = torch.tensor([[-1.0], [1.0], [9.0], [11.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])  # means 0 and 10, Var 1 each
    assert ncc_error_bound(emb, labels) == pytest.approx((4 * 1 / 100 + 4 * 1 / 100) / 2)


def test_bound_leaves_out_classes_without_a_spread_or_mean() -> None:
    means = torch.tensor([[0.0, 0.0], [5.0, 5.0], [2.0, 0.0]], dtype=torch.float64)
    spread = torch.tensor([1.0, math.nan, 3.0], dtype=torch.float64)
    assert ncc_error_bound_from(spread, means) == pytest.approx((4 * 1 / 4 + 4 * 3 / 4) / 2)
    assert math.isnan(ncc_error_bound_from(spread[:2], means[:2]))


def test_bound_fails_when_the_test_distribution_is_wider_than_the_training_one() -> None:
    train, train_y = blobs(50, spread=0.1, seed=1)  # tightly collapsed training classes
    test, test_y = blobs(50, spread=3.0, seed=2)  # same centres, 30 times the spread
    bound, error = ncc_error_bound(train, train_y), ncc_error(train, train_y, test, test_y)
    assert bound < 0.05 < 0.3 < error  # a train-side bound can fail: here it does


@pytest.mark.parametrize("seed", range(5))
def test_bound_holds_non_vacuously_when_test_and_training_classes_match(seed: int) -> None:
    train, train_y = blobs(200, spread=0.5, seed=seed)
    test, test_y = blobs(200, spread=0.5, seed=seed + 100)
    bound = ncc_error_bound(train, train_y)
    assert ncc_error(train, train_y, test, test_y) <= bound < 1


def brute_force_kappa(net: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    """``max_c Var_c / GC_c``: Jacobians one sample at a time, variances in numpy."""
    gc = [float(torch.autograd.functional.jacobian(net, xb).square().sum()) for xb in x]
    with torch.no_grad():
        emb = net(x).numpy()
    ratios = []
    for c in sorted(set(labels.tolist())):
        mask = (labels == c).numpy()
        var = np.mean(np.sum((emb[mask] - emb[mask].mean(axis=0)) ** 2, axis=1))
        ratios.append(var / np.mean(np.asarray(gc)[mask]))
    return max(ratios)


def test_poincare_ratio_matches_a_brute_force_on_a_small_network() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(18, 4, dtype=torch.float64)
    labels = torch.arange(3).repeat(6)
    with torch.no_grad():
        stats = ClassStats.from_embeddings(net(x), labels, scatter=False)
    gcs = class_gc(net, x, labels, num_classes=3)
    assert poincare_ratio(stats.variance, gcs) == pytest.approx(
        brute_force_kappa(net, x, labels), rel=1e-12
    )


def test_poincare_ratio_known_answer_for_a_linear_map() -> None:
    weight = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)  # ||W||_F² = 5
    v = torch.tensor([0.0, 1.0], dtype=torch.float64)  # ||W v||² = 4
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    scale = torch.tensor([1.0, 1.0, 3.0, 3.0], dtype=torch.float64)[:, None]
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)[:, None]
    labels = torch.tensor([0, 0, 1, 1])
    x = centres[labels] + sign * scale * v  # class deviations ±1·v and ±3·v
    emb = x @ weight.T
    stats = ClassStats.from_embeddings(emb, labels, scatter=False)
    gcs = class_gc(lambda z: z @ weight.T, x, labels, num_classes=2)  # 5 for both classes
    assert poincare_ratio(stats.variance, gcs) == pytest.approx(9 * 4 / 5)


def test_poincare_ratio_edge_cases() -> None:
    nan = math.nan
    assert poincare_ratio(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])) == math.inf
    assert poincare_ratio(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 4.0])) == 0.5
    assert math.isnan(poincare_ratio(torch.tensor([nan, 2.0]), torch.tensor([1.0, nan])))


def test_bound_through_geocol_is_4_c_minus_1_kappa_geocol_and_never_below_nc_bound() -> None:
    gen = _gen(3)
    means = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    var = torch.rand(5, dtype=torch.float64, generator=gen)
    gcs = torch.rand(5, dtype=torch.float64, generator=gen) + 0.1
    kappa = poincare_ratio(var, gcs)
    through = ncc_error_bound_from(kappa * gcs, means)
    assert through == pytest.approx(4 * 4 * kappa * geometric_collapse_from(gcs, means))
    assert through >= ncc_error_bound_from(var, means)


def brute_force_fewshot_bound(train: np.ndarray, train_y: np.ndarray, *, k: int, n: int) -> float:
    """``16 (k − 1)(1 + 1/n) · (1/(C(C−1))) Σ_{i≠j} (Var_i + Var_j) / (2||μ_i − μ_j||²)`` over
    ordered pairs of the source training classes, in loops."""
    classes = sorted(set(train_y.tolist()))
    total, pairs = 0.0, 0
    for i in classes:
        for j in classes:
            if j == i:
                continue
            xi, xj = train[train_y == i], train[train_y == j]
            mi, mj = xi.mean(axis=0), xj.mean(axis=0)
            var_i = np.mean(np.sum((xi - mi) ** 2, axis=1))
            var_j = np.mean(np.sum((xj - mj) ** 2, axis=1))
            total += (var_i + var_j) / (2 * np.sum((mi - mj) ** 2))
            pairs += 1
    return 16 * (k - 1) * (1 + 1 / n) * total / pairs


@pytest.mark.parametrize(("seed", "ways", "shots"), [(0, 5, 5), (1, 5, 1), (2, 3, 10), (3, 2, 5)])
def test_fewshot_bound_matches_a_float64_brute_force_from_source_training_data(seed, ways, shots):
    train, train_y = blobs(25, classes=4 + seed, seed=seed, spread=1.5)
    got = fewshot_error_bound(train.float(), train_y, ways=ways, shots=shots)
    want = brute_force_fewshot_bound(
        train.float().double().numpy(), train_y.numpy(), k=ways, n=shots
    )
    assert got == pytest.approx(want, rel=1e-12)


def test_fewshot_bound_known_answer_two_classes_on_a_line() -> None:
    emb = torch.tensor([[-1.0], [1.0], [9.0], [11.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])  # means 0 and 10, Var 1 each: CDNV = 2 / 200
    assert fewshot_error_bound(emb, labels, ways=5, shots=5) == pytest.approx(16 * 4 * 1.2 * 0.01)
    assert fewshot_error_bound_from(
        torch.zeros(2, dtype=torch.float64), torch.tensor([[0.0], [1.0]]), ways=5, shots=1
    ) == pytest.approx(0.0)


def classes_drawn(n_classes: int, n_per: int, *, spread: float, seed: int):
    """Gaussian classes whose centres are themselves drawn (``2·N(0, I)`` in 8 dimensions):
    source and target classes drawn with different seeds come from one class distribution,
    the transfer setting of Galanti et al."""
    gen = _gen(seed)
    centres = 2 * torch.randn(n_classes, 8, dtype=torch.float64, generator=gen)
    labels = torch.arange(n_classes).repeat(n_per)
    noise = spread * torch.randn(len(labels), 8, dtype=torch.float64, generator=gen)
    return centres[labels] + noise, labels


def fewshot_error(target: torch.Tensor, target_y: torch.Tensor) -> float:
    acc, _ = fewshot_ncc(target, target_y, ways=5, shots=5, queries=15, episodes=200, seed=0)
    return 1 - acc


def test_fewshot_bound_fails_when_new_classes_are_wider_than_the_source_training_ones() -> None:
    source, source_y = classes_drawn(20, 50, spread=0.05, seed=1)  # collapsed source classes
    target, target_y = classes_drawn(10, 40, spread=3.0, seed=2)  # new classes, 60x wider
    bound = fewshot_error_bound(source, source_y, ways=5, shots=5)
    assert bound < 0.1 < 0.3 < fewshot_error(target, target_y)  # a train-side bound can fail


@pytest.mark.parametrize("seed", range(3))
def test_fewshot_bound_holds_non_vacuously_when_new_classes_are_like_the_source_ones(seed):
    source, source_y = classes_drawn(20, 50, spread=0.1, seed=seed)
    target, target_y = classes_drawn(10, 40, spread=0.1, seed=seed + 100)
    bound = fewshot_error_bound(source, source_y, ways=5, shots=5)
    assert fewshot_error(target, target_y) <= bound < 1


def test_a_class_with_one_training_sample_has_no_variance_and_is_left_out() -> None:
    train, train_y = blobs(20, classes=4, seed=5)
    lone = torch.cat([train, torch.tensor([[50.0, 0, 0, 0, 0]], dtype=torch.float64)])
    lone_y = torch.cat([train_y, torch.tensor([4])])  # class 4: a single sample
    var = training_variance(ClassStats.from_embeddings(lone, lone_y, scatter=False))
    assert torch.isnan(var[4]) and not torch.isnan(var[:4]).any()
    assert ncc_error_bound(lone, lone_y) == pytest.approx(ncc_error_bound(train, train_y))
    assert fewshot_error_bound(lone, lone_y, ways=5, shots=5) == pytest.approx(
        fewshot_error_bound(train, train_y, ways=5, shots=5)
    )
    single = torch.arange(3)  # every class a single sample: no bound, not a bound of 0
    assert math.isnan(ncc_error_bound(train[:3], single))
    assert math.isnan(fewshot_error_bound(train[:3], single, ways=3, shots=5))


def test_ncc_error_of_an_empty_test_set_is_nan_and_without_training_samples_refused() -> None:
    train, train_y = blobs(5)
    empty, empty_y = train[:0], train_y[:0]
    assert math.isnan(ncc_error(train, train_y, empty, empty_y))
    with pytest.raises(ValueError, match="training samples"):
        ncc_error(empty, empty_y, train, train_y)
