"""mini-ImageNet (Vinyals et al., 2016) with the class split of Ravi & Larochelle (2017).

``data_root`` holds one of two layouts:

- pickles: ``mini-imagenet-cache-{train,val,test}.pkl``, each a dict with ``image_data``
  (uint8 ``(N, 84, 84, 3)``) and ``class_dict`` (``{class name: [indices into image_data]}``);
- folders: ``{train,val,test}/<class>/*.jpg|jpeg|png``.

Original class ids are the sorted class names of ``train`` (0..63), then ``val`` (64..79),
then ``test`` (80..99). By default the source classes are the train split's and the target
classes the test split's. mini-ImageNet has no test images for its train classes, so the
source test set is a seeded hold-out of each source class. Pickles run code when read:
load only files you trust.
"""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from trainables.config import DataConfig
from trainables.data import preflight
from trainables.data._base import Dataset
from trainables.data._split import Pools, build_dataset
from trainables.data.normalization import MINI_IMAGENET_NORMALIZATION
from trainables.data.preflight import IMAGE_SUFFIXES, missing_files, resolve_classes

__all__ = ["MINI_IMAGENET_NORMALIZATION", "load_mini_imagenet"]

SPLITS = preflight.MINI_IMAGENET_SPLITS


def load_mini_imagenet(config: DataConfig) -> Dataset:
    """mini-ImageNet as ``(N, 3, size, size)`` images (``image_size`` 84, resized if needed).

    Options (defaults): ``holdout_fraction`` (1/6) of each source class's images form the
    source test set, drawn with ``config.split_seed``; ``image_size`` (84). Normalised with
    the published statistics of the train split (the 64 train classes, the default source
    classes; fixed, whatever the source classes).
    """
    opts = preflight.options(config)  # every value checked
    fraction = opts["holdout_fraction"]
    layout = _open_layout(config.data_root)
    names = {split: layout.class_names(split) for split in SPLITS}
    class_names = [n for split in SPLITS for n in names[split]]
    split_of = [split for split in SPLITS for _ in names[split]]
    n_train, n_test = len(names["train"]), len(names["test"])
    source, target = resolve_classes(
        config,
        len(class_names),
        default_source=range(n_train),
        default_target=range(len(class_names) - n_test, len(class_names)),
    )
    size = opts["image_size"]
    images = {c: layout.images(split_of[c], class_names[c], size) for c in source + target}
    pools = _holdout(images, class_names, set(source), fraction=fraction, seed=config.split_seed)
    pools.default_source, pools.default_target = source, target
    note = preflight.holdout_note(config.split_seed, fraction)
    return build_dataset(
        "mini_imagenet", pools, config, normalization=MINI_IMAGENET_NORMALIZATION, notes=[note]
    )


def _holdout(
    images: dict[int, np.ndarray],
    class_names: list[str],
    source: set[int],
    *,
    fraction: float,
    seed: int,
) -> Pools:
    """Pools with ``fraction`` of each source class held out as test images.

    A class's hold-out depends only on ``(seed, class id)``, not on which other classes are
    loaded. Target classes go to the training pool whole (their pool is train + test).
    """
    train, test = [], []
    for c, arr in images.items():
        n_test = round(fraction * len(arr)) if c in source else 0
        order = np.random.default_rng([seed, c]).permutation(len(arr))
        test.append((c, arr[np.sort(order[:n_test])]))
        train.append((c, arr[np.sort(order[n_test:])]))
    train_x, train_y = _stack(train)
    test_x, test_y = _stack(test)
    return Pools(train_x, train_y, test_x, test_y, class_names=class_names)


def _stack(parts: list[tuple[int, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.concatenate([a for _, a in parts]))  # (N, H, W, 3) uint8
    y = torch.cat([torch.full((len(a),), c, dtype=torch.int64) for c, a in parts])  # (N,)
    return x.permute(0, 3, 1, 2), y  # (N, 3, H, W) view


def _open_layout(data_root: str | None) -> _PickleLayout | _FolderLayout:
    root = None if data_root is None else Path(data_root).expanduser()
    layout = preflight.mini_imagenet_layout(root)
    if layout == "pickles":
        assert root is not None
        return _PickleLayout([root / f"mini-imagenet-cache-{split}.pkl" for split in SPLITS])
    if layout == "folders":
        assert root is not None
        return _FolderLayout([root / split for split in SPLITS])
    looked = [root] if root is not None else []
    raise FileNotFoundError(missing_files("mini_imagenet", looked, can_download=False))


class _PickleLayout:
    """``mini-imagenet-cache-<split>.pkl`` files, read whole (they hold the split's images)."""

    def __init__(self, paths: list[Path]) -> None:
        self._caches: dict[str, dict[str, Any]] = {}
        for split, path in zip(SPLITS, paths, strict=True):
            with path.open("rb") as f:
                self._caches[split] = pickle.load(f, encoding="latin1")

    def class_names(self, split: str) -> list[str]:
        return sorted(self._caches[split]["class_dict"])

    def images(self, split: str, name: str, size: int) -> np.ndarray:
        cache = self._caches[split]
        arr = np.asarray(cache["image_data"])[np.asarray(cache["class_dict"][name])]
        return arr if arr.shape[1:3] == (size, size) else _resize(arr, size)  # (n, H, W, 3)


class _FolderLayout:
    """``<split>/<class>/<image file>`` folders, decoded with PIL (in threads)."""

    def __init__(self, folders: list[Path]) -> None:
        self._folders = dict(zip(SPLITS, folders, strict=True))

    def class_names(self, split: str) -> list[str]:
        return sorted(d.name for d in self._folders[split].iterdir() if d.is_dir())

    def images(self, split: str, name: str, size: int) -> np.ndarray:
        folder = self._folders[split] / name
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"dataset 'mini_imagenet': no images in {folder}")
        with ThreadPoolExecutor() as pool:
            return np.stack(list(pool.map(lambda p: _read_image(p, size), files)))  # (n, H, W, 3)


def _read_image(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)  # (size, size, 3)


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    resized = [Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC) for a in arr]
    return np.stack([np.asarray(r, dtype=np.uint8) for r in resized])  # (n, size, size, 3)
