"""scikit-learn's bundled 8x8 handwritten digits: offline, the quickstart's dataset."""

from __future__ import annotations

import torch

from trainables.config import DataConfig
from trainables.data import preflight
from trainables.data._base import Dataset
from trainables.data._split import Pools, build_dataset

TEST_FRACTION = 0.2
PIXEL_MAX = 16.0  # the digits' pixels are counts 0..16 of a 4x4 block


def load_digits(config: DataConfig) -> Dataset:
    """The UCI optical digits (1797 images, 10 classes) as ``(N, 1, 8, 8)`` images.

    Pixels are scaled to [0, 1] (``/16``), then normalised with the mean and std of the
    source classes' training images (all ten classes by default; never the target classes,
    whose pool gets the same constants). The train/test split is stratified, 80/20, seeded
    by ``config.split_seed``; by default every class is a source class.
    """
    from sklearn.datasets import load_digits as sklearn_digits  # slow import: load on use
    from sklearn.model_selection import train_test_split

    preflight.options(config)
    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images).to(torch.uint8).unsqueeze(1)  # (1797, 1, 8, 8)
    labels = torch.from_numpy(bunch.target).long()  # (1797,)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=TEST_FRACTION,
        stratify=labels.numpy(),
        random_state=config.split_seed,
    )
    train_idx = torch.from_numpy(train_idx).sort().values  # (1437,)
    test_idx = torch.from_numpy(test_idx).sort().values  # (360,)
    pools = Pools(
        train_x=images[train_idx],  # (1437, 1, 8, 8)
        train_y=labels[train_idx],
        test_x=images[test_idx],  # (360, 1, 8, 8)
        test_y=labels[test_idx],
        class_names=[str(d) for d in bunch.target_names],
        scale=PIXEL_MAX,
    )
    return build_dataset("digits", pools, config)  # normalisation fitted on the source classes
