"""A tiny deterministic trainable for tests and benchmarks (``trainable = "testing.sleep"``).

It speaks the same :class:`~trainables.reporter.Reporter` protocol as ``trainables.run``
and reads the same config, but sleeps instead of training. Its metrics are closed-form
functions of ``train.lr``, ``train.seed`` and the epoch, so a resumed trial reports exactly
what an uninterrupted one would. ``model.options`` steer it:

- ``sleep_s`` (0.2): seconds per epoch.
- ``diverge_lr`` / ``diverge_at``: trials with ``lr >= diverge_lr`` see a non-finite loss at
  epoch ``diverge_at`` (2), report ``diverged = true`` and stop.
- ``crash_at`` / ``crash_marker``: the first attempt to start epoch ``crash_at`` kills its
  own process (SIGKILL) if the marker file does not exist yet, creating it first; the
  marker path may name ``{lr}`` and ``{seed}`` to give each trial its own.
- ``fail_lr``: trials with ``lr >= fail_lr`` raise ValueError on every attempt, before
  their first report (a bad config: retrying cannot help).
- ``barrier``: with ``log_dir``, wait (up to 5 minutes) until this many attempts have
  started before training, so that many trials provably run at the same time.
- ``log_dir``: each attempt appends ``{lr, seed, start_epoch, pid, node, gpus}`` to
  ``<log_dir>/starts.jsonl`` (``node``: the PID of the Ray node's raylet, under Ray;
  ``gpus``: the ``CUDA_VISIBLE_DEVICES`` Ray set for the trial's process).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from trainables.config import TrialConfig
from trainables.reporter import Reporter

STEPS_PER_EPOCH = 10


def curve(lr: float, seed: int, epoch: int) -> dict[str, float]:
    """The closed-form metrics at ``epoch``."""
    loss = (1.0 + 0.01 * seed) * math.exp(-lr * epoch) + 0.05
    return {
        "train_loss": loss,
        "train_acc": 1.0 - loss / 2.0,
        "test_acc": 0.9 - loss / 2.0,
        "gc": 10.0 * loss,
        "nc_cdnv": 0.1 * loss,
    }


def run(config: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Sleep through ``train.epochs`` epochs, reporting a row and a checkpoint for each."""
    cfg = TrialConfig.from_dict(config)
    opts = cfg.model.options
    lr, seed = cfg.train.lr, cfg.train.seed
    state = reporter.restore() or {"epoch": 0, "wall_time_s": 0.0, "fresh": True}
    _log_start(opts, cfg, state["epoch"])
    if "fail_lr" in opts and lr >= opts["fail_lr"]:
        raise ValueError(f"train.lr = {lr} is at or above fail_lr = {opts['fail_lr']}")
    _wait_for_peers(opts)
    started = time.perf_counter() - state["wall_time_s"]
    epoch = state["epoch"]
    if state.get("fresh") and cfg.metrics.at_init:
        _report(reporter, epoch, lr, seed, started)
    while epoch < cfg.train.epochs:
        _maybe_crash(opts, epoch + 1, lr=lr, seed=seed)
        time.sleep(float(opts.get("sleep_s", 0.2)))
        epoch += 1
        if "diverge_lr" in opts and lr >= opts["diverge_lr"] and epoch >= opts.get("diverge_at", 2):
            row = {
                "epoch": epoch,
                "step": epoch * STEPS_PER_EPOCH,
                "diverged": True,
                "wall_time_s": time.perf_counter() - started,
            }
            reporter.report(row, checkpoint={"epoch": epoch, "wall_time_s": row["wall_time_s"]})
            return {"epochs_done": epoch, "diverged": True}
        _report(reporter, epoch, lr, seed, started)
    return {"epochs_done": epoch, "diverged": False}


def _report(reporter: Reporter, epoch: int, lr: float, seed: int, started: float) -> None:
    wall = time.perf_counter() - started
    row = {
        "epoch": epoch,
        "step": epoch * STEPS_PER_EPOCH,
        "diverged": False,
        "wall_time_s": wall,
        **curve(lr, seed, epoch),
    }
    reporter.report(row, checkpoint={"epoch": epoch, "wall_time_s": wall})


def _maybe_crash(opts: dict[str, Any], epoch: int, *, lr: float, seed: int) -> None:
    if opts.get("crash_at") != epoch or "crash_marker" not in opts:
        return
    marker = Path(str(opts["crash_marker"]).format(lr=lr, seed=seed))
    try:
        marker.open("x").close()  # only the first attempt creates it
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _wait_for_peers(opts: dict[str, Any], *, timeout_s: float = 300.0) -> None:
    if "barrier" not in opts or "log_dir" not in opts:
        return
    log = Path(opts["log_dir"], "starts.jsonl")
    deadline = time.monotonic() + timeout_s
    while len(log.read_text().splitlines()) < int(opts["barrier"]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {opts['barrier']} trials started")
        time.sleep(0.05)


def _log_start(opts: dict[str, Any], cfg: TrialConfig, start_epoch: int) -> None:
    if "log_dir" not in opts:
        return
    entry = {
        "lr": cfg.train.lr,
        "seed": cfg.train.seed,
        "start_epoch": start_epoch,
        "pid": os.getpid(),
        "node": os.environ.get("RAY_RAYLET_PID"),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),  # what Ray gave the trial's process
    }
    with open(Path(opts["log_dir"], "starts.jsonl"), "a") as fh:
        fh.write(json.dumps(entry) + "\n")
