"""Random draws for the estimators, reproducible from an optional ``torch.Generator``.

Numbers are drawn on the device of ``like`` (where they are used). A generator on that device
is used directly; a generator elsewhere (a CPU generator for a CUDA model) seeds, with one
draw, a generator on ``like``'s device, so results stay reproducible from the caller's
generator without drawing millions of numbers on the CPU and copying them over. Without a
generator, the global generator of ``like``'s device is used.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _local(generator: torch.Generator | None, like: Tensor) -> torch.Generator | None:
    if generator is None or generator.device == like.device:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=like.device).manual_seed(seed)


def uniform(shape: tuple[int, ...], *, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Uniform on [0, 1), float64, on ``like``'s device."""
    gen = _local(generator, like)
    return torch.rand(shape, generator=gen, device=like.device, dtype=torch.float64)


def normal(shape: tuple[int, ...], *, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal, float64, on ``like``'s device."""
    gen = _local(generator, like)
    return torch.randn(shape, generator=gen, device=like.device, dtype=torch.float64)


def randperm(n: int, *, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """A random permutation of ``range(n)`` on ``like``'s device."""
    return torch.randperm(n, generator=_local(generator, like), device=like.device)
