"""Refusing resources per trial that no node of the cluster holds."""

from __future__ import annotations

import pytest

from orchestrator.capacity import check_capacity, check_shared_storage
from orchestrator.spec import ResourcesSpec
from studyfiles import InputError


def _nodes(*resources: dict[str, float]) -> list[dict[str, float]]:
    return [{"memory": 1e9, **r} for r in resources]


@pytest.mark.parametrize(
    ("cpus", "gpus", "nodes"),
    [
        (2, 0, _nodes({"CPU": 2})),
        (0.5, 0.25, _nodes({"CPU": 1, "GPU": 1})),
        (4, 1, _nodes({"CPU": 8}, {"CPU": 4, "GPU": 2})),
    ],
)
def test_resources_some_node_holds_are_accepted(cpus, gpus, nodes):
    check_capacity(ResourcesSpec(cpus_per_trial=cpus, gpus_per_trial=gpus), nodes)


@pytest.mark.parametrize(
    ("cpus", "gpus", "nodes", "field", "words"),
    [
        # a trial runs on one node: the cluster's total is not enough
        (3, 0, _nodes({"CPU": 2}, {"CPU": 2}), "resources.cpus_per_trial",
         ["3 CPUs on one node", "more than 2 CPUs (2 nodes, 4 CPUs in all)",
          "--set resources.cpus_per_trial=2,"]),
        (1, 4, _nodes({"CPU": 8, "GPU": 2.5}), "resources.gpus_per_trial",
         ["4 GPUs on one node", "more than 2.5 GPUs (1 node, 8 CPUs, 2.5 GPUs in all)",
          "--set resources.gpus_per_trial=2,"]),  # more than one GPU: whole GPUs
        (8, 1, _nodes({"CPU": 2}), "resources.cpus_per_trial",
         ["8 CPUs and 1 GPU on one node", "more than 2 CPUs or any GPU",
          "--set resources.cpus_per_trial=2 --set resources.gpus_per_trial=0,"]),
        (4, 1, _nodes({"CPU": 8}, {"CPU": 2, "GPU": 1}), "resources",
         ["4 CPUs and 1 GPU on one node", "(2 nodes, 10 CPUs, 1 GPU in all) has both"]),
    ],
)  # fmt: skip
def test_resources_no_node_holds_are_refused(cpus, gpus, nodes, field, words):
    with pytest.raises(InputError) as caught:
        check_capacity(ResourcesSpec(cpus_per_trial=cpus, gpus_per_trial=gpus), nodes)
    assert caught.value.field == field
    for word in words:
        assert word in caught.value.line()


def test_a_stored_spec_is_not_told_to_change():
    with pytest.raises(InputError) as caught:
        check_capacity(ResourcesSpec(cpus_per_trial=3), _nodes({"CPU": 2}), stored=True)
    fix = caught.value.fix
    assert "study.json" in fix and "--address" in fix and "--set" not in fix


def test_storage_every_node_sees_is_accepted():
    check_shared_storage("/shared/runs", [("10.0.0.1", True), ("10.0.0.2", True)])


def test_storage_a_node_does_not_see_is_refused_naming_the_nodes():
    seen = [("10.0.0.1", True), ("10.0.0.2", False)]
    with pytest.raises(InputError) as err:
        check_shared_storage("/home/me/runs", seen)
    assert err.value.field == "--storage"
    assert "/home/me/runs is not shared with 1 of the cluster's 2 nodes (10.0.0.2)" in str(
        err.value
    )
    assert "NFS" in str(err.value) and "s3://" in str(err.value)
    many = [(f"10.0.0.{i}", i == 0) for i in range(6)]
    with pytest.raises(InputError, match=r"10\.0\.0\.1, 10\.0\.0\.2, 10\.0\.0\.3 and 2 more"):
        check_shared_storage("/home/me/runs", many)
