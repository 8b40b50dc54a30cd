"""``study.json``: the resolved spec, its hash and what produced the study (docs/schema.md).

What produced it: the code (version, git commit, dirty flag, and the diff beside
``study.json`` as ``code.diff`` when the tree was dirty: the tracked files' changes, then
each untracked file as a new file, up to a size cap), the packages, and each dataset the
study reads (notes, normalisation, file hashes or generator and seed). It is gathered once,
when the study directory is created; a resume reads it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import platform
import stat
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
#: Untracked files stored in ``code.diff``: at most this many bytes of one file, of all of
#: them, and this many files; a file past a cap is named there with its size, not stored.
UNTRACKED_FILE_BYTES = 1 << 20
UNTRACKED_TOTAL_BYTES = 8 << 20
UNTRACKED_FILES = 1000
_NEW_FILE = ("diff", "--no-index", "--binary", "--no-color", "--no-ext-diff", "--", "/dev/null")


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
    diff: bytes | None = None  # when dirty: `git diff HEAD`, then the untracked files

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
    header = [
        f"# gcnc: the source tree differs from git commit {commit}: git diff HEAD below, "
        "then each untracked file as a new file (git apply adds them)"
    ]
    added = b""
    if untracked:
        notes, added = _untracked_diffs(folder)
        header += [
            "# untracked files (each appended below as a new file, but for those noted after):",
            *(f"#   {n}" for n in untracked),
            *(["# notes on untracked files:", *notes] if notes else []),
        ]
    body = "\n".join(header).encode(errors="surrogateescape") + b"\n" + diff + added
    return CodeState(version, commit, dirty=True, untracked=untracked, diff=body)


def _untracked_diffs(folder: Path) -> tuple[list[str], bytes]:
    """Each untracked, not ignored file under ``folder`` as ``git diff --no-index /dev/null
    FILE`` gives it (binary files as git binary patches), and ``# …`` lines naming the files
    left out (past a cap, unreadable) and those stored as binary. Never raises."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    listing = _git(folder, "ls-files", "-z", "--others", "--exclude-standard", "--full-name", ".")
    if top is None or listing is None:
        return ["# (the untracked files' contents are not stored: git could not list them)"], b""
    root = Path(top.decode(errors="surrogateescape").strip())
    notes, parts, total = [], [], 0
    for name in filter(None, listing.decode(errors="surrogateescape").split("\0")):
        why, size = _left_out(root / name, total=total, stored=len(parts))
        patch = None if why else _git(root, *_NEW_FILE, name, ok=(1,))
        if patch is None:
            notes.append(f"#   {name}: not stored ({why or 'git diff failed'})")
            continue
        if b"\nGIT binary patch\n" in patch:
            notes.append(f"#   {name}: stored as a git binary patch")
        parts.append(patch)
        total += size
    return notes, b"".join(parts)


def _left_out(path: Path, *, total: int, stored: int) -> tuple[str | None, int]:
    """Why an untracked file is not stored (None: it is), and its size in bytes."""
    try:
        info = path.lstat()
    except OSError as err:
        return f"unreadable: {err.strerror}", 0
    if stat.S_ISDIR(info.st_mode):  # git lists a nested repository as a folder
        return "a nested git repository", 0
    size = info.st_size
    if size > UNTRACKED_FILE_BYTES:
        return f"{size} bytes, over the cap of {UNTRACKED_FILE_BYTES} per file", size
    if total + size > UNTRACKED_TOTAL_BYTES or stored >= UNTRACKED_FILES:
        cap = f"{UNTRACKED_TOTAL_BYTES} bytes or {UNTRACKED_FILES} files"
        return f"{size} bytes, past the cap of {cap} in all", size
    return None, size


def code_version() -> str:
    """``gcnc <version>`` plus the git commit of the source tree when there is one."""
    return code_state().version_line()


def _own_version() -> str:
    try:
        return importlib.metadata.version("gcnc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git(folder: Path, *args: str, ok: tuple[int, ...] = (0,)) -> bytes | None:
    """The output of ``git -C folder args``; None when git fails (exits with a status not
    in ``ok``, or says nothing with one other than 0) or is not there."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(folder), *args],  # reads: no index lock
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode == 0 or (done.returncode in ok and done.stdout):
        return done.stdout
    return None


def package_versions() -> dict[str, str]:
    """Versions of Python, gcnc and the packages a result depends on."""
    out = {"python": platform.python_version(), "gcnc": _own_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
