"""Each dataset's normalisation: fixed published constants, or fitted on the source classes.

Torch-free, so that the driver records a study's constants (``study.json``) without
importing torch. A fitted normalisation is computed by the loader
(:func:`trainables.data._split.build_dataset`) from the training images of the source
classes only: target classes stand for unseen data and lend nothing to the source's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What a fitted normalisation is fitted on (Normalization.fitted_on).
SOURCE_TRAINING = (
    "fitted: per-channel mean and population std of the source classes' training images "
    "(pixels / scale, float64), before data.max_train_per_class subsampling; the target "
    "pool uses the same constants"
)


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x - mean) / std`` applied to inputs in [0, 1].

    GC scales as 1/s^2 with the input scale s, so this is recorded with every study.
    ``fitted_on`` says where the constants come from (it takes no part in equality).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    fitted_on: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, list[float] | str]:
        return {"mean": list(self.mean), "std": list(self.std), "fitted_on": self.fitted_on}


def _published(what: str) -> str:
    return f"fixed: the published mean and std of {what}, pixels in [0, 1]"


# Mean and std of the training images' pixels in [0, 1], as used across the literature.
MNIST_NORMALIZATION = Normalization(
    mean=(0.1307,),
    std=(0.3081,),
    fitted_on=_published("MNIST's 60k training images (all 10 classes)"),
)
FASHION_MNIST_NORMALIZATION = Normalization(
    mean=(0.2860,),
    std=(0.3530,),
    fitted_on=_published("Fashion-MNIST's 60k training images (all 10 classes)"),
)
CIFAR10_NORMALIZATION = Normalization(
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    fitted_on=_published("CIFAR-10's 50k training images (all 10 classes)"),
)
_CIFAR100_MEAN, _CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR100_NORMALIZATION = Normalization(
    mean=_CIFAR100_MEAN,
    std=_CIFAR100_STD,
    fitted_on=_published("CIFAR-100's 50k training images (all 100 classes)"),
)
CIFAR_FS_NORMALIZATION = Normalization(
    mean=_CIFAR100_MEAN,
    std=_CIFAR100_STD,
    fitted_on=_published(
        "CIFAR-100's 50k training images (all 100 classes, the CIFAR-FS target classes "
        "included), as CIFAR-FS work uses them"
    ),
)
# Pixel mean and std of mini-ImageNet's train split, as in Lee et al. (2019, MetaOptNet).
MINI_IMAGENET_NORMALIZATION = Normalization(
    mean=(120.39586422 / 255, 115.59361427 / 255, 104.54012653 / 255),
    std=(70.68188272 / 255, 68.27635443 / 255, 72.54505529 / 255),
    fitted_on=_published(
        "mini-ImageNet's train split (its 64 train classes, the default source classes; "
        "Lee et al., 2019)"
    ),
)

# The datasets whose constants are fixed; every other dataset's are fitted (SOURCE_TRAINING).
FIXED: dict[str, Normalization] = {
    "mnist": MNIST_NORMALIZATION,
    "fashion_mnist": FASHION_MNIST_NORMALIZATION,
    "cifar10": CIFAR10_NORMALIZATION,
    "cifar100": CIFAR100_NORMALIZATION,
    "cifar_fs": CIFAR_FS_NORMALIZATION,
    "mini_imagenet": MINI_IMAGENET_NORMALIZATION,
}
