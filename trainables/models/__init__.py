"""The model registry: every model is an ``EmbeddingClassifier`` (``logits = head(embed(x))``).

Models, looked up by ``ModelConfig.name``:

- ``mlp``: flatten -> ``depth`` (2) ReLU hidden layers; p = width (256).
- ``convnet``: ``depth`` (5) conv-[BN]-ReLU layers, global average pool; p = width (128).
- ``vgg11``, ``vgg13``: CIFAR-style VGG-BN; p = 8 * width (512 at width 64).
- ``resnet18``, ``resnet50``: CIFAR or ImageNet stem; p = 8 * width (512) / 32 * width (2048).

Every model works in eval mode under ``torch.func`` transforms, with channels_last inputs
and under bf16 autocast. More models register with ``MODELS.add(name, factory)`` or, so
that checking a study's model name imports no torch, ``MODELS.add_lazy(name,
"module:factory")``; ``options=`` declares the option keys ``gcnc validate`` accepts (those
of :data:`trainables.models.preflight.OPTIONS`). Importing this package imports no model and
no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainables._lazy import lazy_exports
from trainables.config import ModelConfig
from trainables.models.preflight import OPTIONS
from trainables.registry import Registry

if TYPE_CHECKING:
    from trainables.models._base import EmbeddingClassifier
    from trainables.models._options import ModelFactory
    from trainables.models.convnet import ConvNet
    from trainables.models.mlp import MLP
    from trainables.models.resnet import ResNet
    from trainables.models.vgg import VGG

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

__getattr__ = lazy_exports(
    __name__,
    {
        "EmbeddingClassifier": "_base",
        "ModelFactory": "_options",
        "ConvNet": "convnet",
        "MLP": "mlp",
        "ResNet": "resnet",
        "VGG": "vgg",
    },
)

MODELS: Registry[ModelFactory] = Registry("model")
MODELS.add_lazy("mlp", "trainables.models.mlp:build_mlp", options=OPTIONS["mlp"])
MODELS.add_lazy("convnet", "trainables.models.convnet:build_convnet", options=OPTIONS["convnet"])
MODELS.add_lazy("vgg11", "trainables.models.vgg:build_vgg11", options=OPTIONS["vgg11"])
MODELS.add_lazy("vgg13", "trainables.models.vgg:build_vgg13", options=OPTIONS["vgg13"])
MODELS.add_lazy("resnet18", "trainables.models.resnet:build_resnet18", options=OPTIONS["resnet18"])
MODELS.add_lazy("resnet50", "trainables.models.resnet:build_resnet50", options=OPTIONS["resnet50"])


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
    from trainables.models._options import check_input_shape

    factory = MODELS.get(config.name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
    return factory(
        check_input_shape(input_shape),
        num_classes=num_classes,
        width=config.width,
        options=config.options,
    )
