"""Benchmark of the analysis: load + dedup + aggregate, and the HTML report.

    python benchmarks/bench_analysis.py                 # 1,000 and 10,000 trials × 100 epochs
    python benchmarks/bench_analysis.py --sizes 1000    # only the 1,000-trial study

Synthetic studies are written by the metrics sink's own code with the driver's own
thresholds (tests/analysis/synthetic_study.py): finished trials merged into part files,
the last few still compacted, running trials' rolled-up and per-epoch files, a merge and
a compaction that stopped before removing their inputs, and restarted trials' superseded
rows. They are cached under ``$GCNC_BENCH_CACHE`` (default ``/tmp/gcnc-bench-analysis``),
keyed by :data:`LAYOUT`, since writing 10,000 trials takes a while.

Targets: load + aggregate of the 1M-row study ≤ 2 s; the 1,000-trial report ≤ 15 s and
≤ 20 MB; for the 10,000-trial study, the report ≤ 30 s and ≤ 25 MB, and the commands a user
types, timed as processes from launch to exit (Python's start-up included): ``gcnc status``
≤ 2 s and ``gcnc analyze`` ≤ 10 s. Each line prints the measured value and its ratio to the
target (≤ 1 meets it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "analysis"))

import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from synthetic_study import SyntheticSpec, write_synthetic_study  # noqa: E402

from analysis import aggregate, load_results, write_report  # noqa: E402
from analysis import columns as C  # noqa: E402
from orchestrator.parts import MERGE_TRIALS, PART_ROWS  # noqa: E402
from orchestrator.sink import ROLL_EVERY  # noqa: E402

CACHE = os.environ.get(
    "GCNC_BENCH_CACHE", os.path.join(tempfile.gettempdir(), "gcnc-bench-analysis")
)
LAYOUT = "parts-v1"  # bump when the sink's layout or the synthetic study changes
LRS = tuple(round(0.005 * 1.4**i, 6) for i in range(10))
BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
L2S = tuple(i * 1e-4 for i in range(10))
TARGET_LOAD_S, TARGET_REPORT_S, TARGET_REPORT_MB = 2.0, 15.0, 20.0
TARGET_10K = {"report_s": 30.0, "report_mb": 25.0, "status": 2.0, "analyze": 10.0}


def spec_for(n_trials: int) -> SyntheticSpec:
    """10 lrs × 10 batch sizes × 10 seeds (× 10 L2 values for 10,000 trials), 100 epochs."""
    if n_trials not in (1_000, 10_000):
        raise SystemExit("sizes: 1000 and/or 10000")
    big = n_trials == 10_000
    return SyntheticSpec(
        name=f"bench-{n_trials}",
        lrs=LRS,
        batch_sizes=BATCHES,
        l2s=L2S if big else (0.0,),
        seeds=tuple(range(10)),
        epochs=99,
        running=50 if big else 20,  # rolled-up and per-epoch files
        restarted=10 if big else 5,  # of the running ones: superseded rows
        leftovers=5 if big else 3,  # finished, their compaction stopped midway
        diverged=5,
        merge_every=MERGE_TRIALS,
        roll_every=ROLL_EVERY,
        part_rows=PART_ROWS,
        replayed=1,  # a replay shorter than a roll-up: the superseded rows stay
    )


def cached_study(n_trials: int) -> str:
    """The study directory for ``n_trials``, written once and reused."""
    spec = spec_for(n_trials)
    path = os.path.join(CACHE, f"{LAYOUT}-trials={n_trials}")
    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        return path
    shutil.rmtree(path, ignore_errors=True)
    start = time.perf_counter()
    write_synthetic_study(path, spec)
    with open(marker, "w") as fh:
        json.dump({"seconds": time.perf_counter() - start}, fh)
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    return path


def layout(path: str) -> str:
    """How many metrics files of each kind the study holds."""
    kinds: Counter[str] = Counter()
    for _, _, files in os.walk(os.path.join(path, "metrics")):
        for name in files:
            part = name.startswith("part-")
            kinds["part" if part else name.split("=")[0].removesuffix(".parquet")] += 1
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))


def one_file_copy(path: str) -> str:
    """The same study with every metrics row in one file: isolates per-file read overhead."""
    target = path + "-onefile"
    if os.path.exists(os.path.join(target, ".complete")):
        return target
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.join(target, "metrics"))
    for name in ("study.json", "trials.parquet"):
        shutil.copy(os.path.join(path, name), os.path.join(target, name))
    rows = ds.dataset(os.path.join(path, "metrics"), format="parquet", partitioning=None)
    pq.write_table(rows.to_table(), os.path.join(target, "metrics", "all.parquet"))
    open(os.path.join(target, ".complete"), "w").close()
    return target


def aggregate_all(study) -> int:
    """Curves per swept value by epoch for every measured quantity, and final summaries."""
    metrics = [
        m for m in (*C.SOURCE_METRICS, "target_nc_cdnv", "fewshot_acc_5shot") if study.measured(m)
    ]
    rows = 0
    for param in study.hyper_params:
        curves, _ = aggregate.curves(study, param, metrics, align="epoch")
        rows += len(curves)
    finals = aggregate.final_rows(study)
    for param in study.hyper_params:
        rows += len(aggregate.summarize(finals, [param], metrics))
    return rows


def bench_load(path: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        study = load_results(path)
        loaded = time.perf_counter() - start
        aggregate_all(study)
        total = time.perf_counter() - start
        best = min(best, total)
        print(
            f"  load+dedup {loaded:.2f} s, +aggregate {total:.2f} s "
            f"({len(study.metrics):,} rows, {study.n_files:,} files, "
            f"{study.n_duplicates} superseded rows dropped)"
        )
    return best


def bench_report(path: str) -> tuple[float, float]:
    out = os.path.join(tempfile.mkdtemp(prefix="gcnc-bench-report-"), "report.html")
    start = time.perf_counter()
    write_report(path, output=out)
    seconds = time.perf_counter() - start
    mb = os.path.getsize(out) / 1e6
    return seconds, mb


def bench_command(*args: str) -> float:
    """Seconds from launch to exit of ``gcnc ARGS`` (a fresh process, as a user runs it)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, cwd=os.path.dirname(HERE))  # fmt: skip
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"gcnc {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated trial counts")
    parser.add_argument(
        "--repeat", type=int, default=2, help="load+aggregate repetitions (best kept)"
    )
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, cache: {CACHE}")
    for n in [int(s) for s in args.sizes.split(",")]:
        path = cached_study(n)
        print(f"{n:,} trials × 100 epochs; files: {layout(path)}")
        best = bench_load(path, args.repeat)
        if n == 10_000:
            print(f"  load+aggregate (1M rows): {best:.2f} s, ratio {best / TARGET_LOAD_S:.2f}")
            print("  the same rows in one file (per-file Parquet overhead removed):")
            one = bench_load(one_file_copy(path), args.repeat)
            print(
                f"  load+aggregate (1M rows, 1 file): {one:.2f} s, ratio {one / TARGET_LOAD_S:.2f}"
            )
        if n == 10_000:
            for command in ("status", "analyze"):
                seconds = bench_command(command, path)
                ratio = seconds / TARGET_10K[command]
                print(f"  gcnc {command}: {seconds:.2f} s, ratio {ratio:.2f}")
            seconds, mb = bench_report(path)
            print(
                f"  report: {seconds:.2f} s (ratio {seconds / TARGET_10K['report_s']:.2f}), "
                f"{mb:.1f} MB (ratio {mb / TARGET_10K['report_mb']:.2f})"
            )
        if n == 1_000:
            seconds, mb = bench_report(path)
            print(
                f"  report: {seconds:.2f} s (ratio {seconds / TARGET_REPORT_S:.2f}), "
                f"{mb:.1f} MB (ratio {mb / TARGET_REPORT_MB:.2f})"
            )


if __name__ == "__main__":
    main()
