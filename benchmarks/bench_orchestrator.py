"""Overhead of ``gcnc run`` against a plain process pool running the same trials.

    python benchmarks/bench_orchestrator.py --trials 4 --concurrency 2 --trial-seconds 30
    python benchmarks/bench_orchestrator.py --trials 4 8 12   # 2, 4 and 6 waves of trials

Both sides run the same N trials of the real trainable (``trainables.run`` on the bundled
digits, a small MLP, light metrics; seeds 0..N-1) with the same concurrency and the same
CPU threads per trial. The pool side is ``ProcessPoolExecutor`` calling ``trainables.run``
with an in-memory reporter (no Parquet, no checkpoints on disk); the gcnc side is the
``gcnc run`` command, timed from launch to exit (Python start-up, an embedded Ray, Tune,
Parquet rows, checkpoints, compaction; the report is skipped). Printed for each pair (pool
then gcnc, alternating, so that a drift in the machine's load hits both): the walls, the
start-up time of each (launch to first evaluation row), the overhead ratio (gcnc wall /
pool wall), the difference of the walls, and the ratio of the walls after each side's
first row (what the trials cost once running, shut-down included); then, for each trial
count, the medians of these and of the start-up difference. The target is a ratio <= 1.10
for trials of 30 s or more. Most of the difference is a fixed cost (Ray's start-up), so the
ratio falls as waves of trials (trials / concurrency) are added: give several counts to
see by how much.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from trainables import MemoryReporter, TrialConfig
from trainables import run as run_trial

LIGHT = {
    "data": {"name": "digits"},
    "model": {"name": "mlp", "width": 32},
    "train": {"batch_size": 64, "lr": 0.05},
    "metrics": {"gc_batches": 1, "gc_batch_size": 32, "nc_per_class": 20, "fewshot": False},
}


def trial_configs(n: int, epochs: int, *, every: int = 1) -> list[dict[str, Any]]:
    """The benchmark's N trial configs: the light config, ``epochs`` long, evaluated every
    ``every`` epochs, seeds 0..N-1."""
    out = []
    for seed in range(n):
        cfg = TrialConfig.from_dict(LIGHT).model_dump(mode="json")
        cfg["train"]["epochs"], cfg["train"]["seed"] = epochs, seed
        cfg["metrics"]["every"] = every
        out.append(cfg)
    return out


class _FirstRow(MemoryReporter):
    """Remembers when the first row arrived."""

    first_at: float | None = None

    def report(self, metrics, *, checkpoint) -> None:  # type: ignore[no-untyped-def]
        if self.first_at is None:
            self.first_at = time.time()
        super().report(metrics, checkpoint=checkpoint)


def _pool_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _pool_trial(config: dict[str, Any]) -> float:
    reporter = _FirstRow()
    run_trial(config, reporter)
    return reporter.first_at or time.time()


def calibrate_epoch_seconds(threads: int) -> float:
    """Seconds per training epoch of the light config, in this process."""
    torch.set_num_threads(threads)
    run_trial(trial_configs(1, 1)[0], MemoryReporter())  # warm caches: data, imports
    times = {}
    for epochs in (1, 41):  # the same two evaluations (at init and at the end) in both
        start = time.perf_counter()
        run_trial(trial_configs(1, epochs, every=epochs)[0], MemoryReporter())
        times[epochs] = time.perf_counter() - start
    return max((times[41] - times[1]) / 40, 1e-3)


def run_pool(
    configs: list[dict[str, Any]], *, concurrency: int, threads: int
) -> tuple[float, float]:
    """Wall seconds of the pool, and seconds from its start to the first row."""
    # Like Ray does for its workers: every thread pool of a trial (torch, OpenMP, BLAS) gets
    # the trial's CPUs, set before the worker imports anything.
    threads_env = {
        k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
    saved = {k: os.environ.get(k) for k in threads_env}
    os.environ.update(threads_env)
    try:
        return _timed_pool(configs, concurrency=concurrency, threads=threads)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _timed_pool(
    configs: list[dict[str, Any]], *, concurrency: int, threads: int
) -> tuple[float, float]:
    start = time.time()
    ctx = mp.get_context("spawn")  # fresh interpreters, like Ray's workers
    with ProcessPoolExecutor(
        concurrency, mp_context=ctx, initializer=_pool_init, initargs=(threads,)
    ) as pool:
        firsts = list(pool.map(_pool_trial, configs))
    return time.time() - start, min(firsts) - start


STUDY = """
name = "bench"
data = {data}
model = {model}
metrics = {metrics}
[train]
batch_size = {batch_size}
lr = {lr}
epochs = {epochs}
[sweep]
seeds = {seeds}
[resources]
cpus_per_trial = {threads}
max_concurrent = {concurrency}
"""


def _inline(table: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return (
            ("true" if v else "false")
            if isinstance(v, bool)
            else (f'"{v}"' if isinstance(v, str) else str(v))
        )

    return "{" + ", ".join(f"{k} = {value(v)}" for k, v in table.items()) + "}"


def run_gcnc(
    n: int, epochs: int, *, every: int, concurrency: int, threads: int, folder: Path
) -> tuple[float, float]:
    """Wall seconds of ``gcnc run``, and seconds from its launch to the first row on disk."""
    study = folder / "bench.toml"
    study.write_text(
        STUDY.format(
            data=_inline(LIGHT["data"]),
            model=_inline(LIGHT["model"]),
            metrics=_inline(LIGHT["metrics"] | {"every": every}),
            batch_size=LIGHT["train"]["batch_size"],
            lr=LIGHT["train"]["lr"],
            epochs=epochs,
            seeds=list(range(n)),
            threads=threads,
            concurrency=concurrency,
        )
    )
    metrics = folder / "runs" / "bench" / "metrics"
    first: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not first:
            if metrics.is_dir() and any(metrics.rglob("*.parquet")):
                first.append(time.time())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    start = time.time()
    watcher.start()
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        str(study),
        "--storage",
        str(folder / "runs"),
        "--no-report",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.time() - start
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"gcnc run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, (first[0] - start) if first else math.nan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, nargs="+", default=[4], help="trial counts, each measured apart"
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--trial-seconds", type=float, default=30.0)
    parser.add_argument(
        "--evaluations", type=int, default=20, help="rows and checkpoints per trial"
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternating pool / gcnc pairs")
    parser.add_argument(
        "--threads", type=int, default=0, help="per trial (default cores/concurrency)"
    )
    args = parser.parse_args(argv)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.concurrency)
    per_epoch = calibrate_epoch_seconds(threads)
    epochs = max(1, round(args.trial_seconds / per_epoch))
    every = max(1, epochs // args.evaluations)
    print(
        f"trials of {epochs} epochs (~{epochs * per_epoch:.0f} s each, "
        f"{per_epoch * 1e3:.1f} ms per epoch), evaluated every {every} epochs, "
        f"{args.concurrency} at a time, {threads} threads each",
        flush=True,
    )
    summary = []
    for n in args.trials:
        waves = math.ceil(n / args.concurrency)
        print(f"{n} trials ({_waves(waves)}):", flush=True)
        pairs = [
            _pair(n, epochs, every=every, concurrency=args.concurrency, threads=threads, label=i)
            for i in range(1, args.repeats + 1)
        ]
        summary.append(
            (
                n,
                waves,
                _median([g.wall / p.wall for p, g in pairs]),
                _median([g.wall - p.wall for p, g in pairs]),
                _median([g.after_start / p.after_start for p, g in pairs]),
                _median([g.first_row - p.first_row for p, g in pairs]),
            )
        )
    print(f"medians of {args.repeats} (target: ratio <= 1.10 for trials >= 30 s)")
    for n, waves, ratio, extra, steady, start in summary:
        print(
            f"{n} trials ({_waves(waves)}): overhead ratio (gcnc / pool) {ratio:.3f}, "
            f"{extra:+.1f} s; start-up {start:+.1f} s; ratio after the first row {steady:.3f}"
        )


@dataclasses.dataclass(frozen=True)
class Timing:
    """One side of a pair: wall seconds, and seconds from launch to the first row."""

    wall: float
    first_row: float

    @property
    def after_start(self) -> float:
        return self.wall - self.first_row


def _pair(
    n: int, epochs: int, *, every: int, concurrency: int, threads: int, label: int
) -> tuple[Timing, Timing]:
    """One pool run then one ``gcnc run`` of the same ``n`` trials; their timings."""
    configs = trial_configs(n, epochs, every=every)
    pool = Timing(*run_pool(configs, concurrency=concurrency, threads=threads))
    folder = Path(tempfile.mkdtemp(prefix="gcnc-bench-orch-"))
    try:
        gcnc = Timing(
            *run_gcnc(
                n, epochs, every=every, concurrency=concurrency, threads=threads, folder=folder
            )
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"[{label}] process pool {pool.wall:7.1f} s (first row {pool.first_row:5.1f} s) | "
        f"gcnc run {gcnc.wall:7.1f} s (first row {gcnc.first_row:5.1f} s) | "
        f"ratio {gcnc.wall / pool.wall:.3f}, {gcnc.wall - pool.wall:+.1f} s; "
        f"after the first row {gcnc.after_start / pool.after_start:.3f}",
        flush=True,
    )
    return pool, gcnc


def _waves(count: int) -> str:
    return f"{count} wave{'' if count == 1 else 's'}"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    main()
