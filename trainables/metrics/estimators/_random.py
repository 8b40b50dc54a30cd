"""Random draws for the estimators, reproducible from an optional ``torch.Generator``.

With a generator, numbers are drawn on the generator's device (a CPU generator gives the
same draws whatever device the model is on) and moved next to ``like``; without one, the
global generator of ``like``'s device is used.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _device(generator: torch.Generator | None, like: Tensor) -> torch.device:
    return generator.device if generator is not None else like.device


def uniform(shape: tuple[int, ...], *, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Uniform on [0, 1), float64, on ``like``'s device."""
    u = torch.rand(shape, generator=generator, device=_device(generator, like), dtype=torch.float64)
    return u.to(like.device)


def normal(shape: tuple[int, ...], *, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal, float64, on ``like``'s device."""
    dev = _device(generator, like)
    return torch.randn(shape, generator=generator, device=dev, dtype=torch.float64).to(like.device)


def randperm(n: int, *, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """A random permutation of ``range(n)`` on ``like``'s device."""
    return torch.randperm(n, generator=generator, device=_device(generator, like)).to(like.device)
