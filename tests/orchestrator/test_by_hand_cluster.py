"""docs/running.md's by-hand cluster, run as the page gives it.

The commands are read from the page itself: the token block of "Token authentication" and
the by-hand block below it. Each is run with what a test on one machine must add and
nothing else: the placeholders filled in (a free port for 6379, ``127.0.0.1`` for
``<head>``, a study file and a storage folder of this test), and, to each ``ray start``,
flags that keep the node on loopback, in the foreground (so that its session is reaped)
and off the ports of the session's own cluster.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from gcnc_testkit import (
    NODE_FLAGS,
    agent_ports,
    connects,
    finish,
    free_port,
    read_trials,
    sleep_study,
    starts,
    wait_for,
)

pytestmark = pytest.mark.slow

PAGE = Path(__file__).resolve().parents[2] / "docs" / "running.md"


def bash_block_after(text: str, marker: str) -> list[str]:
    """The command lines (comments and blank lines left out) of the first ```bash block
    after ``marker`` on the page."""
    start = text.index(marker)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, f"no ```bash block after {marker!r} in {PAGE}"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_pages_by_hand_cluster_runs_a_study_with_token_auth(cluster_tmpdir, spawn, tmp_path):
    text = PAGE.read_text()
    token_lines = bash_block_after(text, "### Token authentication")
    steps = bash_block_after(text, "- **By hand**")
    assert [s.split()[:2] for s in steps] == [
        ["ray", "start"], ["ray", "start"], ["gcnc", "run"], ["gcnc", "status"]
    ], steps  # fmt: skip

    # The token, made as the page says, in the environment of every node and the driver.
    made = subprocess.run(["bash", "-c", "\n".join([*token_lines, "env"])], capture_output=True,
                          text=True, check=True)  # fmt: skip
    env_of = dict(line.split("=", 1) for line in made.stdout.splitlines() if "=" in line)
    assert env_of["RAY_AUTH_MODE"] == "token"
    token = env_of["RAY_AUTH_TOKEN"]
    assert re.fullmatch(r"[0-9a-f]{64}", token), token
    env = env_of | {"RAY_TMPDIR": str(cluster_tmpdir)}  # this test's cluster only

    port = free_port()
    study = sleep_study(tmp_path, "[sweep]\nseeds = [0, 1]\n", name="by-hand", epochs=3,
                        sleep_s=0.1)  # fmt: skip
    # each trial waits for the other to start: with one CPU a node, they run on both nodes
    options = "[model.options]\n"
    study.write_text(study.read_text().replace(options, options + "barrier = 2\n"))
    runs = tmp_path / "shared" / "runs"
    fill = {"6379": str(port), "<head>": "127.0.0.1", "STUDY.toml": str(study),
            "/shared/runs": str(runs), "<study>": "by-hand"}  # fmt: skip

    def command(step: str) -> list[str]:
        for placeholder, value in fill.items():
            step = step.replace(placeholder, value)
        return shlex.split(step)

    head, worker, run, status = (command(s) for s in steps)
    spawn(*head, *NODE_FLAGS, "--num-cpus", "1", "--include-dashboard", "false",
          *agent_ports(), env=env, log=True)  # fmt: skip
    # the head is up once it accepts connections and has written where it is (``auto``)
    address_file = cluster_tmpdir / "ray" / "ray_current_cluster"
    wait_for(lambda: connects(f"127.0.0.1:{port}") and address_file.exists(), timeout_s=120,
             what="the head node")  # fmt: skip
    spawn(*worker, *NODE_FLAGS, "--num-cpus", "1", *agent_ports(), env=env, log=True)

    out = finish(spawn(*run, env=env))
    assert "by-hand: 2/2 trials done" in out, out
    assert len({s["node"] for s in starts(tmp_path)}) == 2, "the trials ran on both nodes"
    trials = read_trials(runs / "by-hand")
    assert (trials["status"] == "done").all() and len(trials) == 2

    shown = subprocess.run(status, capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "trials: 2 — 2 done, 0 running, 0 failed, 0 pending" in shown.stdout, shown.stdout

    # The token stays out of everything gcnc wrote and printed.
    written = [p for p in (runs / "by-hand").rglob("*") if p.is_file()]
    assert written and not [p for p in written if token.encode() in p.read_bytes()]
    assert token not in out + shown.stdout + shown.stderr
