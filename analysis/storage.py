"""Local paths and ``pyarrow.fs`` URIs behind one small interface."""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs


@dataclass(frozen=True)
class Location:
    """A directory on some filesystem, plus how to name it back to the user."""

    fs: pafs.FileSystem
    path: str  # the filesystem's own path (no scheme)
    uri: str  # what the user passed, normalised (absolute for local paths)

    def join(self, *parts: str) -> Location:
        """A location below this one."""
        sep = os.sep if self.is_local else "/"
        join = os.path.join if self.is_local else posixpath.join
        return Location(
            self.fs, join(self.path, *parts), self.uri.rstrip(sep) + sep + "/".join(parts)
        )

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)


def resolve(path_or_uri: str | os.PathLike) -> Location:
    """A location for a local path or any URI ``pyarrow.fs`` understands (``s3://``, ``file://``)."""
    text = os.fspath(path_or_uri)
    if "://" in text:
        fs, path = pafs.FileSystem.from_uri(text)
        if isinstance(fs, pafs.LocalFileSystem):
            return Location(fs, path, path)
        return Location(fs, path, text.rstrip("/"))
    absolute = os.path.abspath(os.path.expanduser(text))
    return Location(pafs.LocalFileSystem(), absolute, absolute)


def exists(loc: Location) -> bool:
    """Whether a file or directory is there."""
    return loc.fs.get_file_info(loc.path).type != pafs.FileType.NotFound


def read_bytes(loc: Location) -> bytes:
    """The whole file."""
    with loc.fs.open_input_stream(loc.path) as stream:
        return stream.read()


def write_bytes(loc: Location, data: bytes) -> None:
    """Write a file; on a local disk through a temporary name and a rename (atomic)."""
    parent = os.path.dirname(loc.path) if loc.is_local else posixpath.dirname(loc.path)
    if parent:
        loc.fs.create_dir(parent, recursive=True)
    if not loc.is_local:
        with loc.fs.open_output_stream(loc.path) as stream:
            stream.write(data)
        return
    tmp = f"{loc.path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, loc.path)


def list_parquet(loc: Location) -> list[str]:
    """Every ``*.parquet`` below a directory, sorted; hidden and ``_``-prefixed files skipped."""
    if not exists(loc):
        return []
    selector = pafs.FileSelector(loc.path, recursive=True)
    files = []
    for info in loc.fs.get_file_info(selector):
        name = info.base_name
        hidden = name.startswith((".", "_"))
        if info.type == pafs.FileType.File and name.endswith(".parquet") and not hidden:
            files.append(info.path)
    return sorted(files)
