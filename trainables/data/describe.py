"""What ``study.json`` records of each dataset a study reads (docs/schema.md, ``datasets``).

One record per distinct data section: the dataset's name and section, its notes, its
normalisation (constants and what they are fitted on), the files it reads with their sha256
(:mod:`trainables.data.fingerprint`), and for a dataset drawn in the trial its generator and
seed. The driver builds them without importing torch: files and generators are found here,
and a fixed normalisation is a constant (:mod:`trainables.data.normalization`). What only a
loader can compute, a fitted normalisation (it draws the dataset) and CIFAR-FS's seeded class
split, is computed by the loader's own code in a child process (``python -m
trainables.data.describe``), once per data section and process, so the record never
disagrees with what the trials load. A record says what could not be found instead of
failing: files not on this machine, a child that could not run.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainables.config import DataConfig
from trainables.data import fingerprint, preflight
from trainables.data.normalization import FIXED

DRAWN = frozenset({"digits", "glyphs", "synthetic", "fonts"})  # fitted: load to know it
NEEDS_LOADER = DRAWN | {"cifar_fs"}  # CIFAR-FS: its notes name its seeded val classes
CHILD_TIMEOUT_S = 600.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding trainables/
GENERATORS = {
    "synthetic": "trainables.data.synthetic: a uniform prototype per class plus Gaussian "
    "noise, drawn by torch.Generator from the seed",
    "glyphs": "trainables.data.glyphs: strokes between points of a 4x4 lattice, jittered, "
    "shifted, drawn anti-aliased with a random pen width, plus Gaussian noise, all drawn by "
    "torch.Generator from the seed (no fonts or other source files)",
    "fonts": "trainables.data.fonts: each character drawn by each font file under files "
    "(Pillow's FreeType, basic layout) at font_size of the image side per em, centred on its "
    "ink, drawn at 4x the image size and box-filtered down (a glyph over 0.9 of the side "
    "shrunk to fit); variants past the first scaled and shifted, drawn by torch.Generator "
    "from the seed",
    "digits": "scikit-learn's bundled UCI optical digits (the file under files), split 80/20 "
    "stratified by sklearn.model_selection.train_test_split with the seed",
}
_described: dict[str, dict[str, Any]] = {}  # what the child computed, by canonical data section


def dataset_records(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``study.json``'s ``datasets``: a record for each data section, its files hashed once."""
    parsed = [DataConfig.model_validate(c) for c in configs]
    found = [fingerprint.data_files(c) for c in parsed]
    digests = fingerprint.hash_all(p for f in found if f is not None for p in f.paths())
    return [
        _record(config, files, described, digests)
        for config, files, described in zip(parsed, found, describe_all(parsed), strict=True)
    ]


def _record(
    config: DataConfig,
    files: fingerprint.DataFiles | None,
    described: dict[str, Any],
    digests: dict[Path, fingerprint.Digest],
) -> dict[str, Any]:
    return {
        "name": config.name,
        "data": config.model_dump(mode="json"),
        "notes": described.get("notes"),
        "normalization": described.get("normalization"),
        "files": None if files is None else fingerprint.files_record(files, digests),
        "generator": generator(config),
        "problem": described.get("problem"),
    }


def generator(config: DataConfig) -> dict[str, Any] | None:
    """How a dataset that is not read from a data root is made, and from which seed."""
    if config.name not in GENERATORS:
        return None
    opts = preflight.options(config)
    own_seed = config.name in ("glyphs", "fonts")
    seed_key = "data.options.seed" if own_seed else "data.split_seed"
    seed = opts["seed"] if own_seed else config.split_seed
    out = {"name": GENERATORS[config.name], "seed": seed, "seed_key": seed_key, "options": opts}
    if config.name == "digits":
        out["package"] = f"scikit-learn {_version('scikit-learn')}"
    if config.name == "fonts":  # the rasteriser draws the images: its version matters
        out["package"] = f"Pillow {_version('pillow')}, FreeType {_freetype()}"
    return out


def _freetype() -> str:
    """The version of the FreeType library Pillow draws glyphs with."""
    try:
        from PIL import features

        return features.version("freetype2") or "not available"
    except ImportError:
        return "not available"


def describe(config: DataConfig) -> dict[str, Any]:
    """The notes and normalisation that the loader gives ``config``'s dataset, reading none
    of its files. A drawn dataset is drawn (with torch); CIFAR-FS's notes need torch too."""
    name = config.name
    if name in DRAWN:
        from trainables.data import load_dataset

        dataset = load_dataset(config)
        return {"notes": list(dataset.notes), "normalization": dataset.normalization.as_dict()}
    if name not in FIXED:
        return _failed(f"dataset {name!r} is registered outside gcnc: its loader alone knows it")
    return {"notes": _notes(config), "normalization": FIXED[name].as_dict()}


def _notes(config: DataConfig) -> list[str]:
    if config.name == "cifar_fs":
        from trainables.data.cifar import cifar_fs_notes  # imports torch

        return cifar_fs_notes(config)
    if config.name == "mini_imagenet":
        fraction = preflight.options(config)["holdout_fraction"]
        return [preflight.holdout_note(config.split_seed, fraction)]
    files = fingerprint.data_files(config)  # Fashion-MNIST notes Debian's files
    return list(files.notes) if files is not None else []


def describe_all(configs: list[DataConfig]) -> list[dict[str, Any]]:
    """:func:`describe` of each config, those that need torch in one child process."""
    keys = [json.dumps(c.model_dump(mode="json"), sort_keys=True) for c in configs]
    known = dict(_described)
    pairs = list(zip(keys, configs, strict=True))
    wanted = {k: c for k, c in pairs if c.name in NEEDS_LOADER and k not in known}
    if wanted:
        known |= zip(wanted, _describe_in_child(list(wanted.values())), strict=True)
        _described.update((k, known[k]) for k in wanted if "problem" not in known[k])
    return [copy.deepcopy(known[k]) if c.name in NEEDS_LOADER else describe(c) for k, c in pairs]


def _describe_in_child(configs: list[DataConfig]) -> list[dict[str, Any]]:
    """:func:`describe` of each config, run in ``python -m trainables.data.describe``."""
    payload = json.dumps([c.model_dump(mode="json") for c in configs])
    path = [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trainables.data.describe"],
            input=payload,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(_last_line(done.stderr) or f"exit status {done.returncode}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        if not isinstance(out, list) or len(out) != len(configs):
            raise ValueError(f"{len(configs)} descriptions asked, got {out!r:.200}")
    except (OSError, subprocess.SubprocessError, RuntimeError, ValueError, IndexError) as err:
        failed = _failed(f"could not describe the dataset in a child process: {err}")
        return [failed] * len(configs)
    return out


def _failed(problem: str) -> dict[str, Any]:
    return {"notes": None, "normalization": None, "problem": problem}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    """The child: data sections (a JSON list) on stdin, their descriptions on stdout."""
    out = []
    for data in json.load(sys.stdin):
        try:
            out.append(describe(DataConfig.model_validate(data)))
        except Exception as err:  # recorded in study.json, never fatal to the study
            out.append(_failed(f"{type(err).__name__}: {err}"))
    print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
    main()
