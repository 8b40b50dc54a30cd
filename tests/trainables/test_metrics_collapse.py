"""Geometric collapse against an explicit autograd and pair loop, a linear known answer, and
the class-stratified sample its class GCs are measured on."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from trainables.config import DataConfig, MetricsConfig
from trainables.data import load_dataset
from trainables.evaluate import make_plan
from trainables.metrics import (
    class_stratified_sample,
    geometric_collapse,
    geometric_collapse_from,
)


def brute_force_geometric_collapse(fn: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    per_sample = []
    for b in range(len(x)):
        xb = x[b : b + 1].clone().requires_grad_(True)
        out = fn(xb)[0]
        rows = [torch.autograd.grad(out[k], xb, retain_graph=True)[0] for k in range(len(out))]
        per_sample.append(sum(float(r.square().sum()) for r in rows))
    with torch.no_grad():
        emb = fn(x)
    classes = sorted(set(labels.tolist()))
    gc = {
        c: sum(v for v, y in zip(per_sample, labels.tolist(), strict=True) if y == c)
        / int((labels == c).sum())
        for c in classes
    }
    mean = {c: emb[labels == c].mean(dim=0) for c in classes}
    ratios = [
        (gc[i] + gc[j]) / (2 * float((mean[i] - mean[j]).square().sum()))
        for i, j in itertools.combinations(classes, 2)
    ]
    return sum(ratios) / len(ratios)


def test_geometric_collapse_matches_explicit_loops() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = torch.randn(12, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 3, 0, 1, 3, 3, 0, 1, 1, 0, 3])  # class 2 has no samples
    got = geometric_collapse(net, x, labels, num_classes=4, chunk_size=2)
    assert got == pytest.approx(brute_force_geometric_collapse(net, x, labels), rel=1e-12)
    assert geometric_collapse(net, x, labels) == pytest.approx(got, rel=1e-14)


def test_linear_map_geometric_collapse_uses_the_same_gc_for_every_class() -> None:
    weight = torch.randn(4, 6, dtype=torch.float64)
    means_in = 5 * torch.randn(3, 6, dtype=torch.float64)
    labels = torch.arange(3).repeat(4)
    x = means_in[labels] + torch.randn(12, 6, dtype=torch.float64)
    fn = lambda z: z @ weight.T  # noqa: E731
    emb = fn(x)
    means = torch.stack([emb[labels == c].mean(dim=0) for c in range(3)])
    inv = [1 / float((means[i] - means[j]).square().sum()) for i, j in [(0, 1), (0, 2), (1, 2)]]
    want = float(weight.square().sum()) * sum(inv) / 3
    assert geometric_collapse(fn, x, labels) == pytest.approx(want, rel=1e-12)


def test_geometric_collapse_from_leaves_out_classes_with_nan_gc_or_mean() -> None:
    gc = torch.tensor([1.0, math.nan, 3.0, 5.0], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0], [9.0, 9.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    want = ((1 + 3) / (2 * 1) + (1 + 5) / (2 * 4) + (3 + 5) / (2 * 5)) / 3
    assert geometric_collapse_from(gc, means) == pytest.approx(want, rel=1e-15)
    gc[1] = 7.0  # a class measured for GC but without a class mean is left out as well
    means[1] = math.nan
    assert geometric_collapse_from(gc, means) == pytest.approx(want, rel=1e-15)
    assert math.isnan(geometric_collapse_from(gc[:2], means[:2]))


def _per_class(labels: torch.Tensor, idx: torch.Tensor) -> list[int]:
    return torch.bincount(labels[idx], minlength=int(labels.max()) + 1).tolist()


def test_stratified_sample_gives_every_class_the_minimum_or_all_it_has() -> None:
    gen = torch.Generator().manual_seed(0)
    sizes = [3, 40, 100, 7]  # classes 0 and 3 have fewer than the minimum
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    labels = labels[torch.randperm(len(labels), generator=gen)]
    idx = class_stratified_sample(labels, total=40, min_per_class=10, generator=gen)
    assert idx.tolist() == sorted(set(idx.tolist()))  # sorted, no repeats
    # Served smallest first: 3 and 7 give all they have, 40 - 10 left for the other two.
    assert _per_class(labels, idx) == [3, 15, 15, 7]
    assert all(k >= min(10, n) for k, n in zip(_per_class(labels, idx), sizes, strict=True))


def test_stratified_sample_spreads_the_total_evenly_and_the_minimum_wins_over_it() -> None:
    labels = torch.arange(10).repeat(60)
    even = class_stratified_sample(labels, total=512, min_per_class=16)
    assert len(even) == 512 and set(_per_class(labels, even)) == {51, 52}
    floor = class_stratified_sample(labels, total=32, min_per_class=16)
    assert _per_class(labels, floor) == [16] * 10  # 160 > 32: the minimum wins


def test_stratified_sample_is_reproducible_from_its_generator() -> None:
    labels = torch.arange(5).repeat(30)
    draw = lambda s: class_stratified_sample(  # noqa: E731
        labels, total=40, min_per_class=4, generator=torch.Generator().manual_seed(s)
    )
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))


def test_the_evaluation_plan_measures_gc_on_a_stratified_sample() -> None:
    data = load_dataset(
        DataConfig(name="synthetic", options={"n_classes": 6, "n_per_class": 20, "image_size": 8})
    )
    cfg = MetricsConfig(gc_batches=1, gc_batch_size=8, gc_min_per_class=5)
    per_class = _per_class(data.train_y, make_plan(data, cfg).gc_idx)
    assert len(per_class) == data.num_classes and min(per_class) >= 5
