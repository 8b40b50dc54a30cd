"""The dataset registry: every loader returns a normalised, split ``Dataset``.

Datasets, looked up by ``DataConfig.name``:

- ``digits``: scikit-learn's bundled 8x8 digits (offline; the quickstart's default).
- ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``: torchvision's loaders over
  ``data.data_root`` (Fashion-MNIST also finds Debian's ``dataset-fashion-mnist`` files).
- ``cifar_fs``: CIFAR-100 split 64 source / 16 val / 20 target classes (seeded).
- ``mini_imagenet``: pickle or folder layout under ``data.data_root``, 64 / 16 / 20 classes.
- ``glyphs``: seeded stroke glyphs, many classes that share their strokes (offline; the
  transfer study with many source classes).
- ``fonts``: characters drawn by the font files on this machine, one font a "drawer", as in
  Omniglot: 106 classes of real images, offline (Debian's font packages).
- ``synthetic``: seeded prototype-plus-noise images for fast tests.

``data.source_classes`` / ``data.target_classes`` override a dataset's default split; source
labels are re-indexed ``0..n_source-1`` and target labels ``0..n_target-1``. A dataset's
normalisation is fixed (published constants) or fitted on its source classes' training images
only (:mod:`trainables.data.normalization`). Nothing here downloads unless ``data.download``
is true. More datasets register with ``DATASETS.add(name, loader)`` (or
``DATASETS.add_lazy(name, "module:loader")``), a loader being ``(DataConfig) -> Dataset``;
``options=`` declares its option keys (those of :data:`trainables.data.preflight.OPTIONS`),
so that ``gcnc validate`` refuses an unknown one.
Importing this package imports no loader and no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trainables._lazy import lazy_exports
from trainables.config import DataConfig
from trainables.data.preflight import OPTIONS
from trainables.registry import Registry

if TYPE_CHECKING:
    from trainables.data._base import Dataset
    from trainables.data.normalization import Normalization

__all__ = ["DATASETS", "Dataset", "Loader", "Normalization", "load_dataset"]

__getattr__ = lazy_exports(__name__, {"Dataset": "_base", "Normalization": "normalization"})

Loader = Callable[[DataConfig], "Dataset"]

DATASETS: Registry[Loader] = Registry("dataset")
DATASETS.add_lazy("digits", "trainables.data.digits:load_digits", options=OPTIONS["digits"])
DATASETS.add_lazy("mnist", "trainables.data.mnist:load_mnist", options=OPTIONS["mnist"])
DATASETS.add_lazy(
    "fashion_mnist", "trainables.data.mnist:load_fashion_mnist", options=OPTIONS["fashion_mnist"]
)
DATASETS.add_lazy("cifar10", "trainables.data.cifar:load_cifar10", options=OPTIONS["cifar10"])
DATASETS.add_lazy("cifar100", "trainables.data.cifar:load_cifar100", options=OPTIONS["cifar100"])
DATASETS.add_lazy("cifar_fs", "trainables.data.cifar:load_cifar_fs", options=OPTIONS["cifar_fs"])
DATASETS.add_lazy(
    "mini_imagenet",
    "trainables.data.mini_imagenet:load_mini_imagenet",
    options=OPTIONS["mini_imagenet"],
)
DATASETS.add_lazy(
    "synthetic", "trainables.data.synthetic:load_synthetic", options=OPTIONS["synthetic"]
)
DATASETS.add_lazy("glyphs", "trainables.data.glyphs:load_glyphs", options=OPTIONS["glyphs"])
DATASETS.add_lazy("fonts", "trainables.data.fonts:load_fonts", options=OPTIONS["fonts"])


def load_dataset(config: DataConfig) -> Dataset:
    """The dataset ``config.name`` names, split and normalised as ``config`` says.

    Raises:
        trainables.registry.UnknownNameError: for an unknown name (the message lists the known).
        FileNotFoundError: when the dataset's files are missing (the message says the fix).
        ValueError: for bad class ids or options (the message names the field).
    """
    return DATASETS.get(config.name)(config)
