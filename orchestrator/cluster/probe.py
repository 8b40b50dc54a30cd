"""What the cluster is: its nodes' resources, and whether every node sees ``--storage``."""

from __future__ import annotations

import posixpath
import sys
import uuid
from pathlib import Path

import ray

from orchestrator.capacity import check_shared_storage
from studyfiles.storage import Storage

SHARED_CHECK_S = 120.0  # for every node to say whether it sees --storage


def node_resources() -> list[dict[str, float]]:
    """The total resources of each live node of the cluster."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def check_shared(storage: Storage) -> None:
    """Each live node looks for a file the driver writes next to the study directory
    ``storage`` (in the ``--storage`` folder, a local path); a node that does not see it is
    refused. Skipped for object stores, which every node reaches, and for one node on the
    driver's own machine (a private Ray)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    remote = ray.util.client.ray.is_connected()
    if storage.fs.type_name != "local" or (len(nodes) <= 1 and not remote):
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    folder = posixpath.dirname(storage.root)
    probe = posixpath.join(folder, f".gcnc-probe-{token}")
    storage.write_bytes(probe, token.encode())
    try:
        refs = [
            _sees.options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote(probe, token)
            for n in nodes
        ]
        try:
            seen = ray.get(refs, timeout=SHARED_CHECK_S)
        except ray.exceptions.GetTimeoutError:
            print(f"gcnc: could not check within {SHARED_CHECK_S:.0f} s that every node sees "
                  f"{folder}; going on", file=sys.stderr)  # fmt: skip
            return
    finally:
        storage.delete(probe)
    check_shared_storage(
        folder, [(n["NodeManagerAddress"], saw) for n, saw in zip(nodes, seen, strict=True)]
    )


@ray.remote
def _sees(path: str, token: str) -> bool:
    """Whether this node reads ``token`` in the file at ``path``."""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False
