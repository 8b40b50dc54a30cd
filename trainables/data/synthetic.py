"""Seeded class-conditional images for fast tests: a fixed prototype per class plus noise."""

from __future__ import annotations

import torch

from trainables.config import DataConfig
from trainables.data import preflight
from trainables.data._base import Dataset
from trainables.data._split import generated_dataset

TEST_FRACTION = 0.2


def load_synthetic(config: DataConfig) -> Dataset:
    """``n_classes`` classes of ``n_per_class`` images ``(channels, image_size, image_size)``.

    Class ``c``'s images are its prototype (uniform in [0, 1]) plus Gaussian noise of std
    ``noise``, all drawn from ``config.split_seed``. The first 80% of each class are the
    training split, the rest the test split. Normalised with the statistics of the source
    classes' training split (the target pool gets the same constants).
    Options (defaults): n_classes (10), n_per_class (40), channels (1), image_size (8),
    noise (0.25).
    """
    opts = preflight.options(config)  # every value checked
    n_classes, n_per_class, noise = opts["n_classes"], opts["n_per_class"], opts["noise"]
    shape = (opts["channels"], opts["image_size"], opts["image_size"])
    generator = torch.Generator().manual_seed(config.split_seed)
    prototypes = torch.rand((n_classes, *shape), generator=generator)  # (K, C, H, W)
    eps = torch.randn((n_classes, n_per_class, *shape), generator=generator)  # (K, n, C, H, W)
    images = prototypes.unsqueeze(1) + noise * eps  # (K, n, C, H, W)
    n_train = n_per_class - round(TEST_FRACTION * n_per_class)
    return generated_dataset("synthetic", images, config, n_train=n_train, class_prefix="class")
