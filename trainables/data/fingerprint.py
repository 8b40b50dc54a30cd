"""The files a dataset's loader reads, found and hashed without torch and without loading them.

``study.json`` records each file's size and sha256 (docs/schema.md), so that a result can be
traced to the exact bytes it was computed from. Files are found where the loader would look
(:mod:`trainables.data.preflight` knows each layout), streamed through sha256 in chunks, and
hashed once however many data sections name them, several at a time. A folder of image files
(mini-ImageNet's folder layout, tens of thousands of files) is recorded as one manifest
digest per class folder rather than file by file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.config import DataConfig
from trainables.data import fontfiles, preflight

MAX_THREADS = 8  # hashing is I/O and C code that releases the GIL
DIGITS_FILE = "datasets/data/digits.csv.gz"  # under scikit-learn's package folder


@dataclass(frozen=True)
class Digest:
    """A file's size in bytes and the hex sha256 of its content."""

    size: int
    sha256: str


@dataclass(frozen=True)
class DataFiles:
    """Where the files of one data section are on this machine.

    ``files`` and ``folders`` are relative to ``root`` (posix separators); a folder stands
    for the image files directly in it. ``missing`` says why they are not here (None: they
    are); ``notes`` are what the loader notes on reading them from there; ``looked``, when
    they are missing, where the loader would have looked for them; ``found``, what was found
    in words, where counting is not the whole story (the fonts that draw every character).
    """

    root: Path | None
    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    missing: str | None = None
    notes: list[str] = field(default_factory=list)
    looked: list[Path] = field(default_factory=list)
    found: str | None = None

    def paths(self) -> list[Path]:
        """Every file to hash: the listed files and the image files of each folder."""
        if self.missing is not None or self.root is None:
            return []
        return [self.root / f for f in self.files] + [
            p for folder in self.folders for p in folder_images(self.root / folder)
        ]


def data_files(config: DataConfig) -> DataFiles | None:
    """The files the loader of ``config.name`` reads; None for a dataset drawn in the trial
    (``synthetic``, ``glyphs``) or registered outside this package. For ``fonts``, the font
    files that draw every character (under ``data.options.font_dir``, not ``data_root``)."""
    name = config.name
    root = None if config.data_root is None else Path(config.data_root).expanduser().resolve()
    if name in ("cifar10", "cifar100", "cifar_fs"):
        folder, files = preflight.CIFAR_FILES["cifar10" if name == "cifar10" else "cifar100"]
        return _listed(config, root, [f"{folder}/{f}" for f in files], looked=folder)
    if name in preflight.MNIST_FOLDERS:
        return _idx_files(config, root)
    if name == "mini_imagenet":
        return _mini_imagenet_files(root)
    if name == "digits":
        return _digits_file()
    if name == "fonts":
        return _font_files(config)
    return None


def _listed(config: DataConfig, root: Path | None, files: list[str], *, looked: str) -> DataFiles:
    if root is not None and all((root / f).is_file() for f in files):
        return DataFiles(root, files)
    looked_in = [root / looked] if root is not None else []
    missing = _not_here(looked_in, download=config.download)
    return DataFiles(root, missing=missing, looked=looked_in)


def _idx_files(config: DataConfig, root: Path | None) -> DataFiles:
    """MNIST-style IDX files in ``<root>/<Folder>/raw`` (decompressed, else gzip'd), or, for
    Fashion-MNIST, Debian's gzip'd files when ``data_root`` lacks them (as the loader)."""
    raw = f"{preflight.MNIST_FOLDERS[config.name]}/raw"
    if root is not None and preflight.idx_files_in(root / raw):
        return DataFiles(root, [f"{raw}/{f}" for f in _idx_names(root / raw)])
    system = preflight.DEBIAN_FASHION_MNIST
    if config.name == "fashion_mnist" and preflight.idx_files_in(system):
        cache = preflight.fashion_mnist_cache(preflight.options(config)["cache_dir"])
        note = preflight.system_files_note(system, cache)
        return DataFiles(system, _idx_names(system), notes=[note])
    looked = [root / raw] if root is not None else []
    if config.name == "fashion_mnist":
        looked.append(system)
    return DataFiles(root, missing=_not_here(looked, download=config.download), looked=looked)


def _idx_names(folder: Path) -> list[str]:
    return [f if (folder / f).is_file() else f"{f}.gz" for f in preflight.IDX_FILES]


def _mini_imagenet_files(root: Path | None) -> DataFiles:
    layout = preflight.mini_imagenet_layout(root)
    if root is None or layout is None:
        looked = [root] if root is not None else []
        return DataFiles(root, missing=_not_here(looked), looked=looked)
    if layout == "pickles":
        splits = preflight.MINI_IMAGENET_SPLITS
        return DataFiles(root, [f"mini-imagenet-cache-{s}.pkl" for s in splits])
    folders = [
        f"{split}/{d.name}"
        for split in preflight.MINI_IMAGENET_SPLITS
        for d in sorted((root / split).iterdir())
        if d.is_dir()
    ]
    return DataFiles(root, folders=folders)


def _font_files(config: DataConfig) -> DataFiles:
    opts = preflight.options(config)
    found = fontfiles.survey(opts["font_dir"], opts["characters"])
    summary = found.summary()
    missing = fontfiles.shortfall(found, min_fonts=opts["min_fonts"])
    if missing is not None:
        summary += f"; {fontfiles.need(found, min_fonts=opts['min_fonts'])}"
        return DataFiles(found.root, missing=missing, looked=[found.root], found=summary)
    return DataFiles(found.root, [f.relative for f in found.fonts], found=summary)


def _not_here(looked: list[Path], *, download: bool = False) -> str:
    """Why files are missing on this machine (the driver's: workers may still have them)."""
    where = ", ".join(str(p) for p in looked)
    out = f"not on this machine (looked in {where})" if where else "data.data_root is not set"
    return out + ("; data.download = true: the loader fetches them" if download else "")


def _digits_file() -> DataFiles:
    """scikit-learn's bundled copy of the UCI digits, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    package = spec.submodule_search_locations if spec is not None else None
    if not package:
        return DataFiles(None, missing="scikit-learn is not installed on this machine")
    root = Path(next(iter(package))).resolve()
    if not (root / DIGITS_FILE).is_file():
        missing = f"{root / DIGITS_FILE} is not on this machine"
        return DataFiles(root, missing=missing, looked=[root / DIGITS_FILE])
    return DataFiles(root, [DIGITS_FILE])


def folder_images(folder: Path) -> list[Path]:
    """The image files of a mini-ImageNet class folder, as its loader reads them, sorted."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in preflight.IMAGE_SUFFIXES)


# ---------------------------------------------------------------- hashing


def sha256_file(path: Path) -> Digest:
    """The size and sha256 of ``path``, streamed in chunks (constant memory)."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return Digest(f.tell(), digest.hexdigest())


def hash_all(paths: Iterable[Path]) -> dict[Path, Digest]:
    """The digest of each distinct path (each file read once), hashed in threads."""
    unique = list(dict.fromkeys(paths))
    threads = max(1, min(MAX_THREADS, os.cpu_count() or 1, len(unique)))
    with ThreadPoolExecutor(threads) as pool:
        return dict(zip(unique, pool.map(sha256_file, unique), strict=True))


def files_record(found: DataFiles, digests: dict[Path, Digest]) -> dict[str, Any]:
    """``study.json``'s ``files`` of one dataset (docs/schema.md)."""
    record: dict[str, Any] = {
        "root": None if found.root is None else str(found.root),
        "present": found.missing is None,
        "missing": found.missing,
        "files": [_entry(f, digests[found.root / f]) for f in found.files]
        if found.missing is None and found.root is not None
        else [],
    }
    if found.folders and found.root is not None:
        record["folders"] = [_folder_entry(found.root, f, digests) for f in found.folders]
    return record


def _entry(path: str, digest: Digest) -> dict[str, Any]:
    return {"path": path, "size": digest.size, "sha256": digest.sha256}


def _folder_entry(root: Path, folder: str, digests: dict[Path, Digest]) -> dict[str, Any]:
    """A folder's image files as one manifest: sha256 of ``"<name>\\t<size>\\t<sha256>\\n"``
    lines, one per file, sorted by name."""
    found = {p: digests.get(p) or sha256_file(p) for p in folder_images(root / folder)}
    lines = "".join(f"{p.name}\t{d.size}\t{d.sha256}\n" for p, d in found.items())
    return {
        "path": folder,
        "files": len(found),
        "size": sum(d.size for d in found.values()),
        "sha256": hashlib.sha256(lines.encode()).hexdigest(),
    }
