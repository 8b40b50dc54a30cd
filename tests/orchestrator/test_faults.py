"""Faults with a real Ray: a killed driver, a killed trial process, a lost node, a cluster.

Every process a test starts runs in its own session and is reaped by that session's PIDs.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
from gcnc_testkit import (
    NODE_FLAGS,
    agent_ports,
    assert_unchanged,
    cluster_env,
    compacted,
    connects,
    finish,
    free_port,
    gcnc,
    kill_driver,
    merged,
    raw_rows,
    read_rows,
    read_trials,
    sleep_study,
    start_head,
    starts,
    trial_files,
    wait_for,
    write_study,
)

from orchestrator import cli

pytestmark = pytest.mark.slow


def test_a_killed_driver_is_finished_by_resume(spawn, tmp_path):
    path = sleep_study(
        tmp_path,
        "[sweep]\nseeds = [0, 1, 2]\n[sweep.grid]\ntrain.lr = [0.1, 0.5]\n",
        epochs=4,
        sleep_s=0.3,
    )
    study_dir = tmp_path / "runs" / "sleepy"
    driver = gcnc(spawn, "run", str(path), "--storage", str(tmp_path / "runs"), "--no-report")
    wait_for(
        lambda: len(compacted(study_dir)) >= 2 and len(trial_files(study_dir)) > 2,
        timeout_s=240,
        what="two finished trials and a third started",
    )
    kill_driver(driver)
    before, done_before = read_rows(study_dir), compacted(study_dir)
    logged = len(starts(tmp_path))
    assert len(done_before) < 6, "the driver was killed after the study ended"

    out = finish(gcnc(spawn, "resume", str(study_dir), "--no-report"))
    assert "sleepy: 6/6 trials done" in out
    trials = read_trials(study_dir)
    assert (trials["status"] == "done").all()
    rows = read_rows(study_dir)
    assert len(rows) == len(raw_rows(study_dir)) == 6 * 5  # exactly one row per key
    assert merged(study_dir) == set(trials["trial_id"])  # all merged when the run ended
    assert_unchanged(before, rows)
    kept = before[before["trial_id"].isin(done_before)]  # finished rows were not rewritten
    assert_unchanged(kept, rows, columns=["written_at"])
    finished = set(
        trials.loc[trials["trial_id"].isin(done_before), "train.lr"].astype(str)
        + "/"
        + trials.loc[trials["trial_id"].isin(done_before), "train.seed"].astype(str)
    )
    rerun = {f"{s['lr']}/{s['seed']}" for s in starts(tmp_path)[logged:]}
    assert not finished & rerun, "a finished trial ran again"


def test_a_killed_optuna_study_keeps_its_budget_and_finished_trials(spawn, tmp_path):
    extra = """
[search]
metric = "test_acc"
mode = "max"
budget = 4
[search.space]
train.lr = {loguniform = [0.01, 1.0]}
"""
    path = sleep_study(tmp_path, extra, epochs=3, sleep_s=0.3)
    study_dir = tmp_path / "runs" / "sleepy"
    driver = gcnc(
        spawn,
        "run",
        str(path),
        "--storage",
        str(tmp_path / "runs"),
        "--no-report",
        "--set",
        "resources.max_concurrent=1",
    )
    wait_for(lambda: len(compacted(study_dir)) >= 2, timeout_s=240, what="two finished trials")
    kill_driver(driver)
    before, done_before = read_rows(study_dir), compacted(study_dir)
    lrs_before = set(before.loc[before["trial_id"].isin(done_before), "train.lr"])
    logged = len(starts(tmp_path))

    finish(gcnc(spawn, "resume", str(study_dir), "--no-report"))
    trials = read_trials(study_dir)
    done = trials[trials["status"] == "done"]
    assert len(done) == 4  # the budget
    assert done_before <= set(done["trial_id"])
    assert not lrs_before & {s["lr"] for s in starts(tmp_path)[logged:]}
    others = trials[trials["status"] != "done"]
    assert others["error"].str.startswith("abandoned").all()  # started after the last snapshot
    assert_unchanged(before[before["trial_id"].isin(done_before)], read_rows(study_dir))


def test_a_killed_trial_process_resumes_from_its_checkpoint(ray_cluster, tmp_path):
    path = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1]\n", epochs=6, sleep_s=0.3)
    study_dir = tmp_path / "runs" / "sleepy"

    def kill_first_trial() -> None:
        first = lambda: [s for s in starts(tmp_path) if s["seed"] == 0]  # noqa: E731 (t00000)
        wait_for(first, timeout_s=120, what="the first trial to start")
        victim = first()[0]
        folder = study_dir / "metrics" / "trial_id=t00000"
        wait_for(
            lambda: len(list(folder.glob("epoch=*.parquet"))) >= 3,
            timeout_s=60,
            what="three epochs of the first trial",
        )
        os.kill(victim["pid"], signal.SIGKILL)  # a Ray worker of this test's cluster

    killer = threading.Thread(target=kill_first_trial)
    killer.start()
    assert cli.main(["run", str(path), "--storage", str(tmp_path / "runs"), "--no-report"]) == 0
    killer.join()
    trials = read_trials(study_dir).set_index("trial_id")
    assert trials.loc["t00000", "attempts"] == 2 and (trials["status"] == "done").all()
    resumed = [s for s in starts(tmp_path) if s["seed"] == 0][1]
    # from a checkpoint, not from scratch (0): the epoch-2 row was written, so epoch 1's
    # checkpoint had been reported; epoch 2's may not have been when the process died
    assert resumed["start_epoch"] >= 1
    assert len(read_rows(study_dir)) == len(raw_rows(study_dir)) == 2 * 7


def test_a_lost_node_s_trials_finish_elsewhere(ray_cluster, tmp_path):
    nodes = [ray_cluster.add_node(num_cpus=1, object_store_memory=80 * 1024**2) for _ in range(2)]
    raylets = {str(n.all_processes["raylet"][0].process.pid): n for n in nodes}
    path = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1, 2, 3]\n", epochs=6, sleep_s=0.3)
    removed: list[object] = []

    def remove_a_busy_node() -> None:
        wait_for(
            lambda: any(s["node"] in raylets for s in starts(tmp_path)),
            timeout_s=120,
            what="a trial on an added node",
        )
        node = next(s["node"] for s in starts(tmp_path) if s["node"] in raylets)
        wait_for(
            lambda: len(read_rows(tmp_path / "runs" / "sleepy")) >= 8,
            timeout_s=60,
            what="some epochs done",
        )
        ray_cluster.remove_node(raylets[node])
        removed.append(raylets[node])

    remover = threading.Thread(target=remove_a_busy_node)
    remover.start()
    try:
        code = cli.main(["run", str(path), "--storage", str(tmp_path / "runs"), "--no-report"])
    finally:
        remover.join()
        for node in nodes:
            if node not in removed:
                ray_cluster.remove_node(node)
    assert code == 0 and removed
    trials = read_trials(tmp_path / "runs" / "sleepy")
    assert (trials["status"] == "done").all() and trials["attempts"].max() >= 2
    rows = read_rows(tmp_path / "runs" / "sleepy")
    assert len(rows) == len(raw_rows(tmp_path / "runs" / "sleepy")) == 4 * 7


@pytest.mark.parametrize("client", [False, True], ids=["gcs-address", "ray-client"])
def test_a_smoke_study_runs_on_a_multi_process_cluster_through_address(
    client, cluster_tmpdir, spawn, tmp_path
):
    # Every process of the cluster, and the driver, share a token (Ray's token auth) and a
    # private RAY_TMPDIR. The address is explicit: ``auto`` would be ambiguous here, with
    # the session's own cluster running too. With ``ray://`` the driver connects through
    # the head's Ray Client server, as from a laptop outside the cluster.
    if client:
        pytest.importorskip("grpc", reason="ray:// needs Ray Client (pip install 'gcnc[client]')")
    env = cluster_env(cluster_tmpdir)
    client_port = free_port()
    address = start_head(
        spawn, env, "--num-cpus", "1", "--ray-client-server-port", str(client_port)
    )
    spawn("ray", "start", "--address", address, *NODE_FLAGS, "--num-cpus", "1", *agent_ports(),
          env=env, log=True)  # fmt: skip
    if client:
        wait_for(lambda: connects(f"127.0.0.1:{client_port}"), timeout_s=120, what="Ray Client")
        address = f"ray://127.0.0.1:{client_port}"
    # Each node has one CPU; the barrier holds each trial until both have started.
    path = sleep_study(
        tmp_path,
        "[sweep]\nseeds = [0, 1]\n[smoke]\ntrain.epochs = 1\nmodel.options.barrier = 2\n",
        epochs=5,
        sleep_s=0.1,
    )
    out = finish(
        gcnc(
            spawn,
            "run",
            str(path),
            "--smoke",
            "--address",
            address,
            "--storage",
            str(tmp_path / "shared"),
            "--no-report",
            env=env,
        )
    )
    assert "sleepy-smoke: 2/2 trials done" in out
    # Tune's own notes stay out of the terminal also where its driver runs in the cluster.
    for note in ("Configuration for experiment", "TensorBoard", "Checkpoint successfully"):
        assert note not in out
    assert not list((tmp_path / "shared").glob(".gcnc-probe-*")), "the storage probe is removed"
    rows = read_rows(tmp_path / "shared" / "sleepy-smoke")
    assert len(rows) == 2 * 2
    assert len({s["node"] for s in starts(tmp_path)}) == 2, "trials ran on both nodes"
    trials = read_trials(tmp_path / "shared" / "sleepy-smoke")
    assert (trials["status"] == "done").all() and len(trials) == 2


def test_two_trials_share_one_gpu_with_half_a_gpu_each(cluster_tmpdir, spawn, tmp_path):
    """Packing trials onto GPUs: a node that declares one GPU (Ray schedules it like a real
    one) runs two trials of ``gpus_per_trial = 0.5`` at the same time, both given GPU 0."""
    env = cluster_env(cluster_tmpdir)
    address = start_head(spawn, env, "--num-cpus", "2", "--num-gpus", "1")
    # the barrier holds each trial until both have started: they can only finish together
    path = sleep_study(
        tmp_path,
        "[sweep]\nseeds = [0, 1]\n[smoke]\ntrain.epochs = 1\nmodel.options.barrier = 2\n",
        epochs=5,
        sleep_s=0.1,
    )
    run = ["run", str(path), "--smoke", "--address", address, "--storage", str(tmp_path / "runs")]
    out = finish(gcnc(spawn, *run, "--no-report", "--set", "resources.gpus_per_trial=0.5", env=env))
    assert "sleepy-smoke: 2/2 trials done" in out
    assert [s["gpus"] for s in starts(tmp_path)] == ["0", "0"]
    assert len({s["pid"] for s in starts(tmp_path)}) == 2
    # a whole GPU each: one node with one GPU cannot run them together, and says so at once
    refused = gcnc(spawn, *run, "--no-report", "--set", "resources.gpus_per_trial=2", env=env)
    out, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "resources.gpus_per_trial" in out, out
    # every node is asked whether it has the dataset's files; this one has none
    cifar = write_study(tmp_path, '[data]\nname = "cifar10"\ndata_root = "/nowhere"\n',
                        filename="cifar.toml")  # fmt: skip
    refused = gcnc(spawn, "run", str(cifar), "--address", address, "--storage",
                   str(tmp_path / "cifar-runs"), env=env)  # fmt: skip
    out, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2, out
    assert "data.data_root: dataset 'cifar10': files not found (looked in /nowhere" in out
    assert ") on node " in out and not (tmp_path / "cifar-runs").exists()
