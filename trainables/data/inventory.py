"""What ``gcnc datasets`` lists: each registered dataset, its classes and image shape at the
default options, and whether its files are on this machine (and where they were looked for).

Built without torch and without reading any data: classes and shapes are the declarations of
:mod:`trainables.data.preflight`, and files are found as study provenance finds them
(:func:`trainables.data.fingerprint.data_files`), where the loader would look.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

from trainables.config import DataConfig
from trainables.data import DATASETS, fingerprint, preflight

Files = Literal["present", "missing", "generated", "undeclared"]


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset as ``gcnc datasets`` shows it.

    ``n_classes`` and ``shape`` (C, H, W) are at the default options (None: not declared,
    as for a dataset registered outside gcnc); ``class_option`` and ``shape_options`` name
    the options that change them. ``files``: ``present`` (``where``: the folder or file
    found), ``missing`` (``where``: every path looked at, none when no data root is set),
    ``generated`` (drawn in the trial from a seed) or ``undeclared``; ``found``: what was
    found there in words, for a dataset whose files are counted (fonts), else None.
    """

    name: str
    n_classes: int | None
    shape: tuple[int, int, int] | None
    class_option: str | None
    shape_options: tuple[str, ...]
    files: Files
    where: tuple[str, ...]
    found: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The entry as plain JSON values (``gcnc datasets --json``)."""
        return asdict(self)


def dataset_entries(*, data_root: str | None = None) -> list[DatasetEntry]:
    """Every registered dataset, sorted by name, its files looked for under ``data_root``."""
    return [dataset_entry(name, data_root=data_root) for name in DATASETS.names()]


def dataset_entry(name: str, *, data_root: str | None = None) -> DatasetEntry:
    """``name``'s entry, its files looked for where its loader would look under ``data_root``."""
    if name not in preflight.OPTIONS:
        return DatasetEntry(name, None, None, None, (), "undeclared", ())
    config = DataConfig(name=name, data_root=data_root)
    opts = preflight.options(config)  # the defaults, filled in
    dims = preflight.IMAGE_SHAPES.get(name)
    files, where, found = _files(config)
    fixed = name in preflight.FIXED_CLASSES
    return DatasetEntry(
        name,
        n_classes=preflight.n_classes(name, opts),
        shape=None if dims is None else preflight.image_shape(name, opts),
        class_option=None if fixed else preflight.CLASS_OPTION.get(name, "n_classes"),
        shape_options=tuple(dict.fromkeys(d for d in dims or () if isinstance(d, str))),
        files=files,
        where=where,
        found=found,
    )


def _files(config: DataConfig) -> tuple[Files, tuple[str, ...], str | None]:
    """Whether the loader would find ``config``'s files, where they are or were sought, and
    what was found there in words (if the dataset says)."""
    if config.name in preflight.GENERATED:
        return "generated", (), None
    found = fingerprint.data_files(config)
    if found is None:
        return "undeclared", (), None
    if found.missing is not None:
        return "missing", tuple(str(p) for p in found.looked), found.found
    assert found.root is not None
    paths = [found.root / f for f in [*found.files, *found.folders]]
    return "present", (os.path.commonpath(paths) if paths else str(found.root),), found.found


def format_entries(entries: list[DatasetEntry]) -> str:
    """One aligned line per entry: name, classes, shape (C×H×W), files and where.

    In parentheses after the classes and the shape, the options that change them (the
    values shown are at their defaults).
    """
    rows = [_cells(e) for e in entries]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)), r[4]]).rstrip()
        for r in rows
    )


def _cells(entry: DatasetEntry) -> list[str]:
    classes = "? classes" if entry.n_classes is None else f"{entry.n_classes} classes"
    shape = "?" if entry.shape is None else "×".join(map(str, entry.shape))
    if entry.class_option:
        classes += f" ({entry.class_option})"
    if entry.shape_options:
        shape += f" ({', '.join(entry.shape_options)})"
    found = f": {entry.found}" if entry.found else ""
    looked = f"(looked in {', '.join(entry.where)}{found})" if entry.where else "(no data root set)"
    where = {
        "present": f"(found in {', '.join(entry.where)}{found})",
        "missing": looked,
        "generated": "(drawn in the trial: no files)",
        "undeclared": "(registered outside gcnc: its loader alone knows)",
    }[entry.files]
    return [entry.name, classes, shape, entry.files, where]
