"""What every model exposes: an embedding ``f`` and a linear head ``W f + b``."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingClassifier(nn.Module):
    """``logits = head(embed(x))`` with ``embed: R^d -> R^p`` the penultimate features.

    Subclasses set ``self.features`` (a module mapping images to ``(B, p)``) and call
    ``super().__init__(embed_dim, num_classes)`` first.
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
