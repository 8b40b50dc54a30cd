"""``study.json``: the resolved spec, its hash and what produced the study (docs/schema.md).

What produced it: the code (version, git commit, dirty flag, and the diff beside
``study.json`` as ``code.diff`` when the tree was dirty), the packages, and each dataset the
study reads (notes, normalisation, file hashes or generator and seed). It is gathered once,
when the study directory is created; a resume reads it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from orchestrator.checks import data_configs
from orchestrator.spec import StudySpec, spec_hash
from studyfiles import InputError, StudyDir
from studyfiles.layout import CODE_DIFF
from studyfiles.schema import SEED_PARAM
from trainables.data.describe import dataset_records

PACKAGES = (
    "torch", "torchvision", "ray", "optuna", "pyarrow", "pandas", "numpy", "pydantic",
    "scipy", "scikit-learn", "pillow",
)  # fmt: skip
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the source tree whose git state counts
GIT_TIMEOUT_S = 10.0


def study_info(study: StudySpec, *, code: CodeState | None = None) -> dict[str, Any]:
    """The content of ``study.json`` for ``study`` (docs/schema.md).

    Args:
        study: the study.
        code: the source tree's state (default: read now); :func:`open_study_dir` writes
            its diff beside ``study.json``.
    """
    spec = study.resolved()
    code = code_state() if code is None else code
    return {
        "name": study.name,
        "spec": spec,
        "spec_hash": spec_hash(spec),
        "sweep_params": study.sweep_params(),
        "seed_param": SEED_PARAM,
        "plan": study.plan().as_dict(),  # every default filled in, also where spec omits it
        "code_version": code.version_line(),
        "packages": package_versions(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "code": code.record(),
        "datasets": data_provenance(study),
    }


def data_provenance(study: StudySpec) -> list[dict[str, Any]]:
    """``study.json``'s ``datasets``: one record per distinct data section of the study's
    trials (those validation checks: a search's edge values stand for its range), each file
    hashed once for the whole study. Built without torch; files missing on this machine are
    recorded as missing (docs/schema.md)."""
    return dataset_records(data_configs(study))


def open_study_dir(sdir: StudyDir, study: StudySpec) -> tuple[dict[str, Any], bool]:
    """Create the directory's ``study.json``, or check the existing one holds the same spec.

    Returns:
        The study info and whether the directory already existed (a resume).

    Raises:
        InputError: the directory holds a study with another spec hash.
    """
    if not sdir.exists():
        code = code_state()
        info = study_info(study, code=code)
        _write(sdir, code, info)
        return info, False
    spec = study.resolved()  # a resume: provenance is what study.json holds
    wanted = spec_hash(spec)
    stored = sdir.read_info()
    if stored.get("spec_hash") != wanted:
        changed = _changed_keys(stored.get("spec", {}), spec)
        raise InputError(
            "study.json",
            f"{sdir.location} holds study {stored.get('name')!r} with spec "
            f"{stored.get('spec_hash')}, this file resolves to {wanted} "
            f"(differs in {', '.join(changed) or 'the spec'})",
            "use another --storage or --set name=..., or `gcnc resume` the stored spec",
        )
    return stored, True


def _write(sdir: StudyDir, code: CodeState, info: dict[str, Any]) -> None:
    """``code.diff`` (when dirty), then ``study.json``, which makes the directory a study."""
    files = [(sdir.code_diff, code.diff)] if code.diff is not None else []
    files.append((sdir.study_json, json.dumps(info, indent=2).encode()))
    for path, data in files:
        try:
            sdir.storage.write_bytes(path, data)
        except (OSError, pa.ArrowException) as err:
            raise InputError(
                "--storage", f"cannot write {path}: {err}", "give a writable local path or URI"
            ) from None


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out[:5]


@dataclass(frozen=True)
class CodeState:
    """The source tree that runs a study: gcnc's version and, in a git checkout, its commit,
    whether it differs from it (changed tracked files or untracked ones), and if so the
    ``code.diff`` to write beside ``study.json``."""

    version: str
    commit: str | None = None  # None: not a git checkout (or git is not installed)
    dirty: bool | None = None  # None: unknown
    untracked: tuple[str, ...] = ()  # untracked, not ignored (a new folder as one entry)
    diff: bytes | None = None  # when dirty: `git diff HEAD`, led by the untracked names

    def version_line(self) -> str:
        """``code_version``: ``gcnc <version>``, plus ``(git <commit>[+dirty])`` if known."""
        if self.commit is None:
            return f"gcnc {self.version}"
        return f"gcnc {self.version} (git {self.commit[:12]}{'+dirty' if self.dirty else ''})"

    def record(self) -> dict[str, Any]:
        """``study.json``'s ``code`` (docs/schema.md)."""
        return {
            "version": self.version,
            "commit": self.commit,
            "dirty": self.dirty,
            "untracked": list(self.untracked),
            "diff": CODE_DIFF if self.diff is not None else None,
            "diff_sha256": hashlib.sha256(self.diff).hexdigest() if self.diff is not None else None,
        }


def code_state(root: Path | None = None) -> CodeState:
    """The state of the source tree at ``root`` (default: the one this module is in).

    Only changes under ``root`` count (a checkout inside a larger repository).
    """
    folder = SOURCE_ROOT if root is None else root
    version = _own_version()
    head = _git(folder, "rev-parse", "HEAD")
    if head is None:
        return CodeState(version)
    commit = head.decode().strip()
    diff = _git(folder, "diff", "HEAD", "--no-color", "--no-ext-diff", "--", ".")
    others = _git(folder, "ls-files", "--others", "--exclude-standard", "--directory", "--", ".")
    if diff is None or others is None:
        return CodeState(version, commit)
    untracked = tuple(others.decode(errors="replace").splitlines())
    if not diff.strip() and not untracked:
        return CodeState(version, commit, dirty=False)
    header = [f"# gcnc: the source tree differs from git commit {commit}: git diff HEAD below"]
    if untracked:
        header += ["# untracked files (not in the diff):", *(f"#   {n}" for n in untracked)]
    body = "\n".join(header).encode() + b"\n" + diff
    return CodeState(version, commit, dirty=True, untracked=untracked, diff=body)


def code_version() -> str:
    """``gcnc <version>`` plus the git commit of the source tree when there is one."""
    return code_state().version_line()


def _own_version() -> str:
    try:
        return importlib.metadata.version("gcnc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git(folder: Path, *args: str) -> bytes | None:
    """The output of ``git -C folder args``; None when git fails or is not there."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(folder), *args],  # reads: no index lock
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def package_versions() -> dict[str, str]:
    """Versions of Python, gcnc and the packages a result depends on."""
    out = {"python": platform.python_version(), "gcnc": _own_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
