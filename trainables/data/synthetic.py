"""Seeded class-conditional images for fast tests: a fixed prototype per class plus noise."""

from __future__ import annotations

import torch

from trainables.config import DataConfig
from trainables.data._base import Dataset
from trainables.data._split import Pools, build_dataset, fit_normalization, parse_options

DEFAULTS = {"n_classes": 10, "n_per_class": 40, "channels": 1, "image_size": 8, "noise": 0.25}
TEST_FRACTION = 0.2


def load_synthetic(config: DataConfig) -> Dataset:
    """``n_classes`` classes of ``n_per_class`` images ``(channels, image_size, image_size)``.

    Class ``c``'s images are its prototype (uniform in [0, 1]) plus Gaussian noise of std
    ``noise``, all drawn from ``config.split_seed``. The first 80% of each class are the
    training split, the rest the test split. Normalised with the training split's statistics.
    Options (defaults): n_classes (10), n_per_class (40), channels (1), image_size (8),
    noise (0.25).
    """
    opts = parse_options("synthetic", config.options, DEFAULTS)
    n_classes, n_per_class = _positive(opts, "n_classes"), _positive(opts, "n_per_class")
    size = _positive(opts, "image_size")
    shape = (_positive(opts, "channels"), size, size)
    noise = float(opts["noise"])
    if noise < 0:
        raise ValueError(f"data.options.noise must be >= 0; got {noise}")
    generator = torch.Generator().manual_seed(config.split_seed)
    prototypes = torch.rand((n_classes, *shape), generator=generator)  # (K, C, H, W)
    eps = torch.randn((n_classes, n_per_class, *shape), generator=generator)  # (K, n, C, H, W)
    images = prototypes.unsqueeze(1) + noise * eps  # (K, n, C, H, W)
    labels = torch.arange(n_classes).repeat_interleave(n_per_class).view(n_classes, n_per_class)
    n_train = n_per_class - round(TEST_FRACTION * n_per_class)
    pools = Pools(
        train_x=images[:, :n_train].reshape(-1, *shape),  # (K * n_train, C, H, W)
        train_y=labels[:, :n_train].reshape(-1),
        test_x=images[:, n_train:].reshape(-1, *shape),  # (K * (n - n_train), C, H, W)
        test_y=labels[:, n_train:].reshape(-1),
        class_names=[f"class_{c}" for c in range(n_classes)],
        scale=1.0,
    )
    normalization = fit_normalization(pools.train_x, scale=1.0)
    return build_dataset("synthetic", pools, config, normalization=normalization)


def _positive(opts: dict, key: str) -> int:
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"data.options.{key} must be a positive int; got {value!r}")
    return value
