"""Benchmark of the analysis: load + dedup + aggregate, and the HTML report.

    python benchmarks/bench_analysis.py                 # 1,000 and 10,000 trials × 100 epochs
    python benchmarks/bench_analysis.py --sizes 1000    # only the 1,000-trial study
    python benchmarks/bench_analysis.py --sizes 1000 --only live   # the live refresh alone
    python benchmarks/bench_analysis.py --sizes 1000 --only serve  # the explorer's first paint

Synthetic studies are written by the metrics sink's own code with the driver's own
thresholds (tests/analysis/synthetic_study.py): finished trials merged into part files,
the last few still compacted, running trials' rolled-up and per-epoch files, a merge and
a compaction that stopped before removing their inputs, and restarted trials' superseded
rows. They are cached under ``$GCNC_BENCH_CACHE`` (default ``/tmp/gcnc-bench-analysis``),
keyed by :data:`LAYOUT`, since writing 10,000 trials takes a while.

Targets: load + aggregate of the 1M-row study ≤ 2 s; the 1,000-trial report ≤ 15 s and
≤ 20 MB; for the 10,000-trial study, the report ≤ 30 s and ≤ 25 MB, and the commands a user
types, timed as processes from launch to exit (Python's start-up included): ``gcnc status``
≤ 2 s and ``gcnc analyze`` ≤ 10 s. For ``gcnc serve``'s live refresh (analysis.live), on a
copy of the study where a running trial writes one more per-epoch file between looks: a
refresh that finds that one file ≤ 5 % of a full reload (``load_results``) of the 10,000-
trial study, side by side, and the memory of a process holding the live study's snapshot.
For the explorer itself (``--only serve``, needs Debian's ``chromium``): the real ``gcnc
serve`` in a subprocess on a free loopback port, and headless Chromium (the browser tests'
DevTools client, tests/analysis/devtools.py) opening it: the first paint of the curves of
the 1,000-trial study ≤ 2 s after the server is up (its port answers), beside
``load_results`` of the same study; and the server's memory after that paint (of the
1M-row study at 10,000 trials), beside a bare ``load_results`` in a process of its own.
Each line prints the measured value and its ratio to the target (≤ 1 meets it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "analysis"))

import pyarrow as pa  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from synthetic_study import SyntheticSpec, write_synthetic_study  # noqa: E402

from analysis import aggregate, load_results, write_report  # noqa: E402
from analysis import columns as C  # noqa: E402
from analysis.live import LiveStudy  # noqa: E402
from orchestrator.parts import MERGE_TRIALS, PART_ROWS  # noqa: E402
from orchestrator.sink import ROLL_EVERY, now  # noqa: E402
from studyfiles import Storage, StudyDir  # noqa: E402
from studyfiles.tables import read_parquet, to_bytes  # noqa: E402

CACHE = os.environ.get(
    "GCNC_BENCH_CACHE", os.path.join(tempfile.gettempdir(), "gcnc-bench-analysis")
)
LAYOUT = "parts-v1"  # bump when the sink's layout or the synthetic study changes
LRS = tuple(round(0.005 * 1.4**i, 6) for i in range(10))
BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
L2S = tuple(i * 1e-4 for i in range(10))
TARGET_LOAD_S, TARGET_REPORT_S, TARGET_REPORT_MB = 2.0, 15.0, 20.0
TARGET_10K = {"report_s": 30.0, "report_mb": 25.0, "status": 2.0, "analyze": 10.0}
TARGET_LIVE_RATIO = 0.05  # a refresh finding one new file, over a full reload (10,000 trials)
TARGET_PAINT_S = 2.0  # from the server up to the curves drawn (1,000 trials)
MEASURES = ("load", "live", "serve", "report", "commands")
# Resolves (to the trace count) once the curves figure holds data traces (an empty figure
# with a message has none), looking every 10 ms in the page; rejects after ``limit`` ms.
PAINTED = """new Promise((drawn, fail) => {
  const t0 = performance.now(), look = () => {
    const el = document.querySelector('#curves .js-plotly-plot');
    if (el && el.data && el.data.length > 0) drawn(el.data.length);
    else if (performance.now() - t0 > %(limit)d) fail('no curves after %(limit)d ms');
    else setTimeout(look, 10);
  };
  look();
})"""


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


def live_copy(path: str) -> str:
    """A copy of the study to write new files into (hard links: the cached files stay)."""
    target = tempfile.mkdtemp(prefix="gcnc-bench-live-")
    shutil.copytree(path, target, dirs_exist_ok=True, copy_function=os.link)
    return target


def write_next_epoch(path: str, trial_id: str) -> None:
    """One more evaluation of a running trial: its next per-epoch file, as the sink writes
    it (the trial's last row, one epoch on, written now)."""
    sdir = StudyDir(Storage.open(path))
    files = sdir.storage.files(sdir.trial_folder(trial_id), suffix=".parquet")
    last = max((read_parquet(sdir.storage, f) for f in files), key=lambda t: t["epoch"][-1].as_py())
    row = last.slice(last.num_rows - 1, 1)
    epoch = row["epoch"][0].as_py() + 1
    for name, value in (("epoch", epoch), ("written_at", now())):
        i = row.schema.get_field_index(name)
        row = row.set_column(i, name, pa.array([value], row.schema.field(name).type))
    sdir.storage.write_bytes(sdir.epoch_file(trial_id, epoch), to_bytes(row))


def bench_live(path: str, n_trials: int, repeat: int) -> None:
    """A full reload against a live refresh that finds one new file, side by side, each the
    best of ``repeat``; beside them, the snapshot's frame made from its blocks when a view
    first reads it after that refresh; then the memory of a process holding the snapshot."""
    work = live_copy(path)
    try:
        start = time.perf_counter()
        live = LiveStudy(work)
        first = time.perf_counter() - start
        trials = live.study.trials
        running = sorted(trials.loc[trials["status"] == "running", "trial_id"])
        idle = min(live.refresh().seconds for _ in range(repeat))
        full = refresh = read = float("inf")
        for i in range(repeat):
            write_next_epoch(work, running[i % len(running)])
            result = live.refresh()
            if result.files_read != 1 or not result.changed or result.problem:
                raise SystemExit(f"the refresh did not find the one new file: {result}")
            refresh = min(refresh, result.seconds)
            read = min(read, _seconds(lambda: live.study.metrics))
            start = time.perf_counter()
            reloaded = load_results(work)
            full = min(full, time.perf_counter() - start)
        if not reloaded.metrics.equals(live.study.metrics):
            raise SystemExit("the live snapshot and the full reload disagree")
        del reloaded
        steady = steady_read = float("inf")  # looks back to back, as a server watching takes
        for i in range(repeat):
            write_next_epoch(work, running[(repeat + i) % len(running)])
            steady = min(steady, live.refresh().seconds)
            steady_read = min(steady_read, _seconds(lambda: live.study.metrics))
        frame = live.study.metrics
        ratio, both = refresh / full, (refresh + read) / full
        target = "" if n_trials == 10_000 else " (the target is set at 10,000 trials)"
        blocks = len(live._state.rows.blocks.parts)
        print(
            f"  live: first load {first:.2f} s; full reload {full:.3f} s vs refresh finding one "
            f"new file {refresh * 1000:.1f} ms ({result.files_total:,} files, {blocks} blocks "
            f"of rows): {ratio:.1%}, ratio {ratio / TARGET_LIVE_RATIO:.2f}{target}; a refresh "
            f"finding nothing {idle * 1000:.1f} ms"
        )
        print(
            f"  the snapshot's frame ({len(frame):,} rows, "
            f"{frame.memory_usage(deep=True).sum() / 2**20:.0f} MB), made from its blocks "
            f"when a view first reads it: {read:.3f} s; refresh and that read together "
            f"{both:.1%} of a full reload"
        )
        print(
            f"  looks back to back (no full reload between, whose freed memory the next "
            f"allocations fault in again): refresh {steady * 1000:.1f} ms, the frame read "
            f"{steady_read:.3f} s, together {(steady + steady_read) / full:.1%} of a full reload"
        )
        print(f"  {page_update(work, running[0])}")
        print(f"  memory of a process holding load_results' study: {held_memory('load', work)}")
        print(f"  ... holding a LiveStudy, 3 refreshes on: {held_memory('live', work)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def page_update(path: str, trial_id: str) -> str:
    """What ``gcnc serve``'s views cost after a refresh that found one new file (the
    explorer's own functions, no browser): the refresh, the snapshot's frame, the progress
    panel with the trial table, and the curves as the page first draws them (best of 3)."""
    from analysis.explore import _views  # dash: imported only for this measure
    from analysis.explore._hub import StudyHub

    hub = StudyHub([path])
    opening = _views.opening_draw(hub, 0)
    draw = {k: opening[k] for k in ("metric", "x", "colour", "facet")} | {"mode": "groups"}
    spec = {"excluded": {}, "ranges": {}, "statuses": None, "diverged": "any"}
    best = dict.fromkeys(("refresh", "frame", "progress and trial table", "curves"), 1e9)
    for _ in range(3):
        write_next_epoch(path, trial_id)
        steps = (
            hub.refresh,
            lambda: hub.study(0).metrics,
            lambda: _views.progress_panel(hub, 0),
            lambda: _views.curves_figure(hub, 0, spec, **draw),
        )
        for name, step in zip(best, steps, strict=True):
            best[name] = min(best[name], _seconds(step))
    parts = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in best.items())
    return f"a page's update after a refresh finding one new file: {parts}"


def held_memory(kind: str, path: str) -> str:
    """RSS of a fresh process (nothing else of the benchmark in it) holding ``path`` loaded
    by ``load_results`` (``kind`` "load") or by a LiveStudy after three refreshes that each
    found a new file ("live")."""
    proc = subprocess.run([sys.executable, __file__, "--held-memory", kind, path],
                          capture_output=True, text=True, cwd=os.path.dirname(HERE))  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"memory of {kind} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def _rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), in MB."""
    with open(f"/proc/{pid}/status") as fh:
        line = next(line for line in fh if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def _held_memory(kind: str, path: str) -> None:
    import resource

    base = _rss_mb()
    if kind == "load":
        study = load_results(path)
    else:
        live = LiveStudy(path)
        trials = live.study.trials
        for trial_id in sorted(trials.loc[trials["status"] == "running", "trial_id"])[:3]:
            write_next_epoch(path, trial_id)
            live.refresh()
        study = live.study
    held = _rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frame = study.metrics.memory_usage(deep=True).sum() / 2**20
    print(
        f"{held:.0f} MB RSS ({held - base:.0f} MB over the {base:.0f} MB of the imports; "
        f"the frame of {len(study.metrics):,} rows {frame:.0f} MB), peak {peak:.0f} MB"
    )


@dataclass(frozen=True)
class Paint:
    """One server's start and first paint: seconds from launch to its port answering, from
    then to the page's load event and to the curves drawn, and the server's memory (MB)
    once they are."""

    started_s: float
    loaded_s: float
    paint_s: float
    rss_mb: float
    peak_mb: float


def bench_serve(path: str, n_trials: int, repeat: int) -> None:
    """The first paint by ``repeat`` fresh ``gcnc serve`` processes (best kept) beside
    ``load_results`` of the same study (best of ``repeat``); then the servers' memory
    after that paint beside a bare ``load_results`` in a process of its own."""
    from devtools import CHROMIUM, DevTools  # the browser tests' client (tests/analysis)

    if CHROMIUM is None:
        raise SystemExit("--only serve needs Chromium (Debian package 'chromium')")
    loaded = min(_seconds(load_results, path) for _ in range(repeat))
    profile = tempfile.mkdtemp(prefix="gcnc-bench-chromium-")
    browser = DevTools(profile, timeout=900.0, loopback=True)
    try:
        paints = [first_paint(browser, path) for _ in range(repeat)]
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
    for p in paints:
        print(
            f"  serve: up {p.started_s:.2f} s after launch; from then, page loaded "
            f"{p.loaded_s:.2f} s, curves drawn {p.paint_s:.2f} s; server {p.rss_mb:.0f} MB RSS "
            f"(peak {p.peak_mb:.0f} MB)"
        )
    best = min(p.paint_s for p in paints)
    target = "" if n_trials == 1_000 else " (the target is set at 1,000 trials)"
    print(
        f"  first paint {best:.2f} s, ratio {best / TARGET_PAINT_S:.2f}{target}; load_results "
        f"{loaded:.2f} s: paint / load {best / loaded:.2f}"
    )
    rss, peak = max(p.rss_mb for p in paints), max(p.peak_mb for p in paints)
    print(f"  server after first paint: {rss:.0f} MB RSS (peak {peak:.0f} MB)")
    print(f"  beside a process holding load_results' study: {held_memory('load', path)}")


def first_paint(browser, path: str) -> Paint:
    """Launch ``gcnc serve PATH`` on a free loopback port, wait for the port to answer,
    then open the page in a fresh tab (its cache off) and wait for the curves."""
    port = _free_port()
    argv = [sys.executable, "-m", "orchestrator", "serve", path, "--port", str(port)]
    with tempfile.TemporaryFile(mode="w+") as log:
        launched = time.perf_counter()
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                  cwd=os.path.dirname(HERE))  # fmt: skip
        try:
            _wait_for_port(server, port, log)
            up = time.perf_counter()
            page = browser.new_page()
            page.call("Network.setCacheDisabled", cacheDisabled=True)
            page.open(f"http://127.0.0.1:{port}/")
            loaded = time.perf_counter()
            page.js(PAINTED % {"limit": 600_000})
            painted = time.perf_counter()
            page.call("Page.close")
            rss, peak = (_rss_mb(server.pid, field) for field in ("VmRSS", "VmHWM"))
        finally:
            _stop(server)
    return Paint(up - launched, loaded - up, painted - up, rss, peak)


def _stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGINT)  # as a user stops it: Ctrl-C
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(server: subprocess.Popen, port: int, log) -> None:
    """Until ``port`` accepts a connection (checked every 10 ms); the server's output if it
    exits first."""
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if server.poll() is not None:
            log.seek(0)
            raise SystemExit(f"gcnc serve exited with {server.returncode}:\n{log.read()}")
        time.sleep(0.01)


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated trial counts")
    parser.add_argument(
        "--repeat", type=int, default=2, help="load+aggregate repetitions (best kept)"
    )
    parser.add_argument(
        "--only", default=",".join(MEASURES), help=f"comma-separated, of {', '.join(MEASURES)}"
    )
    parser.add_argument("--held-memory", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.held_memory:
        _held_memory(*args.held_memory)
        return
    only = set(args.only.split(","))
    if only - set(MEASURES):
        raise SystemExit(f"--only: one or more of {', '.join(MEASURES)}")
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, cache: {CACHE}")
    for n in [int(s) for s in args.sizes.split(",")]:
        path = cached_study(n)
        print(f"{n:,} trials × 100 epochs; files: {layout(path)}")
        if "load" in only:
            best = bench_load(path, args.repeat)
        if "load" in only and n == 10_000:
            print(f"  load+aggregate (1M rows): {best:.2f} s, ratio {best / TARGET_LOAD_S:.2f}")
            print("  the same rows in one file (per-file Parquet overhead removed):")
            one = bench_load(one_file_copy(path), args.repeat)
            print(
                f"  load+aggregate (1M rows, 1 file): {one:.2f} s, ratio {one / TARGET_LOAD_S:.2f}"
            )
        if "live" in only:
            bench_live(path, n, max(args.repeat, 3))
        if "serve" in only:
            bench_serve(path, n, args.repeat)
        if "commands" in only and n == 10_000:
            for command in ("status", "analyze"):
                seconds = bench_command(command, path)
                ratio = seconds / TARGET_10K[command]
                print(f"  gcnc {command}: {seconds:.2f} s, ratio {ratio:.2f}")
        if "report" in only:
            seconds, mb = bench_report(path)
            target_s, target_mb = (
                (TARGET_10K["report_s"], TARGET_10K["report_mb"])
                if n == 10_000
                else (TARGET_REPORT_S, TARGET_REPORT_MB)
            )
            print(
                f"  report: {seconds:.2f} s (ratio {seconds / target_s:.2f}), "
                f"{mb:.1f} MB (ratio {mb / target_mb:.2f})"
            )


if __name__ == "__main__":
    main()
