"""CIFAR-10, CIFAR-100 and CIFAR-FS, read by ``torchvision.datasets`` from the python pickles.

``data_root`` holds ``cifar-10-batches-py/`` or ``cifar-100-python/`` (the extracted official
archives); torchvision checks their MD5 sums before reading them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from trainables.config import DataConfig
from trainables.data import preflight
from trainables.data._base import Dataset
from trainables.data._split import Pools, build_dataset
from trainables.data.normalization import (
    CIFAR10_NORMALIZATION,
    CIFAR100_NORMALIZATION,
    CIFAR_FS_NORMALIZATION,
)

if TYPE_CHECKING:
    from torchvision import datasets

__all__ = [
    "CIFAR10_NORMALIZATION",
    "CIFAR100_NORMALIZATION",
    "CIFAR_FS_NORMALIZATION",
    "cifar_fs_classes",
    "cifar_fs_notes",
    "load_cifar10",
    "load_cifar100",
    "load_cifar_fs",
]
CIFAR_FS_SIZES = (64, 16, 20)  # source / val / target classes (Bertinetto et al., 2019)


def load_cifar10(config: DataConfig) -> Dataset:
    """CIFAR-10: 50k/10k ``(N, 3, 32, 32)`` images of 10 classes, all source by default.

    Normalised with the published statistics of the 50k training images of all 10 classes
    (fixed, whatever the source classes).
    """
    from torchvision import datasets  # slow import: load on use

    preflight.options(config)
    pools = _pools("cifar10", datasets.CIFAR10, config)
    return build_dataset("cifar10", pools, config, normalization=CIFAR10_NORMALIZATION)


def load_cifar100(config: DataConfig) -> Dataset:
    """CIFAR-100 (fine labels): 50k/10k ``(N, 3, 32, 32)`` images, all 100 classes source.

    Normalised with the published statistics of the 50k training images of all 100 classes
    (fixed, whatever the source classes).
    """
    from torchvision import datasets  # slow import: load on use

    preflight.options(config)
    pools = _pools("cifar100", datasets.CIFAR100, config)
    return build_dataset("cifar100", pools, config, normalization=CIFAR100_NORMALIZATION)


def load_cifar_fs(config: DataConfig) -> Dataset:
    """CIFAR-FS: CIFAR-100 split into 64 source, 16 val and 20 target classes (SPEC 2.5).

    Source train/test are the CIFAR-100 train/test images of the source classes; the target
    pool is every image (train and test) of the target classes. The official class lists of
    Bertinetto et al. (2019) are not available offline, so the default split is the seeded
    ``cifar_fs_classes(config.split_seed)``, and ``Dataset.notes`` says so. Normalised with
    CIFAR-100's published statistics, which cover all 100 classes' training images, the
    target classes included (fixed, as CIFAR-FS work uses them).
    """
    from torchvision import datasets  # slow import: load on use

    preflight.options(config)
    pools = _pools("cifar_fs", datasets.CIFAR100, config)
    source, _, target = cifar_fs_classes(config.split_seed)
    pools.default_source, pools.default_target = source, target
    return build_dataset(
        "cifar_fs",
        pools,
        config,
        normalization=CIFAR_FS_NORMALIZATION,
        notes=cifar_fs_notes(config),
    )


def cifar_fs_notes(config: DataConfig) -> list[str]:
    """What ``load_cifar_fs`` notes on its dataset (read from no file)."""
    if config.source_classes is not None or config.target_classes is not None:
        return []
    _, val, _ = cifar_fs_classes(config.split_seed)
    return [
        f"CIFAR-FS classes: a seeded split (split_seed={config.split_seed}) of the 100 "
        f"CIFAR-100 classes into 64 source / 16 val / 20 target, not the official list of "
        f"Bertinetto et al. (2019); the val classes {val} are unused"
    ]


def cifar_fs_classes(seed: int) -> tuple[list[int], list[int], list[int]]:
    """CIFAR-100 class ids split 64 / 16 / 20 by a seeded permutation, each part sorted."""
    order = torch.randperm(sum(CIFAR_FS_SIZES), generator=torch.Generator().manual_seed(seed))
    parts = torch.split(order, CIFAR_FS_SIZES)
    source, val, target = (sorted(p.tolist()) for p in parts)
    return source, val, target


def _pools(name: str, cls: type[datasets.CIFAR10], config: DataConfig) -> Pools:
    missing = preflight.files_missing(config)
    if missing is not None:
        raise FileNotFoundError(missing)
    assert config.data_root is not None
    root = Path(config.data_root).expanduser()
    folder = root / cls.base_folder
    try:
        train = cls(str(root), train=True, download=config.download)
        test = cls(str(root), train=False)
    except RuntimeError as err:
        raise RuntimeError(
            f"dataset {name!r}: torchvision could not read {folder}: {err}; replace the files "
            f"with the extracted official archive ({cls.url})"
        ) from err
    return Pools(
        train_x=torch.from_numpy(train.data).permute(0, 3, 1, 2),  # (50000, 3, 32, 32) uint8
        train_y=torch.tensor(train.targets, dtype=torch.int64),  # (50000,)
        test_x=torch.from_numpy(test.data).permute(0, 3, 1, 2),  # (10000, 3, 32, 32) uint8
        test_y=torch.tensor(test.targets, dtype=torch.int64),  # (10000,)
        class_names=list(train.classes),
    )
