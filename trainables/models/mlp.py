"""A fully connected network on flattened images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from trainables.models import preflight
from trainables.models._base import Block, EmbeddingClassifier, chain
from trainables.models._options import check_input_shape
from trainables.models.preflight import resolve_width

DEFAULT_WIDTH = 256


class MLP(EmbeddingClassifier):
    """``flatten -> (Linear -> ReLU) x depth``; the embedding is the last hidden layer, p = width.

    Its measurable layers are the hidden layers, ``fc1`` … ``fc<depth>``.

    Args:
        input_shape: ``(C, H, W)`` of one image.
        num_classes: outputs of the linear head.
        width: units per hidden layer (= p).
        depth: number of hidden layers.
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, num_classes: int, width: int, depth: int
    ) -> None:
        super().__init__(width, num_classes)
        c, h, w = input_shape
        layers: list[nn.Module] = [nn.Flatten()]  # (B, C, H, W) -> (B, C*H*W)
        fan_in = c * h * w
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]  # (B, width)
            fan_in = width
        self.features = nn.Sequential(*layers)

    def blocks(self) -> list[tuple[str, Block]]:
        modules = list(self.features)  # flatten, then (Linear, ReLU) pairs
        first = [("fc1", chain(modules[:3]))]
        rest = [(f"fc{i // 2 + 1}", chain(modules[i : i + 2])) for i in range(3, len(modules), 2)]
        return first + rest


def build_mlp(
    input_shape: tuple[int, int, int],
    *,
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> MLP:
    """Factory for ``mlp``; options: ``depth`` (2). Default width 256."""
    opts = preflight.options("mlp", options)
    return MLP(
        check_input_shape(input_shape),
        num_classes=num_classes,
        width=resolve_width("mlp", width, DEFAULT_WIDTH),
        depth=opts["depth"],  # checked
    )
