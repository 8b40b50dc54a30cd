"""Building blocks shared by the convolutional models."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(
    in_channels: int, out_channels: int, *, batchnorm: bool = True, conv_bias: bool | None = None
) -> list[nn.Module]:
    """``3x3 conv (padding 1) -> [BatchNorm] -> ReLU``; the conv has a bias only without BN.

    ``conv_bias`` overrides that choice (torchvision's VGG keeps the bias before BN).
    ReLU is not in-place, so the stack works under ``torch.func`` transforms.
    """
    bias = not batchnorm if conv_bias is None else conv_bias
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    return layers


def global_pool() -> nn.Sequential:
    """Global average pooling to ``(B, C)``."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, C, H, W) -> (B, C)


def init_conv_bn(module: nn.Module) -> None:
    """He-normal (fan-out) conv weights, zero conv biases, BatchNorm at identity.

    He et al. 2015, "Delving deep into rectifiers"; the initialisation torchvision uses for
    its VGG and ResNet models. Linear layers keep PyTorch's default initialisation.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
