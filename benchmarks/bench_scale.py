"""What the driver costs per trial as a study grows, on a simulated cluster of many nodes.

    python benchmarks/bench_scale.py --trials 500 2000
    python benchmarks/bench_scale.py --trials 1000 --search tpe      # Optuna TPE suggests each
    python benchmarks/bench_scale.py --trials 2000 --search asha     # random points, ASHA stops
    python benchmarks/bench_scale.py --trials 500 --profile /tmp/prof   # py-spy of the driver
    python benchmarks/bench_scale.py --trials 10000 --kill-at 0.5   # + status and resume
    python benchmarks/bench_scale.py --trials 10000 --epochs 2 --kill-at 0.5 --stop-after-resume

A cluster of ``--nodes`` Ray nodes (``ray.cluster_utils.Cluster``: one head, the rest worker
nodes, each declaring ``--cpus-per-node`` CPUs, so Tune sees many slots) runs, for each N, a
study of N short trials of the tests' stand-in trainable (``testing.sleep``,
tests/fixtures/sleepy.py: ``--epochs`` epochs of ``--sleep-ms`` each, a Parquet row and a
checkpoint per epoch) through the real ``gcnc run --address`` into a fresh storage folder,
report included. Printed per N:

- wall: launch to exit of ``gcnc run``;
- driver CPU: user + system time of the driver process alone (read from /proc while it
  runs, so the Ray processes of the cluster are not counted), and per trial;
- driver peak RSS (VmHWM);
- trials and rows per second of wall;
- the size of Tune's experiment state (``experiment_state-*.json``) at the end;
- report: from the last trial's end (the trial book's last ``updated_at``) to the report file.

Its last line reads ``driver CPU per trial: X ms at N trials; peak RSS: Y MB`` (the largest N).

``--kill-at 0.5`` SIGKILLs the driver once half the trials are done, times ``gcnc status``
on the study, then ``gcnc resume`` to its first new trial (the stand-in trainable logs each
start), and lets the resume finish (the driver CPU printed is both drivers' together).

``--suggestions N`` measures the searcher alone instead (no cluster): gcnc's Optuna sampler
for ``--search tpe`` (``asha`` draws its random points up front: no searcher), on the
benchmark's space, asked for N
trials one after another and told a value for each, as Tune's searcher does; printed: the
milliseconds per suggestion over windows of the study (the cost of each ask grows with the
trials the sampler learns from).
Linux only (/proc). ``--profile DIR`` records the driver with py-spy (``pip install py-spy``)
into ``DIR/driver-N.txt`` (collapsed stacks) for each N.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tests" / "orchestrator"))
from gcnc_testkit import sleep_study  # noqa: E402  (the tests' study of the stand-in trainable)

TICKS = os.sysconf("SC_CLK_TCK")

SEARCHES = ("asha", "grid", "tpe")


def search_text(kind: str, n: int) -> str:
    """The study file's trials: a grid of ``n`` seeds, or ``n`` trials of an Optuna TPE
    search, or of a random search stopped early by ASHA, over the learning rate."""
    if kind == "grid":
        return f"[sweep]\nseeds = {list(range(n))}\n"
    algorithm = "tpe" if kind == "tpe" else "random"
    text = (f'[search]\nalgorithm = "{algorithm}"\nmetric = "train_loss"\nmode = "min"\n'
            f'budget = {n}\n[search.space]\n'
            '"train.lr" = {loguniform = [0.001, 1.0]}\n')  # fmt: skip
    return text + (
        "[scheduler]\ngrace_period = 1\nreduction_factor = 3\n" if kind == "asha" else ""
    )


@dataclass
class Measure:
    trials: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    rows: int
    state_kb: float
    report_s: float | None
    done: int

    @property
    def cpu_ms_per_trial(self) -> float:
        return 1000 * self.cpu_s / self.trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--cpus-per-node", type=int, default=2)
    parser.add_argument("--cpus-per-trial", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16, help="max_concurrent")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--search", choices=SEARCHES, default="grid")
    parser.add_argument("--no-report", action="store_true", help="skip the report")
    parser.add_argument("--profile", type=Path, help="record the driver with py-spy here")
    parser.add_argument("--keep", type=Path, help="keep the study folders here")
    parser.add_argument("--suggestions", type=int, help="time the searcher alone, N trials")
    parser.add_argument("--kill-at", type=float, help="SIGKILL the driver once this fraction "
                        "of the trials is done, time `gcnc status` and the resume")  # fmt: skip
    parser.add_argument("--stop-after-resume", action="store_true", help="with --kill-at: "
                        "interrupt the resumed driver at its first new trial and end")  # fmt: skip
    args = parser.parse_args(argv)

    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")])
    )
    os.environ["GCNC_TRAINABLES"] = "testing.sleep=sleepy:run"
    if args.suggestions:
        return searcher_cost(args.search, args.suggestions)
    if args.stop_after_resume and not args.kill_at:
        parser.error("--stop-after-resume needs --kill-at")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the cluster is shut down
    work = Path(tempfile.mkdtemp(prefix="gcnc-scale-", dir="/tmp"))
    os.environ["RAY_TMPDIR"] = str(work)
    (work / "ray").mkdir()
    cluster = start_cluster(args.nodes, args.cpus_per_node, work / "ray")
    print(
        f"cluster: {args.nodes} nodes × {args.cpus_per_node} CPUs at {cluster.address}; "
        f"trials of {args.epochs} epochs × {args.sleep_ms:g} ms, {args.cpus_per_trial:g} CPU "
        f"each, {args.concurrency} at a time; search: {args.search}",
        flush=True,
    )
    results: list[Measure] = []
    try:
        for n in args.trials:
            results.append(run_once(n, args, cluster.address, work))
            print_row(results[-1], flush=True)
    finally:
        cluster.shutdown()
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for folder in glob.glob(str(work / "runs-*")):
                shutil.move(folder, args.keep / Path(folder).name)
        shutil.rmtree(work, ignore_errors=True)
    if len(results) > 1:
        lo, hi = results[0], results[-1]
        print(
            f"CPU per trial, {hi.trials} / {lo.trials} trials: "
            f"{hi.cpu_ms_per_trial / lo.cpu_ms_per_trial:.2f}×"
        )
    last = results[-1]
    print(
        f"driver CPU per trial: {last.cpu_ms_per_trial:.0f} ms at {last.trials} trials; "
        f"peak RSS: {last.peak_rss_mb:.0f} MB"
    )
    if args.stop_after_resume:  # ended on purpose before the last trial
        return 0 if all(r.done >= args.kill_at * r.trials for r in results) else 1
    return 0 if all(r.done == r.trials for r in results) else 1


def searcher_cost(search: str, n: int) -> int:
    """Time gcnc's sampler for ``search`` over ``n`` ask/tell rounds (an Optuna study in
    memory, as Tune's searcher holds it); for TPE, beside Optuna's own TPE sampler (constant
    liar, unbounded history) run over the same rounds in the same process."""
    import optuna

    from orchestrator.search import algorithm_of
    from orchestrator.studyfile import load_spec

    if search == "grid":
        raise SystemExit("--suggestions needs --search tpe or asha")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        spec = load_spec(sleep_study(Path(folder), search_text(search, n), name="s"))
    algorithm = algorithm_of(spec)
    if not hasattr(algorithm, "optuna_space"):
        print(f"{search}: no searcher runs; its {n} points are drawn before the first trial")
        return 0
    samplers = {"gcnc": algorithm.sampler(spec)}
    if search == "tpe":
        samplers["optuna"] = optuna.samplers.TPESampler(seed=spec.search.seed, constant_liar=True)
    space = algorithm.optuna_space(spec)
    names = " beside ".join(f"{k}: {type(v).__name__}" for k, v in samplers.items())
    print(f"searcher over {n} trials ({search}) — {names}", flush=True)
    studies = {k: optuna.create_study(sampler=v, direction="minimize") for k, v in samplers.items()}
    per: dict[str, list[float]] = {k: [] for k in samplers}
    window = max(1, n // 10)
    for i in range(n):
        for name, study in studies.items():  # round by round: the same load on both
            t0 = time.perf_counter()
            trial = study.ask(space)
            per[name].append(time.perf_counter() - t0)
            study.tell(trial, (math.log10(trial.params["train.lr"]) + 1.5) ** 2)
        if (i + 1) % window == 0:
            ms = {k: 1000 * sum(v[-window:]) / window for k, v in per.items()}
            line = ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
            ratio = f" (gcnc / optuna {ms['gcnc'] / ms['optuna']:.2f})" if "optuna" in ms else ""
            print(f"  trials {i + 2 - window}–{i + 1}: {line} per suggestion{ratio}", flush=True)
    last = {k: 1000 * sum(v[-window:]) / window for k, v in per.items()}
    beside = f" (Optuna's own TPE: {last['optuna']:.1f} ms)" if "optuna" in last else ""
    print(f"searcher cost: {last['gcnc']:.1f} ms per suggestion at {n} trials{beside}")
    return 0


def start_cluster(nodes: int, cpus: int, temp_dir: Path):
    from ray.cluster_utils import Cluster

    small = {"object_store_memory": 80 * 1024**2, "num_cpus": cpus}
    cluster = Cluster(initialize_head=True, head_node_args={
        **small, "temp_dir": str(temp_dir), "include_dashboard": False})  # fmt: skip
    for _ in range(nodes - 1):
        cluster.add_node(**small)
    cluster.wait_for_nodes()
    return cluster


def run_once(n: int, args: argparse.Namespace, address: str, work: Path) -> Measure:
    name = f"scale-{n}"
    folder = work / f"study-{n}"
    folder.mkdir()
    extra = f"max_concurrent = {args.concurrency}\n" + search_text(args.search, n)  # [resources]
    study = sleep_study(folder, extra, name=name, epochs=args.epochs,
                        sleep_s=args.sleep_ms / 1000, cpus=args.cpus_per_trial)  # fmt: skip
    logs = folder / "logs"  # where the stand-in trainable logs each start
    storage = work / f"runs-{n}"
    cmd = [sys.executable, "-m", "orchestrator", "run", str(study), "--address", address,
           "--storage", str(storage)] + (["--no-report"] if args.no_report else [])  # fmt: skip
    sdir = storage / name
    started = time.monotonic()
    proc, out = launch(cmd)
    spy = profile(proc.pid, args.profile, n) if args.profile else None
    cpu, rss = 0.0, 0.0
    killed = None
    while proc.poll() is None:
        cpu, rss = max(cpu, driver_cpu(proc.pid)), max(rss, peak_rss_mb(proc.pid))
        if args.kill_at and killed is None and trials_done(sdir) >= args.kill_at * n:
            killed = kill_and_resume(proc, sdir, address, logs, args.profile, n)
            first_cpu, proc, out = cpu, killed.pop("proc"), killed.pop("out")
            spy = killed.pop("spy") or spy
            cpu = 0.0
            print(f"  killed at {killed['done']} trials done; gcnc status on it: "
                  f"{killed['status_s']:.2f} s; gcnc resume → its first new trial: "
                  f"{killed['first_s']:.1f} s", flush=True)  # fmt: skip
            if args.stop_after_resume:
                proc.send_signal(signal.SIGINT)  # Ctrl-C: the run records its interruption
            continue
        time.sleep(0.2)
    wall = time.monotonic() - started
    if killed is not None:
        cpu += first_cpu
    if spy is not None:
        spy.wait(timeout=60)
    if proc.returncode != 0:
        time.sleep(1)
        sys.stderr.write("".join(out[-40:]))
    return Measure(n, wall, cpu, rss, count_rows(sdir), state_kb(sdir), report_delay(sdir),
                   trials_done(sdir))  # fmt: skip


def launch(cmd: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """Start a ``gcnc`` command; its output lines collect in the list as they come."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)  # fmt: skip
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True).start()
    return proc, out


def kill_and_resume(
    proc: subprocess.Popen, sdir: Path, address: str, logs: Path, spy_dir: Path | None, n: int
) -> dict:
    """SIGKILL the driver; time ``gcnc status`` on the study, then start ``gcnc resume`` and
    wait for its first new trial (a new line in the stand-in trainable's start log); with
    ``spy_dir``, py-spy records the resumed driver from its start."""
    proc.kill()
    proc.wait()
    done = trials_done(sdir)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "orchestrator", "status", str(sdir)], cwd=ROOT,
                   capture_output=True, check=True)  # fmt: skip
    status_s = time.monotonic() - t0
    log = logs / "starts.jsonl"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    t0 = time.monotonic()
    resumed, out = launch([sys.executable, "-m", "orchestrator", "resume", str(sdir),
                           "--address", address])  # fmt: skip
    spy = profile(resumed.pid, spy_dir, n, name="resume") if spy_dir else None
    while len(log.read_text().splitlines()) <= before and resumed.poll() is None:
        time.sleep(0.1)
    first_s = time.monotonic() - t0
    return {"done": done, "status_s": status_s, "first_s": first_s, "proc": resumed,
            "out": out, "spy": spy}  # fmt: skip


def profile(pid: int, folder: Path, n: int, name: str = "driver") -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "raw",
                             "--rate", "50", "--gil", "--output", str(folder / f"{name}-{n}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def driver_cpu(pid: int) -> float:
    """User + system seconds of the process itself (not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def count_rows(sdir: Path) -> int:
    files = glob.glob(str(sdir / "metrics" / "**" / "*.parquet"), recursive=True)
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def state_kb(sdir: Path) -> float:
    files = glob.glob(str(sdir / "tune" / "**" / "experiment_state-*.json"), recursive=True)
    return max((os.path.getsize(f) for f in files), default=0) / 1024


def trials_done(sdir: Path) -> int:
    path = sdir / "trials.parquet"
    if not path.exists():
        return 0
    table = pq.read_table(path, columns=["status"]).to_pydict()
    return sum(s in ("done", "stopped") for s in table["status"])


def report_delay(sdir: Path) -> float | None:
    report, trials = sdir / "report.html", sdir / "trials.parquet"
    if not report.exists() or not trials.exists():
        return None
    ended = max(pq.read_table(trials, columns=["updated_at"]).column(0).to_pylist())
    return report.stat().st_mtime - ended.timestamp()


def print_row(m: Measure, *, flush: bool = False) -> None:
    report = "-" if m.report_s is None else f"{m.report_s:.1f} s"
    print(json.dumps({"trials": m.trials, "done": m.done}) + " " +
          f"wall {m.wall_s:.1f} s, driver CPU {m.cpu_s:.1f} s ({m.cpu_ms_per_trial:.0f} ms/trial), "
          f"peak RSS {m.peak_rss_mb:.0f} MB, {m.trials / m.wall_s:.1f} trials/s, "
          f"{m.rows / m.wall_s:.0f} rows/s, experiment state {m.state_kb:.0f} KB, "
          f"last trial → report {report}", flush=flush)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
