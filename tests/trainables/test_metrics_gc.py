"""Exact geometric complexity against per-sample, per-output autograd loops and known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainables.metrics import class_gc, gc_per_sample, geometric_complexity


def tiny_mlp(d: int = 6, p: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, p)).double()


def tiny_conv_bn(p: int = 5, seed: int = 0) -> nn.Module:
    """conv + BatchNorm + ReLU + pool + linear, with non-trivial running statistics."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, p),
    ).double()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].weight.uniform_(0.5, 1.5)
    return net.eval()


def brute_force_gc(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """||J_b||_F² sample by sample and output by output, each sample run alone."""
    values = []
    for b in range(len(x)):
        xb = x[b : b + 1].clone().requires_grad_(True)
        out = fn(xb)[0]
        total = torch.zeros((), dtype=torch.float64)
        for k in range(len(out)):
            (g,) = torch.autograd.grad(out[k], xb, retain_graph=True)
            total = total + g.double().square().sum()
        values.append(total)
    return torch.stack(values)


@pytest.mark.parametrize(
    ("net", "shape"), [(tiny_mlp(), (7, 6)), (tiny_conv_bn(), (5, 2, 6, 6))], ids=["mlp", "conv_bn"]
)
def test_exact_gc_matches_per_sample_autograd_loop(net: nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    reference = brute_force_gc(net, x)
    values = gc_per_sample(net, x, chunk_size=2)  # chunks smaller than p
    torch.testing.assert_close(values, reference, rtol=1e-12, atol=0)
    assert geometric_complexity(net, x) == pytest.approx(float(reference.mean()), rel=1e-12)


def test_linear_map_gc_is_squared_frobenius_norm_at_every_input() -> None:
    weight = torch.randn(5, 9, dtype=torch.float64)
    x = 100 * torch.randn(4, 9, dtype=torch.float64)
    values = gc_per_sample(lambda z: z @ weight.T + 3.0, x)
    torch.testing.assert_close(values, weight.square().sum().expand(4), rtol=1e-13, atol=0)


def test_gc_scales_as_inverse_square_of_input_scale() -> None:
    net, s = tiny_mlp(), 4.0
    x = torch.randn(6, 6, dtype=torch.float64)
    # g(z) = f(z / s) on inputs s·x: same outputs, Jacobian divided by s.
    scaled = geometric_complexity(lambda z: net(z / s), s * x)
    assert scaled == pytest.approx(geometric_complexity(net, x) / s**2, rel=1e-12)


def test_gc_of_float32_model_is_returned_in_float64() -> None:
    net = tiny_mlp()
    x = torch.randn(3, 6, dtype=torch.float64)
    values = gc_per_sample(net.float(), x.float())
    assert values.dtype == torch.float64
    torch.testing.assert_close(values, brute_force_gc(net.double(), x), rtol=1e-5, atol=0)


def test_gc_works_inside_no_grad_and_leaves_no_graph() -> None:
    net = tiny_mlp()
    x = torch.randn(3, 6, dtype=torch.float64)
    with torch.no_grad():
        values = gc_per_sample(net, x)
    assert not values.requires_grad
    torch.testing.assert_close(values, brute_force_gc(net, x), rtol=1e-12, atol=0)


def test_fn_with_wrong_output_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(B, p\)"):
        geometric_complexity(lambda z: z.sum(dim=1), torch.randn(3, 4))


def brute_force_gc_gradient(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of the mean per-sample ||J||² w.r.t. parameters, by double backprop loops."""
    net.zero_grad()
    total = torch.zeros((), dtype=torch.float64)
    for b in range(len(x)):
        xb = x[b : b + 1].clone().requires_grad_(True)
        out = net(xb)[0]
        for k in range(len(out)):
            (g,) = torch.autograd.grad(out[k], xb, create_graph=True)
            total = total + g.square().sum()
    (total / len(x)).backward()
    return grads(net)


def grads(net: nn.Module) -> list[torch.Tensor]:
    """Parameter gradients, zeros for parameters the loss does not reach."""
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize(
    ("net", "shape"), [(tiny_mlp(), (5, 6)), (tiny_conv_bn(), (4, 2, 6, 6))], ids=["mlp", "conv_bn"]
)
def test_create_graph_gives_the_double_backprop_gradient(
    net: nn.Module, shape: tuple[int, ...]
) -> None:
    x = torch.randn(*shape, dtype=torch.float64)
    reference = brute_force_gc_gradient(net, x)
    net.zero_grad()
    gc_per_sample(net, x, create_graph=True, chunk_size=3).mean().backward()
    for got, want in zip(grads(net), reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_train_mode_batchnorm_uses_the_sum_over_batch_convention() -> None:
    """In train mode sample b's row k is d(Σ_b' f(x)_b'k)/dx_b, couplings included."""
    net = tiny_conv_bn().train()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    out = net(xr)
    rows = [torch.autograd.grad(out[:, k].sum(), xr, create_graph=True)[0] for k in range(5)]
    reference = torch.stack(rows).square().sum(dim=(0, 2, 3, 4))  # (B,)
    net.zero_grad()
    reference.mean().backward()
    want = grads(net)
    net.zero_grad()
    values = gc_per_sample(net, x, create_graph=True)
    torch.testing.assert_close(values, reference.detach(), rtol=1e-12, atol=0)
    values.mean().backward()
    for got, expected in zip(grads(net), want, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_class_gc_averages_per_class_and_marks_empty_classes_nan() -> None:
    net = tiny_mlp()
    x = torch.randn(7, 6, dtype=torch.float64)
    labels = torch.tensor([0, 2, 2, 0, 0, 3, 2])
    values = class_gc(net, x, labels, num_classes=5)
    per_sample = brute_force_gc(net, x)
    for c in range(5):
        members = per_sample[labels == c]
        if len(members) == 0:
            assert math.isnan(values[c])
        else:
            assert float(values[c]) == pytest.approx(float(members.mean()), rel=1e-12)


def test_train_mode_projection_estimates_the_whole_batch_jacobian_norm() -> None:
    """With probes independent across samples, sample b's estimate has mean
    Σ_b' ||∂f(x)_b'/∂x_b||_F² (the couplings through batch statistics included)."""
    net = tiny_conv_bn().train()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    out = net(xr)  # (B, p)
    rows = [torch.autograd.grad(o, xr, retain_graph=True)[0] for o in out.flatten()]
    want = torch.stack(rows).square().sum(dim=(0, 2, 3, 4))  # (B,): Σ over b', k
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [gc_per_sample(net, x, estimator="projection", probes=4, generator=gen) for _ in range(300)]
    )
    se = draws.std(dim=0) / len(draws) ** 0.5
    assert ((draws.mean(dim=0) - want).abs() < 4 * se).all()
    exact = gc_per_sample(net, x)  # the batch-summed convention differs in train mode
    assert not torch.allclose(exact, want, rtol=1e-3)
