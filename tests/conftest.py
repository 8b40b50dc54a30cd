"""Shared fixtures. Ray starts once per test session, and only for tests that ask for it."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Point ``XDG_CACHE_HOME`` at a folder of this session, so that no test reads files an
    earlier run left in the user's cache (say, decompressed Fashion-MNIST) or writes there.
    Set before Ray starts, so trial workers see it too."""
    folder = str(tmp_path_factory.mktemp("xdg-cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", folder)
        yield folder


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
SLEEPY = "testing.sleep=sleepy:run"  # the tests' stand-in trainable (tests/fixtures/sleepy.py)
sys.path.insert(0, FIXTURES)  # for the test modules that import it, before they are collected


@pytest.fixture(scope="session", autouse=True)
def test_trainables() -> Iterator[None]:
    """Register the tests' own trainable for every process of the session: this one, the
    drivers it starts and the Ray workers (they inherit ``PYTHONPATH`` and, through the
    job, the trainable's module). Set before Ray starts."""
    path = os.pathsep.join(filter(None, [FIXTURES, os.environ.get("PYTHONPATH")]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", path)
        patch.setenv("GCNC_TRAINABLES", SLEEPY)
        yield


@pytest.fixture(scope="session")
def ray_tmpdir() -> Iterator[str]:
    """A short private folder for every Ray instance of the session (sockets, logs, the
    address file), also passed to subprocesses through ``RAY_TMPDIR``."""
    folder = tempfile.mkdtemp(prefix="gcnc-t", dir="/tmp")
    os.mkdir(os.path.join(folder, "ray"))  # Ray's default temp dir under RAY_TMPDIR
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", folder)
        yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster(ray_tmpdir: str) -> Iterator[object]:
    """One local Ray cluster (a head node with 2 CPUs) with this process connected.

    Tests may add worker nodes (``ray_cluster.add_node``) and must remove them again.
    """
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "object_store_memory": 100 * 1024**2,
            "temp_dir": os.path.join(ray_tmpdir, "ray"),
            "include_dashboard": False,
        },
    )
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
