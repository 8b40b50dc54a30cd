"""A data config checked without torch and without reading the data.

What a loader would refuse is refused here first, so that the driver refuses a study before
it runs anything (``gcnc validate``, ``gcnc run``): unknown option keys, bad option values,
class ids the dataset does not have, and the dataset's files missing where the loader will
look. The loaders call the same functions, so the two never disagree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainables.config import DataConfig
from trainables.data import fontfiles


class DataConfigError(ValueError):
    """A data config a loader cannot use; ``field`` is the config key to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple:  # pickled whole, so a trial's error crosses Ray intact
        return type(self), (self.field, str(self))


# Every dataset's options, with their defaults (``data.options``).
OPTIONS: dict[str, dict[str, Any]] = {
    "digits": {},
    "mnist": {},
    "fashion_mnist": {"cache_dir": None},
    "cifar10": {},
    "cifar100": {},
    "cifar_fs": {},
    "mini_imagenet": {"holdout_fraction": 1 / 6, "image_size": 84},
    "synthetic": {
        "n_classes": 10,
        "n_per_class": 40,
        "channels": 1,
        "image_size": 8,
        "noise": 0.25,
    },
    "glyphs": {
        "n_classes": 50,
        "n_per_class": 60,
        "image_size": 16,
        "strokes": 3,
        "vocabulary": 24,
        "jitter": 0.04,
        "shift": 0.06,
        "noise": 0.1,
        "seed": 0,
    },
    "fonts": {
        "font_dir": fontfiles.DEFAULT_FONT_DIR,
        "characters": fontfiles.DEFAULT_CHARACTERS,
        "image_size": 28,
        "font_size": 0.7,
        "variants": 1,
        "shift": 0.06,
        "scale": 0.1,
        "seed": 0,
        "min_fonts": 20,
        "test_fraction": 0.2,
    },
}
# Classes of the datasets whose class count is fixed (mini-ImageNet: 64 + 16 + 20).
FIXED_CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10,
                 "cifar100": 100, "cifar_fs": 100, "mini_imagenet": 100}  # fmt: skip
# The option that sets the classes of the others: a count, or the characters (one a class).
CLASS_OPTION = {"synthetic": "n_classes", "glyphs": "n_classes", "fonts": "characters"}
# Each dataset's images (C, H, W): a size, or the option that sets it (``gcnc datasets``).
IMAGE_SHAPES: dict[str, tuple[int | str, int | str, int | str]] = {
    "digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "cifar_fs": (3, 32, 32),
    "mini_imagenet": (3, "image_size", "image_size"),
    "synthetic": ("channels", "image_size", "image_size"),
    "glyphs": (1, "image_size", "image_size"),
    "fonts": (1, "image_size", "image_size"),
}  # fmt: skip
GENERATED = frozenset({"synthetic", "glyphs"})  # drawn in the trial: no files to find
GLYPH_LATTICE = 4  # anchor points per side of the glyphs' lattice
# synthetic: round(0.2 · n_per_class) images of each class form the source test split, none
# below 3 images a class (the loader's split; an empty test split is refused).
SYNTHETIC_MIN_PER_CLASS = 3
# The option that sizes the source test split of the datasets that make their own; for the
# others it is the dataset's test files, restricted to the source classes.
TEST_SPLIT_OPTION = {
    "synthetic": "data.options.n_per_class",
    "glyphs": "data.options.n_per_class",
    "fonts": "data.options.test_fraction",
    "mini_imagenet": "data.options.holdout_fraction",
}

# Files the loaders read under data_root.
CIFAR_FILES = {
    "cifar10": ("cifar-10-batches-py",
                ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta")),
    "cifar100": ("cifar-100-python", ("train", "test", "meta")),
}  # fmt: skip
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MINI_IMAGENET_SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})  # mini-ImageNet folders: files read
NEEDS_FILES = frozenset(
    {"mnist", "fashion_mnist", "cifar10", "cifar100", "cifar_fs", "mini_imagenet", "fonts"}
)
# Datasets whose files are system packages, checked by ``gcnc validate`` too (the others'
# files may be on the cluster's nodes alone, checked when the study runs).
CHECKED_WHEN_VALIDATED = frozenset({"fonts"})


def check(config: DataConfig) -> dict[str, Any]:
    """The dataset's options (defaults filled in, values checked), once its class ids are
    checked too, and for fonts, the fonts on this machine.

    Raises:
        DataConfigError: naming the field, for an unknown option or a bad value, class
            ids the dataset does not have, or (fonts) too few fonts that draw the classes.
    """
    opts = options(config)
    resolve_classes(config, n_classes(config.name, opts))
    if config.name in CHECKED_WHEN_VALIDATED and (missing := files_missing(config)):
        raise DataConfigError("data.options.font_dir", missing)
    return opts


def options(config: DataConfig) -> dict[str, Any]:
    """``config.options`` over the dataset's defaults, each value checked."""
    opts = parse_options(config.name, config.options, OPTIONS.get(config.name, {}))
    checker = _CHECKERS.get(config.name)
    return checker(opts) if checker is not None else opts


def n_classes(name: str, opts: Mapping[str, Any]) -> int:
    """How many classes the dataset has (its class ids are ``0..n-1``)."""
    if name in FIXED_CLASSES:
        return FIXED_CLASSES[name]
    value = opts[CLASS_OPTION.get(name, "n_classes")]
    return len(value) if isinstance(value, str) else int(value)


def image_shape(name: str, opts: Mapping[str, Any]) -> tuple[int, int, int]:
    """The dataset's image shape ``(C, H, W)`` under the options ``opts``."""
    c, h, w = (int(opts[d]) if isinstance(d, str) else d for d in IMAGE_SHAPES[name])
    return c, h, w


def parse_options(
    dataset: str, options: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``options`` over ``defaults``; an unknown key is refused, listing the known."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise DataConfigError(
            f"data.options.{unknown[0]}",
            f"unknown data.options {unknown} for dataset {dataset!r}; known: {known}",
        )
    return {**defaults, **options}


def int_option(opts: Mapping[str, Any], key: str, *, at_least: int = 1) -> int:
    """``opts[key]`` if it is an int (not a bool) ``>= at_least``."""
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        wanted = "a positive int" if at_least == 1 else f"an int >= {at_least}"
        raise DataConfigError(
            f"data.options.{key}", f"data.options.{key} must be {wanted}; got {value!r}"
        )
    return value


def non_negative(opts: Mapping[str, Any], key: str) -> float:
    """``opts[key]`` if it is a number (not a bool) ``>= 0``."""
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise DataConfigError(
            f"data.options.{key}", f"data.options.{key} must be a number >= 0; got {value!r}"
        )
    return float(value)


def _synthetic(opts: dict[str, Any]) -> dict[str, Any]:
    out = {k: int_option(opts, k) for k in ("n_classes", "n_per_class", "image_size", "channels")}
    if out["n_per_class"] < SYNTHETIC_MIN_PER_CLASS:
        raise DataConfigError(
            "data.options.n_per_class",
            f"data.options.n_per_class must be an int >= {SYNTHETIC_MIN_PER_CLASS}, or the "
            f"source test split (a fifth of each class, rounded) is empty; got "
            f"{out['n_per_class']}",
        )
    return {**out, "noise": non_negative(opts, "noise")}


def _glyphs(opts: dict[str, Any]) -> dict[str, Any]:
    out = {
        "n_classes": int_option(opts, "n_classes", at_least=2),
        "n_per_class": int_option(opts, "n_per_class", at_least=2),
        "image_size": int_option(opts, "image_size", at_least=4),
        "strokes": int_option(opts, "strokes"),
        "seed": int_option(opts, "seed", at_least=0),
    }
    vocabulary = out["vocabulary"] = int_option(opts, "vocabulary", at_least=out["strokes"])
    n_segments = math.comb(GLYPH_LATTICE * GLYPH_LATTICE, 2)
    if vocabulary > n_segments:
        raise DataConfigError(
            "data.options.vocabulary",
            f"data.options.vocabulary must be at most {n_segments} (the segments of a "
            f"{GLYPH_LATTICE}x{GLYPH_LATTICE} lattice); got {vocabulary}",
        )
    if out["n_classes"] > math.comb(vocabulary, out["strokes"]):
        raise DataConfigError(
            "data.options.n_classes",
            f"data.options.n_classes = {out['n_classes']} needs more distinct glyphs than "
            f"{out['strokes']} strokes of a vocabulary of {vocabulary} can make "
            f"({math.comb(vocabulary, out['strokes'])}); raise vocabulary or strokes",
        )
    return out | {k: non_negative(opts, k) for k in ("jitter", "shift", "noise")}


def _mini_imagenet(opts: dict[str, Any]) -> dict[str, Any]:
    fraction = opts["holdout_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise DataConfigError(
            "data.options.holdout_fraction",
            f"data.options.holdout_fraction must be in (0, 1), the share of each source class "
            f"held out as the source test split; got {fraction!r}",
        )
    return {"holdout_fraction": float(fraction), "image_size": int_option(opts, "image_size")}


def _fashion_mnist(opts: dict[str, Any]) -> dict[str, Any]:
    cache = opts["cache_dir"]
    if cache is not None and not isinstance(cache, str):
        raise DataConfigError(
            "data.options.cache_dir", f"data.options.cache_dir must be a path; got {cache!r}"
        )
    return opts


_CHECKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "synthetic": _synthetic,
    "glyphs": _glyphs,
    "fonts": fontfiles.check_options,
    "mini_imagenet": _mini_imagenet,
    "fashion_mnist": _fashion_mnist,
}


def resolve_classes(
    config: DataConfig,
    n_classes: int,
    *,
    default_source: Sequence[int] | None = None,
    default_target: Sequence[int] = (),
) -> tuple[list[int], list[int]]:
    """The ``(source, target)`` original class ids for ``config``.

    Neither field given: the dataset's default split (``default_source`` None: every class).
    Only ``target_classes`` given: every other class is a source class. Only
    ``source_classes`` given: no target classes.

    Raises:
        DataConfigError: naming the field, for unknown or repeated ids, an empty source
            set, or classes in both sets.
    """
    source, target = config.source_classes, config.target_classes
    if target is not None:
        target = _checked_ids("data.target_classes", target, n_classes)
    if source is not None:
        source = _checked_ids("data.source_classes", source, n_classes)
    elif target is not None:
        source = [c for c in range(n_classes) if c not in set(target)]
    else:
        source = list(range(n_classes)) if default_source is None else list(default_source)
        target = list(default_target)
    target = target or []
    if not source:
        raise DataConfigError(
            "data.source_classes",
            "data.source_classes selects no class; give at least one class id",
        )
    overlap = sorted(set(source) & set(target))
    if overlap:
        raise DataConfigError(
            "data.target_classes",
            f"data.source_classes and data.target_classes overlap: {overlap}",
        )
    return source, target


def _checked_ids(field_name: str, ids: Sequence[int], n_classes: int) -> list[int]:
    bad = [c for c in ids if not 0 <= c < n_classes]
    if bad:
        raise DataConfigError(
            field_name,
            f"{field_name} has unknown class ids {bad}; valid ids are 0..{n_classes - 1}",
        )
    repeated = sorted({c for c in ids if list(ids).count(c) > 1})
    if repeated:
        raise DataConfigError(field_name, f"{field_name} repeats class ids {repeated}")
    return list(ids)


def empty_test_split(dataset: str) -> DataConfigError:
    """The error for a dataset whose source test split came out empty: nothing would
    measure the test accuracy or the NCC test error (and evaluation would fail)."""
    field = TEST_SPLIT_OPTION.get(dataset, "data.source_classes")
    return DataConfigError(
        field,
        f"{field} leaves dataset {dataset!r} with no source test images; change it so that "
        "the source classes keep some",
    )


# ---------------------------------------------------------------- files


def missing_files(dataset: str, looked: Sequence[Path | str], *, can_download: bool = True) -> str:
    """The message of a FileNotFoundError: which dataset, where we looked, how to fix it."""
    where = ", ".join(str(p) for p in looked) or "nowhere: data.data_root is not set"
    fix = "set data.data_root to the folder that holds them"
    if can_download:
        fix += ", or to where they should go with data.download = true on a machine with internet"
    return f"dataset {dataset!r}: files not found (looked in {where}); {fix}"


def files_missing(config: DataConfig) -> str | None:
    """Why the loader would not find the dataset's files on this machine (None: it would).

    Datasets drawn in the trial need none; ``data.download = true`` lets torchvision fetch
    what is missing (not mini-ImageNet, which is never downloaded); ``fonts`` needs enough
    font files under ``data.options.font_dir`` that draw its characters.
    """
    name = config.name
    root = None if config.data_root is None else Path(config.data_root).expanduser()
    if name in ("cifar10", "cifar100", "cifar_fs"):
        folder, files = CIFAR_FILES["cifar10" if name == "cifar10" else "cifar100"]
        if config.download or (
            root is not None and all((root / folder / f).is_file() for f in files)
        ):
            return None
        return missing_files(name, [root / folder] if root is not None else [])
    if name in MNIST_FOLDERS:
        looked = [root / MNIST_FOLDERS[name] / "raw"] if root is not None else []
        if name == "fashion_mnist":
            looked.append(DEBIAN_FASHION_MNIST)
        if config.download or any(idx_files_in(folder) for folder in looked):
            return None
        return missing_files(name, looked)
    if name == "mini_imagenet":
        return (
            None
            if mini_imagenet_layout(root)
            else missing_files(name, [root] if root else [], can_download=False)
        )
    if name == "fonts":
        opts = options(config)
        found = fontfiles.survey(opts["font_dir"], opts["characters"])
        return fontfiles.shortfall(found, min_fonts=opts["min_fonts"])
    return None


def idx_files_in(folder: Path) -> bool:
    """Whether ``folder`` holds every MNIST-style IDX file, decompressed or gzip'd."""
    return all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in IDX_FILES)


def mini_imagenet_layout(root: Path | None) -> str | None:
    """``"pickles"`` or ``"folders"``: the mini-ImageNet layout under ``root``; None: neither."""
    if root is None:
        return None
    if all((root / f"mini-imagenet-cache-{s}.pkl").is_file() for s in MINI_IMAGENET_SPLITS):
        return "pickles"
    if all((root / s).is_dir() for s in MINI_IMAGENET_SPLITS):
        return "folders"
    return None


def fashion_mnist_cache(cache_dir: str | None) -> Path:
    """Where Debian's Fashion-MNIST files are decompressed (option ``cache_dir``)."""
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gcnc/datasets``, or ``~/.cache/gcnc/datasets``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gcnc" / "datasets"


# ---------------------------------------------------------------- notes


def system_files_note(system_dir: Path, cache: Path) -> str:
    """Fashion-MNIST's note when it is read from Debian's files rather than data_root."""
    return f"read from the system files in {system_dir} (cached in {cache})"


def holdout_note(split_seed: int, fraction: float) -> str:
    """mini-ImageNet's note on its source test set (it has no test images of its own)."""
    return (
        f"source test set: a seeded hold-out (split_seed={split_seed}) of "
        f"{fraction:.3g} of each source class's images"
    )
