"""The model registry: every model is an ``EmbeddingClassifier`` (``logits = head(embed(x))``).

Models, looked up by ``ModelConfig.name``:

- ``mlp``: flatten -> ``depth`` (2) ReLU hidden layers; p = width (256).
- ``convnet``: ``depth`` (5) conv-[BN]-ReLU layers, global average pool; p = width (128).
- ``vgg11``, ``vgg13``: CIFAR-style VGG-BN; p = 8 * width (512 at width 64).
- ``resnet18``, ``resnet50``: CIFAR or ImageNet stem; p = 8 * width (512) / 32 * width (2048).

Every model works in eval mode under ``torch.func`` transforms, with channels_last inputs
and under bf16 autocast. More models register with ``MODELS.add(name, factory)``.
"""

from __future__ import annotations

from trainables.config import ModelConfig
from trainables.models._base import EmbeddingClassifier
from trainables.models._options import ModelFactory, check_input_shape
from trainables.models.convnet import ConvNet, build_convnet
from trainables.models.mlp import MLP, build_mlp
from trainables.models.resnet import ResNet, build_resnet18, build_resnet50
from trainables.models.vgg import VGG, build_vgg11, build_vgg13
from trainables.registry import Registry

__all__ = [
    "MLP",
    "MODELS",
    "VGG",
    "ConvNet",
    "EmbeddingClassifier",
    "ModelFactory",
    "ResNet",
    "build_model",
]

MODELS: Registry[ModelFactory] = Registry("model")
MODELS.add("mlp", build_mlp)
MODELS.add("convnet", build_convnet)
MODELS.add("vgg11", build_vgg11)
MODELS.add("vgg13", build_vgg13)
MODELS.add("resnet18", build_resnet18)
MODELS.add("resnet50", build_resnet50)


def build_model(
    config: ModelConfig, *, input_shape: tuple[int, int, int], num_classes: int
) -> EmbeddingClassifier:
    """Build ``config.name`` for images of ``input_shape = (C, H, W)`` and ``num_classes``.

    The weights depend only on the torch seed in force (seed before calling).

    Raises:
        trainables.registry.UnknownNameError: unknown model name (the message lists the known).
        ValueError: an unknown option key, a bad option value, a bad ``input_shape`` or
            ``num_classes``.
    """
    factory = MODELS.get(config.name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
    return factory(
        check_input_shape(input_shape),
        num_classes=num_classes,
        width=config.width,
        options=config.options,
    )
