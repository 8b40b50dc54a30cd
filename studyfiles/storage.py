"""Where studies live: a ``pyarrow.fs`` filesystem and absolute paths in it.

A location is a local path (made absolute once, here) or a URI that ``pyarrow.fs``
understands (``s3://bucket/runs``, ``gs://…``, ``file:///…``). Writes are atomic: on a
filesystem a temporary file in the same folder is renamed over the target; on an object
store a single put replaces the object whole. Listings leave out names starting with ``.``
(writes in progress) or ``_`` (not data: ``_SUCCESS``, ``_common_metadata``).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from studyfiles.errors import InputError, first_line

RENAMING_FILESYSTEMS = frozenset({"local", "hdfs"})  # where rename replaces atomically


def _single_put(location: str) -> str:
    """An ``s3://`` URI that opens its objects lazily (``allow_delayed_open``), unless it says
    otherwise: a small file is then sent in one PUT when it is closed, instead of a multipart
    upload of three requests, and no half-made upload is left behind by a killed process."""
    if not location.startswith("s3://") or "allow_delayed_open=" in location:
        return location
    return location + ("&" if "?" in location else "?") + "allow_delayed_open=true"


@dataclass(frozen=True)
class Storage:
    """A filesystem and a root folder in it.

    Attributes:
        fs: the ``pyarrow.fs`` filesystem.
        root: the absolute path of the folder inside ``fs``.
        location: how the user named it (a local path or a URI), for messages.
    """

    fs: pafs.FileSystem
    root: str
    location: str

    @classmethod
    def open(cls, location: str, *, field: str = "--storage") -> Storage:
        """The storage at a local path or URI; an unusable one raises :class:`InputError`
        naming ``field``."""
        if "://" not in location:
            path = os.path.abspath(os.path.expanduser(location))
            return cls(pafs.LocalFileSystem(), path, path)
        try:
            fs, path = pafs.FileSystem.from_uri(_single_put(location))
        except (pa.ArrowException, ValueError, OSError) as err:
            raise InputError(
                field,
                f"cannot open {location!r}: {err}",
                "give a local path or a URI pyarrow.fs understands",
            ) from None
        base, sep, query = location.partition("?")
        return cls(fs, path.rstrip("/") or "/", base.rstrip("/") + sep + query)

    def child(self, *parts: str) -> Storage:
        """The storage rooted at a subfolder (in a URI, before its query string:
        ``s3://b/runs?endpoint_override=h:9000`` → ``s3://b/runs/NAME?endpoint_override=…``)."""
        base, sep, query = self.location.partition("?") if "://" in self.location else (
            self.location, "", "")  # fmt: skip
        loc = "/".join([base.rstrip("/"), *parts]) + sep + query
        return Storage(self.fs, self.path(*parts), loc)

    def reach(self, *, field: str = "--storage") -> Storage:
        """This storage, once its root answers (a folder not made yet answers too).

        Raises:
            InputError: naming ``field``, where the store cannot be reached (a wrong
                endpoint, credentials it refuses, no network).
        """
        try:
            self.fs.get_file_info(self.root)
        except (pa.ArrowException, OSError) as err:
            fix = (
                "check the store's endpoint (AWS_ENDPOINT_URL, or ?endpoint_override=HOST:PORT"
                "&scheme=http in the URI), its credentials and the network"
                if "://" in self.location
                else "give a folder this user can read and write"
            )
            problem = f"cannot reach {self.location}: {first_line(err)}"
            raise InputError(field, problem, fix) from None
        return self

    def path(self, *parts: str) -> str:
        """An absolute path below the root."""
        return posixpath.join(self.root, *parts)

    @property
    def renames(self) -> bool:
        """Whether atomic writes go through a rename (a filesystem, not an object store)."""
        return self.fs.type_name in RENAMING_FILESYSTEMS

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def is_file(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace the file at ``path`` with ``data`` atomically."""
        folder = posixpath.dirname(path)
        self.fs.create_dir(folder, recursive=True)
        if not self.renames:
            with self.fs.open_output_stream(path) as out:  # one put
                out.write(data)
            return
        tmp = posixpath.join(folder, f".{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with self.fs.open_output_stream(tmp) as out:
                out.write(data)
            self.fs.move(tmp, path)
        finally:
            self.delete(tmp)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def files(self, folder: str, *, suffix: str = "", recursive: bool = True) -> list[str]:
        """Every file below ``folder`` (or only in it) whose name ends with ``suffix``, sorted;
        names starting with ``.`` or ``_`` are left out."""
        selector = pafs.FileSelector(folder, recursive=recursive, allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted(
            i.path
            for i in infos
            if i.type == pafs.FileType.File
            and i.base_name.endswith(suffix)
            and not i.base_name.startswith((".", "_"))
        )

    def delete(self, path: str) -> None:
        """Remove a file; a missing one is fine."""
        with contextlib.suppress(FileNotFoundError, pa.ArrowException, OSError):
            self.fs.delete_file(path)

    def remove_empty_folder(self, folder: str) -> None:
        """Remove ``folder`` if nothing is left in it (a folder with a file stays)."""
        if self.fs.type_name == "local":
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # refuses, as wanted, a folder that holds a file
            return
        with contextlib.suppress(pa.ArrowException, OSError):
            if not self.fs.get_file_info(pafs.FileSelector(folder, recursive=True)):
                self.fs.delete_dir(folder)  # on an object store: a folder marker, if any
