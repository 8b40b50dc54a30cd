"""ResNet-18 and ResNet-50 (He et al. 2016, "Deep residual learning for image recognition").

Two stems: the CIFAR stem (3x3 conv, stride 1, no max-pool; SPEC §4) for inputs up to 64 px
and the ImageNet stem (7x7 conv, stride 2, then a 3x3 stride-2 max-pool) for larger ones
(84x84 mini-ImageNet); option ``stem`` = "auto" | "cifar" | "imagenet". Four stages of
BasicBlocks (ResNet-18) or Bottlenecks (ResNet-50, stride on the 3x3 conv as in torchvision),
then global average pooling: p = 8 * width * expansion (512 / 2048 at the default width 64).
Module names follow ``torchvision.models.resnet``, so a torchvision state dict loads into
``features`` (its ``fc`` into ``head``). Its measurable layers are the four stages,
``layer1`` … ``layer4`` (the stem goes with the first; global-average-pooled when measured;
the pooled ``layer4`` is the embedding).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from trainables.models import preflight
from trainables.models._base import Block, EmbeddingClassifier, chain
from trainables.models._layers import init_conv_bn
from trainables.models._options import check_input_shape
from trainables.models.preflight import choice, resolve_width

DEFAULT_WIDTH = 64
STEMS = preflight.STEMS
CIFAR_STEM_MAX_SIZE = 64  # "auto" picks the CIFAR stem up to this input size


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = shortcut(in_channels, planes * self.expansion, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H/s, W/s)
        out = self.bn2(self.conv2(out))  # (B, planes, H/s, W/s)
        return self.relu(out + self.downsample(x))  # no in-place add: torch.func-safe


class Bottleneck(nn.Module):
    """``1x1 reduce -> 3x3 (strided) -> 1x1 expand (x4)``, each with BN, plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = shortcut(in_channels, planes * self.expansion, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, planes, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4*planes, H/s, W/s)
        return self.relu(out + self.downsample(x))


def shortcut(in_channels: int, out_channels: int, *, stride: int) -> nn.Module:
    """Identity, or ``1x1 conv -> BN`` where the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class ResNetFeatures(nn.Module):
    """``stem -> layer1..layer4 -> global average pool``: images to ``(B, 8*width*expansion)``."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: tuple[int, int, int, int],
        *,
        in_channels: int,
        width: int,
        stem: str,
    ) -> None:
        super().__init__()
        cifar = stem == "cifar"
        self.conv1 = (
            conv3x3(in_channels, width)
            if cifar
            else nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        )
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, stride=2, padding=1)
        channels = width
        for i, n in enumerate(blocks):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            layer = []
            for j in range(n):
                layer.append(block(channels, planes, stride=stride if j == 0 else 1))
                channels = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, width, H/s, W/s)
        x = self.layer1(x)  # (B, width*e, h, w)
        x = self.layer2(x)  # (B, 2*width*e, h/2, w/2)
        x = self.layer3(x)  # (B, 4*width*e, h/4, w/4)
        x = self.layer4(x)  # (B, 8*width*e, h/8, w/8)
        return torch.flatten(self.avgpool(x), 1)  # (B, 8*width*e)

    def blocks(self) -> list[tuple[str, Block]]:
        """The four stages, op for op as :meth:`forward`: the stem goes with ``layer1``,
        the pool with ``layer4``."""
        stem = [self.conv1, self.bn1, self.relu, self.maxpool]
        return [
            ("layer1", chain([*stem, self.layer1])),
            ("layer2", self.layer2),
            ("layer3", self.layer3),
            ("layer4", chain([self.layer4, self.avgpool, lambda x: torch.flatten(x, 1)])),
        ]


class ResNet(EmbeddingClassifier):
    """A ResNet with a linear head on the globally pooled last stage.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        blocks: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        input_shape: ``(C, H, W)`` of one image.
        num_classes: outputs of the linear head.
        width: channels of the stem and first stage; stage i has ``width * 2^i`` planes.
        stem: ``"cifar"`` or ``"imagenet"``.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: tuple[int, int, int, int],
        input_shape: tuple[int, int, int],
        *,
        num_classes: int,
        width: int,
        stem: str,
    ) -> None:
        super().__init__(8 * width * block.expansion, num_classes)
        self.features = ResNetFeatures(
            block, blocks, in_channels=input_shape[0], width=width, stem=stem
        )
        init_conv_bn(self.features)

    def blocks(self) -> list[tuple[str, Block]]:
        return self.features.blocks()


def resolve_stem(model: str, stem: Any, input_shape: tuple[int, int, int]) -> str:
    """``"cifar"`` or ``"imagenet"``; ``"auto"`` picks by the input's larger side."""
    stem = choice(model, "stem", stem, STEMS)
    if stem == "auto":
        return "cifar" if max(input_shape[1:]) <= CIFAR_STEM_MAX_SIZE else "imagenet"
    return stem


def build_resnet18(
    input_shape: tuple[int, int, int],
    *,
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> ResNet:
    """Factory for ``resnet18``; options: ``stem`` ("auto"). Default width 64 (p = 512)."""
    return _build("resnet18", BasicBlock, (2, 2, 2, 2), input_shape, num_classes, width, options)


def build_resnet50(
    input_shape: tuple[int, int, int],
    *,
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> ResNet:
    """Factory for ``resnet50``; options: ``stem`` ("auto"). Default width 64 (p = 2048)."""
    return _build("resnet50", Bottleneck, (3, 4, 6, 3), input_shape, num_classes, width, options)


def _build(
    name: str,
    block: type[BasicBlock | Bottleneck],
    blocks: tuple[int, int, int, int],
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: int | None,
    options: Mapping[str, Any],
) -> ResNet:
    opts = preflight.options(name, options)
    shape = check_input_shape(input_shape)
    return ResNet(
        block,
        blocks,
        shape,
        num_classes=num_classes,
        width=resolve_width(name, width, DEFAULT_WIDTH),
        stem=resolve_stem(name, opts["stem"], shape),
    )
