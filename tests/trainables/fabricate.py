"""Tiny dataset files in the real on-disk formats, written without the loaders' code.

Every image carries its own id in its first pixels (``identity``), so a test can tell which
file image ended up where after splitting and normalising.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def images(n: int, shape: tuple[int, ...], *, seed: int, first_id: int = 0) -> np.ndarray:
    """Random uint8 images ``(n, *shape)`` whose first two values are ``id // 256, id % 256``."""
    out = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    flat = out.reshape(n, -1)
    ids = np.arange(first_id, first_id + n)
    flat[:, 0], flat[:, 1] = ids // 256, ids % 256
    return out


def identity(raw: np.ndarray) -> np.ndarray:
    """The ids written by ``images`` (pass the images in their file layout)."""
    flat = raw.reshape(len(raw), -1).astype(np.int64)
    return flat[:, 0] * 256 + flat[:, 1]


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """A uint8 array in the IDX format of LeCun et al.: magic 0x0000_08_<ndim>, dims, data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def mnist(folder: Path, *, per_class: int = 3, gz: bool = False) -> dict[str, np.ndarray]:
    """The four MNIST IDX files in ``folder``: ``per_class`` train and test images of 10 classes.

    Labels are shuffled (not grouped by class) as in the real files.
    """
    arrays = {}
    for split, seed in (("train", 1), ("test", 2)):
        labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(10), per_class))
        first = 0 if split == "train" else 10 * per_class
        arrays[f"{split}_images"] = images(len(labels), (28, 28), seed=seed, first_id=first)
        arrays[f"{split}_labels"] = labels.astype(np.uint8)
    for key, name in MNIST_FILES.items():
        write_idx(folder / name, arrays[key], gz=gz)
    return arrays


def cifar10(root: Path, *, per_class: int = 2) -> dict[str, np.ndarray]:
    """``root/cifar-10-batches-py``: five train batches, a test batch and ``batches.meta``."""
    folder = root / "cifar-10-batches-py"
    train_y = np.random.default_rng(3).permutation(np.repeat(np.arange(10), 5 * per_class))
    test_y = np.random.default_rng(4).permutation(np.repeat(np.arange(10), per_class))
    train_x = images(len(train_y), (3, 32, 32), seed=3)
    test_x = images(len(test_y), (3, 32, 32), seed=4, first_id=len(train_y))
    for b, part in enumerate(np.array_split(np.arange(len(train_y)), 5), start=1):
        _pickle(folder / f"data_batch_{b}", _batch(train_x[part], train_y[part], "labels"))
    _pickle(folder / "test_batch", _batch(test_x, test_y, "labels"))
    names = [f"c10_class_{i}" for i in range(10)]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": 10})
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def cifar100(root: Path, *, train_per_class: int = 2, test_per_class: int = 1) -> dict:
    """``root/cifar-100-python``: ``train``, ``test`` (fine and coarse labels) and ``meta``."""
    folder = root / "cifar-100-python"
    train_y = np.random.default_rng(5).permutation(np.repeat(np.arange(100), train_per_class))
    test_y = np.random.default_rng(6).permutation(np.repeat(np.arange(100), test_per_class))
    train_x = images(len(train_y), (3, 32, 32), seed=5)
    test_x = images(len(test_y), (3, 32, 32), seed=6, first_id=len(train_y))
    _pickle(folder / "train", {**_batch(train_x, train_y, "fine_labels"), "coarse_labels": []})
    _pickle(folder / "test", {**_batch(test_x, test_y, "fine_labels"), "coarse_labels": []})
    fine = [f"c100_class_{i:02d}" for i in range(100)]
    _pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": []})
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def cifar_checksums(cls: type, root: Path) -> dict[str, object]:
    """Class attributes that make torchvision's MD5 check accept the fabricated files."""
    folder = root / cls.base_folder

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    return {
        "train_list": [[f, md5(f)] for f, _ in cls.train_list],
        "test_list": [[f, md5(f)] for f, _ in cls.test_list],
        "meta": {**cls.meta, "md5": md5(cls.meta["filename"])},
    }


def mini_imagenet_classes(counts: tuple[int, int, int] = (4, 2, 3)) -> dict[str, list[str]]:
    """wnid-like class names per split, deliberately not listed in sorted order."""
    names, k = {}, 0
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        names[split] = [f"n{9 - i:02d}{k + i:06d}" for i in range(n)]
        k += n
    return names


def mini_imagenet_pickles(root: Path, *, per_class: int = 6, size: int = 84) -> dict:
    """``mini-imagenet-cache-{split}.pkl``; returns ``{class name: images (n, H, W, 3)}``."""
    by_class, first = {}, 0
    for split, names in mini_imagenet_classes().items():
        data = images(len(names) * per_class, (size, size, 3), seed=7, first_id=first)
        first += len(data)
        order = np.random.default_rng(8).permutation(len(data))  # classes interleaved in the file
        class_dict = {n: sorted(order[i :: len(names)].tolist()) for i, n in enumerate(names)}
        by_class.update({n: data[idx] for n, idx in class_dict.items()})
        _pickle(
            root / f"mini-imagenet-cache-{split}.pkl",
            {"image_data": data, "class_dict": class_dict},
        )
    return by_class


def mini_imagenet_folders(root: Path, *, per_class: int = 6, size: int = 84) -> dict:
    """``{split}/<class>/<name>.png``; returns ``{class name: images (n, H, W, 3)}``.

    The first class of each split is stored instead as 100x90 ``.JPG`` files (lossy, another
    size), which the loader must decode and resize; it is left out of the returned dict.
    """
    by_class, first = {}, 0
    for split, names in mini_imagenet_classes().items():
        for i, name in enumerate(names):
            shape = (90, 100, 3) if i == 0 else (size, size, 3)
            data = images(per_class, shape, seed=9, first_id=first)
            first += per_class
            folder = root / split / name
            folder.mkdir(parents=True)
            (folder / "notes.txt").write_text("not an image")
            for k, img in enumerate(data):
                Image.fromarray(img).save(folder / f"{name}_{k:04d}.{'JPG' if i == 0 else 'png'}")
            if i > 0:
                by_class[name] = data
    return by_class


def _batch(x: np.ndarray, y: np.ndarray, label_key: str) -> dict:
    return {"data": x.reshape(len(x), -1), label_key: [int(v) for v in y]}


def _pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f)
