"""What the cluster is: its nodes' resources, and whether every node sees ``--storage``."""

from __future__ import annotations

import posixpath
import sys
import uuid
from pathlib import Path
from typing import Any

import ray

from orchestrator.capacity import check_shared_storage
from studyfiles import InputError
from studyfiles.storage import Storage
from trainables.config import DataConfig
from trainables.data import preflight

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


def check_data(configs: list[dict[str, Any]], *, on_nodes: bool) -> None:
    """Refuse a study whose dataset files are missing where its trials will run: on this
    machine, or (``on_nodes``) on any live node of the cluster that can run a trial.

    Raises:
        InputError: naming the dataset, where it was looked for, the node and the fix.
    """
    needing = [c for c in configs if c.get("name") in preflight.NEEDS_FILES]
    if not needing:
        return
    if not on_nodes:
        _refuse_missing(_missing_here(needing), node=None)
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    refs = [
        _missing_on_node.options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(needing)
        for n in nodes
    ]
    try:
        found = ray.get(refs, timeout=SHARED_CHECK_S)
    except ray.exceptions.GetTimeoutError:
        print(f"gcnc: could not check within {SHARED_CHECK_S:.0f} s that every node has the "
              "dataset's files; going on", file=sys.stderr)  # fmt: skip
        return
    for node, missing in zip(nodes, found, strict=True):
        _refuse_missing(missing, node=node["NodeManagerAddress"])


def _missing_here(configs: list[dict[str, Any]]) -> list[str]:
    return [m for c in configs if (m := preflight.files_missing(DataConfig.model_validate(c)))]


@ray.remote
def _missing_on_node(configs: list[dict[str, Any]]) -> list[str]:
    """On a node: why the loader would not find each dataset's files there."""
    return _missing_here(configs)


def _refuse_missing(missing: list[str], *, node: str | None) -> None:
    if not missing:
        return
    problem, _, fix = missing[0].partition("; ")
    where = f" on node {node}" if node is not None else ""
    raise InputError("data.data_root", f"{problem}{where}", fix or "set data.data_root")
