"""GC estimators: unbiased over many seeded draws, their variances, labels and options."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from trainables.metrics import ESTIMATORS, gc_estimator_label, gc_per_sample, make_estimator
from trainables.metrics.estimators import Linearization
from trainables.registry import UnknownNameError

DRAWS = 400


def tiny_conv_bn(p: int = 5) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, p),
    ).double()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def brute_force_jacobians(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Full per-sample Jacobians ``(B, p, d)``, each sample run alone."""
    jac = [torch.autograd.functional.jacobian(fn, x[b : b + 1]) for b in range(len(x))]
    return torch.stack([j.reshape(j.shape[1], -1) for j in jac])


NET = tiny_conv_bn()
X = torch.randn(4, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
EXACT = brute_force_jacobians(NET, X).square().sum(dim=(1, 2))  # (B,)

CASES = [
    ("batch", {"size": 2}),
    ("output_sample", {"k": 2}),
    ("mask", {"q": 0.3, "mode": "entries"}),
    ("mask", {"q": 0.3, "mode": "rows"}),
    ("mask", {"q": 0.2, "mode": "cols"}),
    ("projection", {"probes": 2, "dist": "gaussian"}),
    ("projection", {"probes": 2, "dist": "rademacher"}),
    ("projection", {"probes": 2, "dist": "sphere"}),
]


def draws(estimator: str, options: dict[str, Any], *, count: int = DRAWS) -> torch.Tensor:
    """``count`` independent seeded draws of the per-sample estimates, ``(count, B)``.

    Estimators that draw independently per sample get all draws from one call on ``count``
    stacked copies of the batch; batch sampling, whose draws couple samples, is called in
    a loop.
    """
    gen = torch.Generator().manual_seed(1234)
    if estimator == "batch":
        rows = [
            gc_per_sample(NET, X, estimator=estimator, generator=gen, **options)
            for _ in range(count)
        ]
        return torch.stack(rows)
    stacked = X.repeat(count, 1, 1, 1)  # copy r of sample b at row r·B + b
    values = gc_per_sample(NET, stacked, estimator=estimator, generator=gen, **options)
    return values.view(count, len(X))


@pytest.mark.parametrize(("estimator", "options"), CASES, ids=lambda v: str(v))
def test_estimator_is_unbiased_for_every_sample(estimator: str, options: dict[str, Any]) -> None:
    values = draws(estimator, options)
    mean, se = values.mean(dim=0), values.std(dim=0) / DRAWS**0.5
    assert (values.std(dim=0) > 0).all()  # it is random
    assert ((mean - EXACT).abs() <= 4 * se).all(), (mean, EXACT, se)
    batch_mean = values.mean(dim=1)
    batch_se = batch_mean.std() / DRAWS**0.5
    assert abs(float(batch_mean.mean() - EXACT.mean())) <= 4 * float(batch_se)


@pytest.mark.parametrize(
    ("estimator", "options"),
    [
        ("batch", {"size": 4}),
        ("output_sample", {"k": 5}),
        ("mask", {"q": 1.0, "mode": "entries"}),
        ("mask", {"q": 1, "mode": "rows"}),
        ("mask", {"q": 1.0, "mode": "cols", "chunk_size": 7}),
        ("exact", {"chunk_size": 1}),
    ],
    ids=lambda v: str(v),
)
def test_estimator_at_full_budget_is_exact(estimator: str, options: dict[str, Any]) -> None:
    values = gc_per_sample(NET, X, estimator=estimator, **options)
    torch.testing.assert_close(values, EXACT, rtol=1e-12, atol=0)


def test_sphere_probes_have_zero_variance_for_an_isometry() -> None:
    q, _ = torch.linalg.qr(torch.randn(7, 5, dtype=torch.float64))
    fn = nn.Linear(7, 5, bias=False).double()
    with torch.no_grad():
        fn.weight.copy_(q.T)  # orthonormal rows: J Jᵀ = I, so ||vᵀJ||² = ||v||²
    x = torch.randn(6, 7, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    sphere = gc_per_sample(fn, x, estimator="projection", probes=1, generator=gen)
    gaussian = gc_per_sample(
        fn, x, estimator="projection", probes=1, dist="gaussian", generator=gen
    )
    torch.testing.assert_close(sphere, torch.full((6,), 5.0, dtype=torch.float64))
    assert gaussian.std() > 0.5


def projection_variance(a: torch.Tensor, dist: str) -> torch.Tensor:
    """Variance of one probe's ||vᵀJ||² given A = J Jᵀ (Hutchinson estimator theory)."""
    p, tr, tr2 = a.shape[-1], a.diagonal().sum(), (a @ a).diagonal().sum()
    if dist == "gaussian":
        return 2 * tr2
    if dist == "rademacher":
        return 2 * (tr2 - a.diagonal().square().sum())
    return 2 * p / (p + 2) * (tr2 - tr**2 / p)


def test_projection_variances_follow_theory_and_sphere_is_lowest() -> None:
    jac = brute_force_jacobians(NET, X)
    gram = jac @ jac.transpose(1, 2)  # (B, p, p)
    theory = {
        d: torch.stack([projection_variance(a, d) for a in gram])
        for d in ("gaussian", "rademacher", "sphere")
    }
    assert (theory["sphere"] <= theory["gaussian"]).all()
    empirical = {
        d: draws("projection", {"probes": 1, "dist": d}, count=4000).var(dim=0) for d in theory
    }
    for d in theory:
        torch.testing.assert_close(empirical[d], theory[d], rtol=0.15, atol=0)
    assert empirical["sphere"].mean() < empirical["gaussian"].mean()


def test_masking_rows_computes_only_the_kept_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    net = nn.Linear(3, 40).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    seen: list[int] = []
    original = Linearization.vjp
    monkeypatch.setattr(
        Linearization, "vjp", lambda self, cot: seen.append(cot.shape[0]) or original(self, cot)
    )
    gc_per_sample(net, x, estimator="mask", q=0.25, mode="rows", chunk_size=100)
    assert 0 < sum(seen) < 40 // 2  # about q·p = 10 VJPs per sample, not p = 40


def test_projection_gradient_is_unbiased_for_the_regulariser() -> None:
    lin = nn.Linear(6, 4).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)
    grads = []
    for _ in range(300):
        lin.zero_grad()
        gc_per_sample(
            lin, x, estimator="projection", probes=1, create_graph=True, generator=gen
        ).mean().backward()
        grads.append(lin.weight.grad.clone())
    g = torch.stack(grads)
    z = (g.mean(dim=0) - 2 * lin.weight.detach()) / (g.std(dim=0) / len(g) ** 0.5)
    assert z.abs().max() < 4.5  # exact gradient of ||W||_F² is 2W


def test_same_generator_seed_gives_identical_estimates() -> None:
    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return gc_per_sample(NET, X, estimator="mask", q=0.5, generator=gen)

    torch.testing.assert_close(run(5), run(5), rtol=0, atol=0)
    assert not torch.equal(run(5), run(6))


def test_labels_are_canonical_with_every_value_and_sorted_keys() -> None:
    assert gc_estimator_label("exact", {}) == "exact"
    assert gc_estimator_label("exact", {"chunk_size": 8}) == "exact"
    assert gc_estimator_label("projection", {"probes": 64}) == "projection(dist=sphere,probes=64)"
    assert gc_estimator_label("mask", {"q": 1, "mode": "rows"}) == "mask(mode=rows,q=1.0)"
    assert gc_estimator_label("batch", {"size": 16, "chunk_size": 4}) == "batch(size=16)"
    assert gc_estimator_label("output_sample", None) == "output_sample(k=64)"


def test_registry_lists_every_estimator_and_unknown_names_fail_loudly() -> None:
    assert ESTIMATORS.names() == ["batch", "exact", "mask", "output_sample", "projection"]
    with pytest.raises(UnknownNameError, match="known: batch, exact, mask"):
        make_estimator("hutchinson")


@pytest.mark.parametrize(
    ("estimator", "options", "match"),
    [
        ("projection", {"probe": 3}, "unknown option"),
        ("projection", {"dist": "uniform"}, "dist"),
        ("projection", {"probes": 0}, "probes"),
        ("mask", {"q": 1.5}, "q <= 1"),
        ("mask", {"mode": "diagonal"}, "mode"),
        ("batch", {"size": -1}, "size"),
        ("exact", {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_options_are_rejected(estimator: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_estimator(estimator, options)
