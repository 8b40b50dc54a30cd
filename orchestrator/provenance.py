"""``study.json``: the resolved spec, its hash and what produced the study (docs/schema.md)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa

from orchestrator.spec import StudySpec, spec_hash
from studyfiles import InputError, StudyDir
from studyfiles.schema import SEED_PARAM

PACKAGES = ("torch", "torchvision", "ray", "optuna", "pyarrow", "pandas", "numpy", "pydantic")


def study_info(study: StudySpec) -> dict[str, Any]:
    """The content of ``study.json`` for ``study`` (docs/schema.md)."""
    spec = study.resolved()
    return {
        "name": study.name,
        "spec": spec,
        "spec_hash": spec_hash(spec),
        "sweep_params": study.sweep_params(),
        "seed_param": SEED_PARAM,
        "code_version": code_version(),
        "packages": package_versions(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def open_study_dir(sdir: StudyDir, study: StudySpec) -> tuple[dict[str, Any], bool]:
    """Create the directory's ``study.json``, or check the existing one holds the same spec.

    Returns:
        The study info and whether the directory already existed (a resume).

    Raises:
        InputError: the directory holds a study with another spec hash.
    """
    info = study_info(study)
    if not sdir.exists():
        try:
            sdir.storage.write_bytes(sdir.study_json, json.dumps(info, indent=2).encode())
        except (OSError, pa.ArrowException) as err:
            raise InputError(
                "--storage",
                f"cannot write {sdir.study_json}: {err}",
                "give a writable local path or URI",
            ) from None
        return info, False
    stored = sdir.read_info()
    if stored.get("spec_hash") != info["spec_hash"]:
        changed = _changed_keys(stored.get("spec", {}), info["spec"])
        raise InputError(
            "study.json",
            f"{sdir.location} holds study {stored.get('name')!r} with spec "
            f"{stored.get('spec_hash')}, this file resolves to {info['spec_hash']} "
            f"(differs in {', '.join(changed) or 'the spec'})",
            "use another --storage or --set name=..., or `gcnc resume` the stored spec",
        )
    return stored, True


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out[:5]


def code_version() -> str:
    """``gcnc <version>`` plus the git commit of the source tree when there is one."""
    try:
        version = importlib.metadata.version("gcnc")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    commit = _git_commit(Path(__file__).resolve().parent.parent)
    return f"gcnc {version}" + (f" (git {commit})" if commit else "")


def _git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
