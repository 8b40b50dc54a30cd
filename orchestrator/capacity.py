"""Whether a cluster can ever run a study's trials: a trial's CPUs and GPUs on one node.

Tune waits for resources that no node has forever; :func:`check_capacity` turns that into
bad input, said in one line before anything is written.
"""

from __future__ import annotations

import math

from orchestrator.spec import ResourcesSpec
from studyfiles import InputError

BIGGER = "--address a Ray cluster with bigger nodes"


def check_capacity(
    resources: ResourcesSpec, nodes: list[dict[str, float]], *, stored: bool = False
) -> None:
    """Refuse resources per trial that no node holds (a trial runs on one node).

    Args:
        resources: the study's resources.
        nodes: each live node's total resources, as Ray gives them (``{"CPU": 8.0, ...}``).
            They are the nodes up now: an autoscaling cluster's node types are not known
            here, so a study that only a node still to come would hold is refused too.
        stored: the study's spec is stored already, so its resources cannot change.

    Raises:
        InputError: naming the field, the cluster's capacity and the fix.
    """
    want = {"CPU": resources.cpus_per_trial, "GPU": resources.gpus_per_trial}
    if any(all(_fits(want[k], node.get(k, 0.0)) for k in want) for node in nodes):
        return
    most = {k: max([node.get(k, 0.0) for node in nodes], default=0.0) for k in want}
    short = [k for k in want if not _fits(want[k], most[k])]
    if not short:  # each fits some node, but no node holds both
        raise InputError(
            "resources",
            f"a trial needs {_amount(want['CPU'], 'CPU')} and {_amount(want['GPU'], 'GPU')} "
            f"on one node, but no node of the Ray cluster ({_capacity(nodes)}) has both",
            f"lower resources.cpus_per_trial or resources.gpus_per_trial, or {BIGGER}",
        )
    needs = " and ".join(_amount(want[k], k) for k in short)
    has = " or ".join(f"more than {_amount(most[k], k)}" if most[k] else f"any {k}" for k in short)
    problem = (
        f"a trial needs {needs} on one node, but no node of the Ray cluster has {has} "
        f"({_capacity(nodes)}), so no trial could ever start"
    )
    raise InputError(_FIELDS[short[0]], problem, _fix(short, most, stored=stored))


_FIELDS = {"CPU": "resources.cpus_per_trial", "GPU": "resources.gpus_per_trial"}


def _fix(short: list[str], most: dict[str, float], *, stored: bool) -> str:
    if stored:
        return f"the spec in study.json fixes it; resume with {BIGGER}"
    if not most["CPU"] and "CPU" in short:
        return BIGGER
    fits = {k: math.floor(most[k]) if k == "GPU" and most[k] > 1 else most[k] for k in short}
    sets = " ".join(f"--set {_FIELDS[k]}={fit:g}" for k, fit in fits.items())  # whole GPUs > 1
    return f"e.g. {sets}, or {BIGGER}"


def _fits(want: float, have: float) -> bool:
    return want <= have + 1e-9  # Ray counts resources in units of 1e-4


def _capacity(nodes: list[dict[str, float]]) -> str:
    """``2 nodes, 8 CPUs, 1 GPU in all``."""
    cpus, gpus = (sum(node.get(k, 0.0) for node in nodes) for k in ("CPU", "GPU"))
    parts = [_amount(len(nodes), "node"), _amount(cpus, "CPU")]
    if gpus:
        parts.append(_amount(gpus, "GPU"))
    return ", ".join(parts) + " in all"


def _amount(count: float, unit: str) -> str:
    return f"{count:g} {unit}{'' if count == 1 else 's'}"


def check_shared_storage(folder: str, seen: list[tuple[str, bool]]) -> None:
    """Refuse a ``--storage`` folder on a filesystem that some node of the cluster does not
    share: trials write their rows from whichever node runs them.

    Args:
        folder: the ``--storage`` folder, as the driver sees it.
        seen: for each live node, its address and whether it saw a file the driver had
            just written in ``folder``.

    Raises:
        InputError: naming the nodes that did not see it and the fix.
    """
    blind = [address for address, saw in seen if not saw]
    if not blind:
        return
    shown = ", ".join(blind[:3]) + (f" and {len(blind) - 3} more" if len(blind) > 3 else "")
    raise InputError(
        "--storage",
        f"{folder} is not shared with {len(blind)} of the cluster's {len(seen)} nodes "
        f"({shown}): rows written there would be scattered over the nodes' own disks",
        "give a path every node mounts at the same place (NFS) or an object store URI (s3://…)",
    )
