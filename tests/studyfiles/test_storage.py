"""Atomic writes on a filesystem (temp + rename) and on an object store (one put)."""

from __future__ import annotations

import os

import pyarrow.fs as pafs
import pytest

from studyfiles import InputError
from studyfiles.storage import Storage


def test_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = Storage.open("runs")
    assert storage.root == str(tmp_path / "runs")
    assert storage.renames


def test_write_creates_folders_and_replaces_leaving_no_temp_files(tmp_path):
    storage = Storage.open(str(tmp_path))
    path = storage.path("a", "b", "x.parquet")
    storage.write_bytes(path, b"first")
    storage.write_bytes(path, b"second")
    assert storage.read_bytes(path) == b"second"
    assert os.listdir(tmp_path / "a" / "b") == ["x.parquet"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    storage = Storage.open(str(tmp_path))
    path = storage.path("x.parquet")
    storage.write_bytes(path, b"old")
    with pytest.raises(TypeError):
        storage.write_bytes(path, object())  # type: ignore[arg-type]  # fails mid-write
    assert storage.read_bytes(path) == b"old"
    assert os.listdir(tmp_path) == ["x.parquet"]


def test_object_store_writes_are_single_puts():
    fs = pafs._MockFileSystem()
    storage = Storage(fs, "/bucket/runs", "mock://bucket/runs")
    assert not storage.renames
    path = storage.path("s", "metrics", "trial_id=t1", "epoch=00000.parquet")
    storage.write_bytes(path, b"row")
    storage.write_bytes(path, b"row2")
    assert storage.read_bytes(path) == b"row2"
    assert storage.files(storage.path("s")) == [path]


def test_files_lists_recursively_by_suffix_and_hides_dot_files(tmp_path):
    storage = Storage.open(str(tmp_path))
    for name in (
        "m/t=1/epoch=00001.parquet",
        "m/t=1/.x.parquet.ab.tmp",
        "m/t=2/c.parquet",
        "m/notes.txt",
    ):
        storage.write_bytes(storage.path(name), b"")
    (tmp_path / "m" / "t=1" / ".hidden.parquet").write_bytes(b"")
    found = storage.files(storage.path("m"), suffix=".parquet")
    assert found == [storage.path("m/t=1/epoch=00001.parquet"), storage.path("m/t=2/c.parquet")]
    assert storage.files(storage.path("missing")) == []


def test_child_keeps_the_location_readable(tmp_path):
    storage = Storage.open(str(tmp_path)).child("study")
    assert storage.root == str(tmp_path / "study")
    assert storage.location == f"{tmp_path}/study"


def test_an_unknown_uri_scheme_is_bad_input():
    with pytest.raises(InputError) as caught:
        Storage.open("nosuchscheme://bucket/x")
    assert caught.value.field == "--storage"


def test_files_can_list_one_folder_only_and_empty_folders_are_removed(tmp_path):
    storage = Storage.open(str(tmp_path))
    for name in ("m/part-a.parquet", "m/t=1/epoch=00001.parquet", "m/t=2/c.parquet"):
        storage.write_bytes(storage.path(name), b"")
    assert storage.files(storage.path("m"), recursive=False) == [storage.path("m/part-a.parquet")]
    storage.delete(storage.path("m/t=2/c.parquet"))
    storage.remove_empty_folder(storage.path("m/t=2"))
    storage.remove_empty_folder(storage.path("m/t=1"))  # holds a file: stays
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["part-a.parquet", "t=1"]


def test_a_child_of_a_uri_goes_before_its_query_string():
    uri = "s3://bucket/runs/?endpoint_override=127.0.0.1:9000&scheme=http"
    child = Storage.open(uri).child("quickstart-smoke", "metrics")
    assert child.root == "bucket/runs/quickstart-smoke/metrics"
    assert child.location == (
        "s3://bucket/runs/quickstart-smoke/metrics?endpoint_override=127.0.0.1:9000&scheme=http"
    )
    again = Storage.open(child.location)  # a worker opens the study from its location
    assert again.root == child.root and again.location == child.location
    assert Storage.open("/tmp/a?b").child("c").location.endswith("/tmp/a?b/c")  # a local name
