"""Ray for a run: the cluster at ``--address``, or a private local instance; Tune's settings;
and the checks that need the cluster (its nodes' capacity, shared storage)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import Any

import ray

from orchestrator.capacity import check_capacity
from orchestrator.checks import data_configs
from orchestrator.cluster.probe import check_data, check_shared, node_resources
from orchestrator.cluster.settings import tune_environment, tune_settings
from orchestrator.cluster.temp import PRIVATE_PREFIX, remove_dead_private_folders, short_temp_root
from orchestrator.spec import StudySpec
from studyfiles import InputError
from studyfiles.errors import first_line
from studyfiles.storage import Storage

LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # trials exchange no large objects


@contextlib.contextmanager
def session(
    study: StudySpec,
    *,
    address: str | None = None,
    stored: bool = False,
    storage: Storage | None = None,
) -> Iterator[None]:
    """Ray (see :func:`ray_session`) and Tune's settings for running ``study``.

    As soon as Ray is up, before the caller writes to the study directory, a study is
    refused whose trials no node of the cluster can hold (Tune would wait for such a node
    forever), whose dataset files some node lacks (every trial there would fail), or whose
    ``storage`` folder is on a disk some node does not share.

    Args:
        study: the study to run.
        address: a Ray cluster, or None for a private local Ray.
        stored: whether the study's spec is already stored (its resources are fixed).
        storage: the ``--storage`` folder (None: not checked).

    Raises:
        InputError: a trial's resources exceed every node's, a node lacks the dataset's
            files, or a node does not see ``storage``.
    """
    settings = tune_settings(study)
    with tune_environment(settings), ray_session(address, settings):
        check_capacity(study.resources, node_resources(), stored=stored)
        check_data(data_configs(study), on_nodes=ray_session_is_shared(address))
        if storage is not None:
            check_shared(storage)
        yield


def ray_session_is_shared(address: str | None) -> bool:
    """Whether the run's trials may run on machines other than this one."""
    return address is not None or len([n for n in ray.nodes() if n.get("Alive")]) > 1


@contextlib.contextmanager
def ray_session(address: str | None, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Ray for the run: the one already initialised, a cluster at ``address``, or a private
    local instance with its own temp dir (never a stranger's cluster).

    Through Ray Client (``ray://``), Tune's driver runs in the cluster: ``env`` (Tune's
    settings, set in this process by the caller) is sent with the job, and the user's
    own values of those variables win as they do here.
    """
    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"logging_level": logging.WARNING}
    if (address or "").startswith("ray://"):  # Ray Client takes fewer options
        sent = {k: os.environ.get(k, v) for k, v in (env or {}).items()}
        quiet["runtime_env"] = {"env_vars": sent}
    else:
        quiet["log_to_driver"] = False
    if address:
        _connect(address, quiet)
        temp = None
    else:
        root = short_temp_root()
        remove_dead_private_folders(root or tempfile.gettempdir())
        temp = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=root)
        # Ray notes that a new local instance uses token authentication: expected here.
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        ray.init(
            address="local",
            _temp_dir=temp,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            # Ray starts idle workers for a new driver, but Tune's trial actors carry a
            # runtime env and never use them: they would only take CPU from the trials'
            # start-up.
            _system_config={"prestart_worker_first_driver": False},
            **quiet,
        )
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


CONNECT_TIMEOUT_S = float(os.environ.get("GCNC_CONNECT_TIMEOUT", "30"))


def _connect(address: str, options: dict[str, Any], *, attempts: int = 3) -> None:
    """Join the cluster at ``address``. A Ray Client server may fail a new connection while
    it sets up its per-client server (seen under load); such a refusal is tried again.

    Raises:
        InputError: nothing answers at ``address`` within ``GCNC_CONNECT_TIMEOUT`` seconds
            (default 30), the cluster refuses this driver's token, or its Ray differs.
    """
    _reachable(address, timeout=CONNECT_TIMEOUT_S)
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **options)
            return
        except ConnectionAbortedError as err:
            if not address.startswith("ray://") or attempt == attempts:
                raise _connect_error(address, err) from None
            ray.shutdown()  # the refused attempt's log stream would print every line twice
            first = str(err).strip().splitlines()[-1] if str(err).strip() else "refused"
            print(f"gcnc: {address} refused the connection ({first}); trying again",
                  file=sys.stderr)  # fmt: skip
            time.sleep(2.0 * attempt)
        except Exception as err:  # Ray's own errors: one line naming the cause and the fix
            raise _connect_error(address, err) from None


def _reachable(address: str, *, timeout: float) -> None:
    """Refuse, within ``timeout`` seconds, an address where nothing listens (Ray itself
    would wait minutes printing time-out warnings). ``auto`` is left to Ray."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except OSError as err:
        why = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise InputError(
            "--address",
            f"no Ray cluster answers at {address} ({why} after at most {timeout:g} s)",
            "start one there (ray start --head --port=PORT, docs/running.md), check the "
            "host and port, or leave --address out for a private Ray on this machine",
        ) from None


def _connect_error(address: str, err: Exception) -> InputError:
    text = f"{type(err).__name__}: {err}"
    if "auth" in text.lower() or "token" in text.lower():
        return InputError(
            "--address",
            f"the cluster at {address} refused this driver's credentials",
            "export RAY_AUTH_MODE=token and the cluster's RAY_AUTH_TOKEN here, as on every "
            "node (docs/running.md, 'Token authentication')",
        )
    if "version" in text.lower():
        return InputError(
            "--address",
            f"the cluster at {address} runs another Ray or Python ({first_line(err)})",
            "install the cluster's versions of ray and python where gcnc runs",
        )
    return InputError(
        "--address", f"cannot join the cluster at {address}: {first_line(err)}", "check it is up"
    )
