"""The dataset registry: every loader returns a normalised, split ``Dataset``.

Datasets, looked up by ``DataConfig.name``:

- ``digits``: scikit-learn's bundled 8x8 digits (offline; the quickstart's default).
- ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``: torchvision's loaders over
  ``data.data_root`` (Fashion-MNIST also finds Debian's ``dataset-fashion-mnist`` files).
- ``cifar_fs``: CIFAR-100 split 64 source / 16 val / 20 target classes (seeded).
- ``mini_imagenet``: pickle or folder layout under ``data.data_root``, 64 / 16 / 20 classes.
- ``synthetic``: seeded prototype-plus-noise images for fast tests.

``data.source_classes`` / ``data.target_classes`` override a dataset's default split; source
labels are re-indexed ``0..n_source-1`` and target labels ``0..n_target-1``. Nothing here
downloads unless ``data.download`` is true. More datasets register with
``DATASETS.add(name, loader)``, a loader being ``(DataConfig) -> Dataset``.
"""

from __future__ import annotations

from collections.abc import Callable

from trainables.config import DataConfig
from trainables.data._base import Dataset, Normalization
from trainables.data.cifar import load_cifar10, load_cifar100, load_cifar_fs
from trainables.data.digits import load_digits
from trainables.data.mini_imagenet import load_mini_imagenet
from trainables.data.mnist import load_fashion_mnist, load_mnist
from trainables.data.synthetic import load_synthetic
from trainables.registry import Registry

__all__ = ["DATASETS", "Dataset", "Loader", "Normalization", "load_dataset"]

Loader = Callable[[DataConfig], Dataset]

DATASETS: Registry[Loader] = Registry("dataset")
DATASETS.add("digits", load_digits)
DATASETS.add("mnist", load_mnist)
DATASETS.add("fashion_mnist", load_fashion_mnist)
DATASETS.add("cifar10", load_cifar10)
DATASETS.add("cifar100", load_cifar100)
DATASETS.add("cifar_fs", load_cifar_fs)
DATASETS.add("mini_imagenet", load_mini_imagenet)
DATASETS.add("synthetic", load_synthetic)


def load_dataset(config: DataConfig) -> Dataset:
    """The dataset ``config.name`` names, split and normalised as ``config`` says.

    Raises:
        trainables.registry.UnknownNameError: for an unknown name (the message lists the known).
        FileNotFoundError: when the dataset's files are missing (the message says the fix).
        ValueError: for bad class ids or options (the message names the field).
    """
    return DATASETS.get(config.name)(config)
