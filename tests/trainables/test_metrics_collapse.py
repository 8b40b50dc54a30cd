"""Geometric collapse against an explicit autograd and pair loop, and a linear known answer."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from trainables.metrics import geometric_collapse, geometric_collapse_from


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
