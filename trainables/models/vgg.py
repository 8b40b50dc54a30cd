"""CIFAR-style VGG with BatchNorm (Simonyan & Zisserman 2015, configurations A and B).

``conv3x3 -> BN -> ReLU`` stages separated by 2x2 max-pools; the embedding is the feature map
after the last stage, flattened (p = 512 = 8 * width at the default width 64, on 32x32
inputs). Inputs of 17-31 px (28x28 MNIST-type) are zero-padded to 32 (SPEC §4). On small
inputs (8x8 digits) the pools that would take the map below 1x1 are skipped, and whatever
map remains (also on larger inputs such as 84x84) is global-average-pooled, so p = 8 * width
for every input size. The stage layout matches ``torchvision.models.vgg`` (``features.layers``
loads a torchvision ``vgg*_bn().features`` state dict). Its measurable layers are the five
blocks, ``block1`` … ``block5``: each block's convs and the max-pool that ends it
(global-average-pooled when measured; the pooled ``block5`` is the embedding).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from trainables.models import preflight
from trainables.models._base import Block, EmbeddingClassifier, chain
from trainables.models._layers import conv_bn_relu, global_pool, init_conv_bn
from trainables.models._options import check_input_shape
from trainables.models.preflight import resolve_width

DEFAULT_WIDTH = 64
# Channels at width 64; "M" is a 2x2 max-pool.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-13
}


def padding_for(model: str, input_hw: tuple[int, int], pad_to: Any) -> tuple[int, int, int, int]:
    """Zero padding ``(left, right, top, bottom)`` that brings ``(H, W)`` to ``pad_to``.

    ``pad_to="auto"`` pads sides of 17-31 px to 32 (28x28 -> 32x32, SPEC §4) and leaves other
    sizes alone; ``None`` never pads; an int pads both sides to that size.
    """
    h, w = input_hw
    if pad_to == "auto":
        pad_to = 32 if max(h, w) < 32 and min(h, w) > 16 else None
    if pad_to is None:
        return (0, 0, 0, 0)
    if isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < max(h, w):
        raise ValueError(
            f"model {model!r}: pad_to must be 'auto', null or an int >= the input size "
            f"{max(h, w)}; got {pad_to!r}"
        )
    top, left = (pad_to - h) // 2, (pad_to - w) // 2
    return (left, pad_to - w - left, top, pad_to - h - top)


def make_layers(
    config: list[int | str], *, in_channels: int, width: int, hw: tuple[int, int]
) -> nn.Sequential:
    """The conv stages; a pool that would shrink a map below 1x1 becomes an ``nn.Identity``.

    Identity keeps the module indices, hence the state-dict keys, of the full layout.
    """
    layers: list[nn.Module] = []
    h, w = hw
    for v in config:
        if v == "M":
            shrink = min(h, w) >= 2
            layers.append(nn.MaxPool2d(2) if shrink else nn.Identity())  # (B, c, h/2, w/2)
            h, w = (h // 2, w // 2) if shrink else (h, w)
        else:
            out_channels = int(v) * width // 64
            layers += conv_bn_relu(in_channels, out_channels, conv_bias=True)  # (B, c, h, w)
            in_channels = out_channels
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """``pad -> conv stages -> global average pool``: images to ``(B, 8 * width)``."""

    def __init__(
        self,
        config: str,
        input_shape: tuple[int, int, int],
        *,
        width: int,
        pad: tuple[int, int, int, int],
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        left, right, top, bottom = pad
        self.pad = nn.ZeroPad2d(pad) if any(pad) else nn.Identity()
        hw = (h + top + bottom, w + left + right)
        self.layers = make_layers(CONFIGS[config], in_channels=c, width=width, hw=hw)
        self.pool = global_pool()
        # index in ``layers`` after each block's max-pool (a conv adds 3 modules, a pool 1)
        sizes = [1 if v == "M" else 3 for v in CONFIGS[config]]
        ends = [sum(sizes[: i + 1]) for i, v in enumerate(CONFIGS[config]) if v == "M"]
        self.block_ends: tuple[int, ...] = tuple(ends)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pad(x)  # (B, C, H, W) -> (B, C, H', W')
        x = self.layers(x)  # (B, 8*width, h, w), h = w = 1 on 32x32 inputs
        return self.pool(x)  # (B, 8*width)

    def blocks(self) -> list[tuple[str, Block]]:
        """``block1`` … ``block5``: the pad goes with the first, the pool with the last."""
        starts = [0, *self.block_ends[:-1]]
        out: list[tuple[str, Block]] = []
        for i, (a, b) in enumerate(zip(starts, self.block_ends, strict=True)):
            modules = [*self.layers[a:b]]
            if i == 0:
                modules.insert(0, self.pad)
            if i == len(starts) - 1:
                modules.append(self.pool)
            out.append((f"block{i + 1}", chain(modules)))
        return out


class VGG(EmbeddingClassifier):
    """VGG with BatchNorm and a single linear head on the p = 8 * width embedding.

    Args:
        config: ``"A"`` (VGG-11) or ``"B"`` (VGG-13).
        input_shape: ``(C, H, W)`` of one image.
        num_classes: outputs of the linear head.
        width: channels of the first stage; every stage scales with it (64 is the original).
        pad: zero padding ``(left, right, top, bottom)`` applied to the input.
    """

    def __init__(
        self,
        config: str,
        input_shape: tuple[int, int, int],
        *,
        num_classes: int,
        width: int,
        pad: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> None:
        super().__init__(8 * width, num_classes)
        self.features = VGGFeatures(config, input_shape, width=width, pad=pad)
        init_conv_bn(self.features)

    def blocks(self) -> list[tuple[str, Block]]:
        return self.features.blocks()


def build_vgg11(
    input_shape: tuple[int, int, int],
    *,
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> VGG:
    """Factory for ``vgg11`` (configuration A); options: ``pad_to`` ("auto"). Width 64."""
    return _build("vgg11", "A", input_shape, num_classes=num_classes, width=width, options=options)


def build_vgg13(
    input_shape: tuple[int, int, int],
    *,
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> VGG:
    """Factory for ``vgg13`` (configuration B); options: ``pad_to`` ("auto"). Width 64."""
    return _build("vgg13", "B", input_shape, num_classes=num_classes, width=width, options=options)


def _build(
    name: str,
    config: str,
    input_shape: tuple[int, int, int],
    *,
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> VGG:
    opts = preflight.options(name, options)
    shape = check_input_shape(input_shape)
    return VGG(
        config,
        shape,
        num_classes=num_classes,
        width=resolve_width(name, width, DEFAULT_WIDTH),
        pad=padding_for(name, shape[1:], opts["pad_to"]),
    )
