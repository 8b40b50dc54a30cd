"""A small CPU-friendly conv-BN-ReLU network with global average pooling.

The network of SPEC §5's second measurement: 5 conv-BN-ReLU layers, global average
pooling, p = 128. Channels ramp up to ``width`` (32, 64, 64, 128, 128 at the defaults) and a
2x2 max-pool follows every second layer while the feature map is at least 4 px, so 8x8,
28x28 and 32x32 inputs all work and the large maps stay cheap. Its measurable layers are
``conv1`` … ``conv<depth>``: each conv-[BN]-ReLU's output, after the max-pool that follows it
where one does (global-average-pooled when measured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from trainables.models import preflight
from trainables.models._base import Block, EmbeddingClassifier, chain
from trainables.models._layers import conv_bn_relu, global_pool, init_conv_bn
from trainables.models._options import check_input_shape
from trainables.models.preflight import resolve_width

DEFAULT_WIDTH = 128


def layer_channels(width: int, depth: int) -> list[int]:
    """Output channels per layer: ``width / 2^k`` with k falling by one every two layers."""
    return [max(1, width >> ((depth - 1 - i) // 2)) for i in range(depth)]


class ConvNet(EmbeddingClassifier):
    """``(3x3 conv -> [BN] -> ReLU) x depth -> global average pool``; p = width.

    Args:
        input_shape: ``(C, H, W)`` of one image.
        num_classes: outputs of the linear head.
        width: channels of the last layer (= p).
        depth: number of conv layers.
        batchnorm: BatchNorm after every conv (convs then have no bias).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        *,
        num_classes: int,
        width: int,
        depth: int,
        batchnorm: bool,
    ) -> None:
        super().__init__(width, num_classes)
        in_channels, h, w = input_shape
        layers: list[nn.Module] = []
        self._layer_ends: list[int] = []  # index in features after each measurable layer
        for i, out_channels in enumerate(layer_channels(width, depth)):
            layers += conv_bn_relu(in_channels, out_channels, batchnorm=batchnorm)
            in_channels = out_channels
            if i % 2 == 1 and i < depth - 1 and min(h, w) >= 4:
                layers.append(nn.MaxPool2d(2))  # (B, c, h, w) -> (B, c, h/2, w/2)
                h, w = h // 2, w // 2
            self._layer_ends.append(len(layers))
        layers.append(global_pool())  # (B, width, h, w) -> (B, width)
        self._layer_ends[-1] = len(layers)  # the last layer ends with the pool: the embedding
        self.features = nn.Sequential(*layers)
        init_conv_bn(self.features)

    def blocks(self) -> list[tuple[str, Block]]:
        starts = [0, *self._layer_ends[:-1]]
        return [
            (f"conv{i + 1}", chain(self.features[a:b]))
            for i, (a, b) in enumerate(zip(starts, self._layer_ends, strict=True))
        ]


def build_convnet(
    input_shape: tuple[int, int, int],
    *,
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> ConvNet:
    """Factory for ``convnet``; options: ``depth`` (5), ``batchnorm`` (True). Width 128."""
    opts = preflight.options("convnet", options)
    return ConvNet(
        check_input_shape(input_shape),
        num_classes=num_classes,
        width=resolve_width("convnet", width, DEFAULT_WIDTH),
        depth=opts["depth"],  # checked
        batchnorm=opts["batchnorm"],
    )
