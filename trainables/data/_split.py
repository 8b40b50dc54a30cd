"""What every loader shares: the source/target class split, subsampling and normalisation.

A loader reads its files into ``Pools`` (raw images with their original class ids) and calls
``build_dataset``, which picks the classes, re-indexes the labels, fits the normalisation on
the source classes' training images (unless the dataset's constants are fixed), subsamples the
source training set and normalises, in that order, copying the images once in their raw dtype
and once into float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from trainables.config import DataConfig
from trainables.data._base import Dataset
from trainables.data.normalization import SOURCE_TRAINING, Normalization
from trainables.data.preflight import empty_test_split, resolve_classes


@dataclass
class Pools:
    """The raw images of one dataset before the class split.

    ``train`` images of a class go to the source training set (or the target pool), ``test``
    images to the source test set (or the target pool). Images hold pixel values in
    ``[0, scale]``, in any dtype (uint8 for files on disk).
    """

    train_x: torch.Tensor  # (N_train, C, H, W), raw pixels
    train_y: torch.Tensor  # (N_train,) int64 original class ids
    test_x: torch.Tensor  # (N_test, C, H, W)
    test_y: torch.Tensor  # (N_test,)
    class_names: list[str]  # indexed by original class id
    scale: float = 255.0  # the pixel value of white
    default_source: list[int] | None = None  # None: every class
    default_target: list[int] = field(default_factory=list)


def build_dataset(
    name: str,
    pools: Pools,
    config: DataConfig,
    *,
    normalization: Normalization | None = None,
    notes: Sequence[str] = (),
) -> Dataset:
    """Split ``pools`` into source train/test and a target pool, normalised float32 tensors.

    Source labels become ``0..n_source-1`` and target labels ``0..n_target-1``, in the order
    of the resolved class lists. ``normalization`` None: fitted on the training images of the
    source classes alone (before subsampling, so a training budget leaves the inputs' scale as
    it is), and applied to the source test set and the target pool alike.
    ``config.max_train_per_class`` keeps that many source training images per class, and
    ``config.max_target_per_class`` that many images of each target class in the target pool,
    both drawn with ``config.split_seed``.

    Raises:
        DataConfigError: naming the option to change, when the source test split is empty.
    """
    n_classes = len(pools.class_names)
    source, target = resolve_classes(
        config,
        n_classes,
        default_source=pools.default_source,
        default_target=pools.default_target,
    )
    train_idx, train_y = _select(pools.train_y, source, n_classes)
    if normalization is None:  # source classes only: the target pool stands for unseen data
        normalization = fit_normalization(pools.train_x[train_idx], scale=pools.scale)
    if config.max_train_per_class is not None:
        keep = subsample_per_class(
            train_y, max_per_class=config.max_train_per_class, seed=config.split_seed
        )
        train_idx, train_y = train_idx[keep], train_y[keep]
    test_idx, test_y = _select(pools.test_y, source, n_classes)
    if len(test_idx) == 0:
        raise empty_test_split(name)
    norm = {"scale": pools.scale, "normalization": normalization}
    dataset = Dataset(
        name=name,
        train_x=normalize(pools.train_x[train_idx], **norm),  # (N_train, C, H, W)
        train_y=train_y,
        test_x=normalize(pools.test_x[test_idx], **norm),  # (N_test, C, H, W)
        test_y=test_y,
        class_names=list(pools.class_names),
        source_classes=source,
        normalization=normalization,
        target_classes=target,
        notes=list(notes),
    )
    if target:
        dataset.target_x, dataset.target_y = _target_pool(pools, target, norm, config)
    return dataset


def _target_pool(
    pools: Pools, target: list[int], norm: dict[str, Any], config: DataConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every train and test image of the target classes, or ``config.max_target_per_class``
    of each drawn with ``config.split_seed`` (subsampled before normalising: only the kept
    images are copied)."""
    n_classes = len(pools.class_names)
    train_idx, train_y = _select(pools.train_y, target, n_classes)
    test_idx, test_y = _select(pools.test_y, target, n_classes)
    labels = torch.cat([train_y, test_y])  # (N_target,)
    if config.max_target_per_class is not None:
        keep = subsample_per_class(
            labels, max_per_class=config.max_target_per_class, seed=config.split_seed
        )  # sorted: the kept train images first, then the kept test images
        n_train = len(train_idx)
        train_idx, test_idx = (
            train_idx[keep[keep < n_train]],
            test_idx[keep[keep >= n_train] - n_train],
        )
        labels = labels[keep]
    raw = torch.cat([pools.train_x[train_idx], pools.test_x[test_idx]])  # (N_target, C, H, W)
    return normalize(raw, **norm), labels


def _select(
    labels: torch.Tensor, classes: list[int], n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the samples of ``classes`` and their labels re-indexed to positions in it."""
    new_label = torch.full((n_classes,), -1, dtype=torch.int64)
    new_label[classes] = torch.arange(len(classes))
    relabelled = new_label[labels.long()]  # (N,)
    idx = torch.nonzero(relabelled >= 0).squeeze(1)  # (n,)
    return idx, relabelled[idx]


def subsample_per_class(labels: torch.Tensor, *, max_per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices keeping at most ``max_per_class`` samples of each label, seeded."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)  # (N,)
    shuffled = labels[order]
    # rank of each shuffled sample among the samples of its class
    by_class = torch.argsort(shuffled, stable=True)
    ranks = torch.empty_like(by_class)
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    ranks[by_class] = torch.arange(len(labels)) - starts[shuffled[by_class]]
    return torch.sort(order[ranks < max_per_class]).values


def normalize(x: torch.Tensor, *, scale: float, normalization: Normalization) -> torch.Tensor:
    """``(x / scale - mean) / std`` per channel, as a new contiguous float32 tensor."""
    channels = x.shape[1]
    if len(normalization.mean) != channels or len(normalization.std) != channels:
        raise ValueError(f"normalization has {len(normalization.mean)} channels; images {channels}")
    out = x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)  # (N, C, H, W)
    mean = torch.tensor(normalization.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(normalization.std, dtype=torch.float32).view(1, -1, 1, 1)
    return out.div_(scale).sub_(mean).div_(std)


def fit_normalization(x: torch.Tensor, *, scale: float) -> Normalization:
    """Per-channel mean and (population) std of ``x / scale``, accumulated in float64."""
    pixels = x.transpose(0, 1).reshape(x.shape[1], -1).to(torch.float64) / scale  # (C, N*H*W)
    mean = pixels.mean(dim=1)
    std = pixels.std(dim=1, correction=0)
    return Normalization(
        mean=tuple(mean.tolist()), std=tuple(std.tolist()), fitted_on=SOURCE_TRAINING
    )


def generated_dataset(
    name: str, images: torch.Tensor, config: DataConfig, *, n_train: int, class_prefix: str
) -> Dataset:
    """The ``Dataset`` of images drawn class by class, ``(K, n, C, H, W)``, pixel scale 1.

    The first ``n_train`` images of each class are its training split, the rest its test
    split; class ``c`` is named ``<class_prefix>_<c>``; normalised with the statistics of the
    source classes' training split.
    """
    n_classes, n_per_class, *shape = images.shape
    labels = torch.arange(n_classes).repeat_interleave(n_per_class).view(n_classes, n_per_class)
    pools = Pools(
        train_x=images[:, :n_train].reshape(-1, *shape),  # (K * n_train, C, H, W)
        train_y=labels[:, :n_train].reshape(-1),
        test_x=images[:, n_train:].reshape(-1, *shape),  # (K * (n - n_train), C, H, W)
        test_y=labels[:, n_train:].reshape(-1),
        class_names=[f"{class_prefix}_{c}" for c in range(n_classes)],
        scale=1.0,
    )
    return build_dataset(name, pools, config)
