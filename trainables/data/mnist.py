"""MNIST and Fashion-MNIST, read by ``torchvision.datasets`` from IDX files on disk.

torchvision reads the decompressed IDX files from ``<data_root>/<MNIST|FashionMNIST>/raw/``;
gzip'd files found there (``*-ubyte.gz``, as published) are decompressed next to them first,
as torchvision's own download does. Fashion-MNIST also reads the files of Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist/*-ubyte.gz``) when
``data_root`` is unset or lacks the files: they are decompressed once into a cache folder laid
out as torchvision expects, and read from there by the same torchvision code. A download
(``data.download = true``) happens only when neither place has the files.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from trainables.config import DataConfig
from trainables.data import preflight
from trainables.data._base import Dataset
from trainables.data._split import Pools, build_dataset
from trainables.data.normalization import (
    FASHION_MNIST_NORMALIZATION,
    MNIST_NORMALIZATION,
    Normalization,
)
from trainables.data.preflight import (
    DEBIAN_FASHION_MNIST,
    IDX_FILES,
    default_cache_dir,
    missing_files,
    system_files_note,
)

if TYPE_CHECKING:
    from torchvision import datasets

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "FASHION_MNIST_NORMALIZATION",
    "MNIST_NORMALIZATION",
    "default_cache_dir",
    "load_fashion_mnist",
    "load_mnist",
]


def load_mnist(config: DataConfig) -> Dataset:
    """MNIST: 60k/10k ``(N, 1, 28, 28)`` images of 10 digits, all classes source by default.

    Normalised with the published statistics of the 60k training images of all 10 classes
    (fixed, whatever the source classes).
    """
    from torchvision import datasets  # slow import: load on use

    preflight.options(config)
    root, notes = _find_root("mnist", datasets.MNIST, config, fallback=None)
    return _load("mnist", datasets.MNIST, root, config, MNIST_NORMALIZATION, notes)


def load_fashion_mnist(config: DataConfig) -> Dataset:
    """Fashion-MNIST: 60k/10k ``(N, 1, 28, 28)`` images of 10 clothing classes.

    Normalised with the published statistics of the 60k training images of all 10 classes
    (fixed, whatever the source classes). Option ``cache_dir``: where Debian's gzip'd files
    are decompressed (default ``$XDG_CACHE_HOME/gcnc/datasets``, else
    ``~/.cache/gcnc/datasets``).
    """
    from torchvision import datasets

    opts = preflight.options(config)
    fallback = (DEBIAN_FASHION_MNIST, opts["cache_dir"])
    root, notes = _find_root("fashion_mnist", datasets.FashionMNIST, config, fallback=fallback)
    return _load(
        "fashion_mnist", datasets.FashionMNIST, root, config, FASHION_MNIST_NORMALIZATION, notes
    )


def _load(
    name: str,
    cls: type[datasets.MNIST],
    root: Path,
    config: DataConfig,
    normalization: Normalization,
    notes: list[str],
) -> Dataset:
    train = _open(name, cls, root, train=True, download=config.download)
    test = _open(name, cls, root, train=False, download=False)
    pools = Pools(
        train_x=train.data.unsqueeze(1),  # (60000, 1, 28, 28) uint8
        train_y=train.targets,  # (60000,)
        test_x=test.data.unsqueeze(1),  # (10000, 1, 28, 28) uint8
        test_y=test.targets,  # (10000,)
        class_names=list(cls.classes),
    )
    return build_dataset(name, pools, config, normalization=normalization, notes=notes)


def _find_root(
    name: str,
    cls: type[datasets.MNIST],
    config: DataConfig,
    *,
    fallback: tuple[Path, str | None] | None,
) -> tuple[Path, list[str]]:
    """The root torchvision should read, and a note when it is not ``data_root``."""
    looked: list[Path] = []
    root = None if config.data_root is None else Path(config.data_root).expanduser()
    if root is not None:
        raw = root / cls.__name__ / "raw"
        if _materialise(raw, source=raw):
            return root, []
        looked.append(raw)
    if fallback is not None:
        system_dir, cache_dir = fallback
        cache = preflight.fashion_mnist_cache(cache_dir)
        if _materialise(cache / cls.__name__ / "raw", source=system_dir):
            return cache, [system_files_note(system_dir, cache)]
        looked.append(system_dir)
    if root is not None and config.download:
        return root, []
    raise FileNotFoundError(missing_files(name, looked))


def _materialise(raw: Path, *, source: Path) -> bool:
    """Make ``raw`` hold every IDX file, decompressing ``source/<file>.gz`` where missing.

    Returns False, changing nothing, when some file is in neither form.
    """
    missing = [f for f in IDX_FILES if not (raw / f).is_file()]
    if not all((source / f"{f}.gz").is_file() for f in missing):
        return False
    for f in missing:
        _gunzip(source / f"{f}.gz", raw / f)
    return True


def _gunzip(src: Path, dst: Path) -> None:
    """Decompress ``src`` to ``dst`` atomically (concurrent trials may race to do it)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dst.name}."
    with (
        tempfile.NamedTemporaryFile(dir=dst.parent, prefix=prefix, delete=False) as out,
        gzip.open(src, "rb") as gz,
    ):
        shutil.copyfileobj(gz, out)
    os.chmod(out.name, 0o644)  # a shared cache: readable like any data file
    os.replace(out.name, dst)


def _open(
    name: str, cls: type[datasets.MNIST], root: Path, *, train: bool, download: bool
) -> datasets.MNIST:
    try:
        return cls(str(root), train=train, download=download)
    except RuntimeError as err:
        looked = [root / cls.__name__ / "raw"]
        raise FileNotFoundError(f"{missing_files(name, looked)}; torchvision: {err}") from err
