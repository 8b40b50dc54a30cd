"""What every model exposes: an embedding ``f`` and a linear head ``W f + b``, and the
measurable layers on the way to ``f`` (SPEC "Across depth")."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Block = Callable[[torch.Tensor], torch.Tensor]


class EmbeddingClassifier(nn.Module):
    """``logits = head(embed(x))`` with ``embed: R^d -> R^p`` the penultimate features.

    Subclasses set ``self.features`` (a module mapping images to ``(B, p)``) and call
    ``super().__init__(embed_dim, num_classes)`` first. A subclass with measurable layers
    overrides :meth:`blocks`; by default the embedding is the only one.
    """

    features: nn.Module

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.head = nn.Linear(embed_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, ``(B, C, H, W) -> (B, p)``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def blocks(self) -> list[tuple[str, Block]]:
        """The measurable layers, in order from the input: each a name and the map from the
        previous layer's output (the input, for the first) to this layer's. Run in turn they
        are :attr:`features`, op for op, so the last one's output is the embedding."""
        return [("embedding", self.features)]

    def layer_names(self) -> tuple[str, ...]:
        """The names of the measurable layers, from the input to the embedding."""
        return tuple(name for name, _ in self.blocks())

    def layer_outputs(self, x: torch.Tensor, *, upto: int | None = None) -> list[torch.Tensor]:
        """The outputs of layers ``1..upto`` (all by default) in one forward pass, each
        global-average-pooled where spatial: ``[(B, p_1), …]``; the last layer's is
        :meth:`embed`'s value."""
        blocks = self.blocks()
        outputs = []
        for _, block in blocks[: len(blocks) if upto is None else upto]:
            x = block(x)
            outputs.append(pooled(x))
        return outputs

    def layer_output(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """The pooled output ``(B, p_k)`` of layer ``layer`` (1-based), running only the
        layers up to it: the map whose input Jacobian is that layer's GC."""
        for _, block in self.blocks()[:layer]:
            x = block(x)
        return pooled(x)


def pooled(h: torch.Tensor) -> torch.Tensor:
    """A layer's output as ``(B, p)``: global average pooling of a map ``(B, C, H, W)``."""
    return h if h.dim() == 2 else F.adaptive_avg_pool2d(h, 1).flatten(1)


def chain(modules: Sequence[Block]) -> Block:
    """The map that applies ``modules`` in turn (one :meth:`EmbeddingClassifier.blocks` entry)."""
    modules = tuple(modules)

    def run(x: torch.Tensor) -> torch.Tensor:
        for module in modules:
            x = module(x)
        return x

    return run
