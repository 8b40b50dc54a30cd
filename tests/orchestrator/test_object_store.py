"""Studies on an object store, for real: moto's S3-compatible server on loopback.

docs/running.md promises ``--storage s3://…``. Here a study of the stand-in trainable runs
to a bucket through both ways of naming the store's endpoint (the ``AWS_ENDPOINT_URL``
environment variable, and ``?endpoint_override=…&scheme=http`` in the URI), its driver is
killed (SIGKILL) mid-run, one ``gcnc resume`` of the study's URI finishes it, and
``gcnc status`` / ``analyze`` / ``report`` read it back from the URI. A trial's error, and a
store that does not answer, reach the user in one line.

Every ``gcnc`` runs in a session of its own (``spawn``), reaped at the end of its test.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from gcnc_testkit import finish, gcnc, kill_driver, sleep_study, wait_for, write_study

from studyfiles.storage import Storage

moto_server = pytest.importorskip(
    "moto.server", reason="moto[server] is not installed (pip install -e '.[dev]')"
)

pytestmark = pytest.mark.slow

BUCKET = "gcnc-test"
KEY = "testing"  # moto takes any credentials; pyarrow needs some, or it asks the cloud
REGION = "us-east-1"
FORMS = ["environment", "uri"]
SEEDS, EPOCHS = 3, 6
AWS_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN")
FAILING = """
name = "store-fails"
trainable = "testing.sleep"
[train]
epochs = 1
[model.options]
sleep_s = 0.1
fail_lr = 0.5
[sweep.grid]
"train.lr" = [0.1, 1.0]
[resources]
cpus_per_trial = 1
"""


@dataclass(frozen=True)
class Store:
    """The S3-compatible server of this module: its ``host:port`` and a client of it."""

    endpoint: str
    fs: pafs.S3FileSystem

    def env(self, form: str) -> dict[str, str]:
        """The environment of a ``gcnc`` process: dummy credentials, no cloud, no user
        config; with ``form == "environment"``, the endpoint too."""
        env = {k: v for k, v in os.environ.items() if k not in AWS_SETTINGS}
        env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=KEY, AWS_DEFAULT_REGION=REGION,
                   AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull,
                   AWS_SHARED_CREDENTIALS_FILE=os.devnull)  # fmt: skip
        if form == "environment":
            env["AWS_ENDPOINT_URL"] = f"http://{self.endpoint}"
        return env

    def uri(self, form: str, *parts: str) -> str:
        """``s3://<bucket>/<form>/<parts>``, with the endpoint in its query for ``uri``."""
        base = "/".join(["s3:/", BUCKET, form, *parts])
        return base if form == "environment" else f"{base}?{self.query}"

    @property
    def query(self) -> str:
        return f"endpoint_override={self.endpoint}&scheme=http"

    def files(self, folder: str, *, suffix: str = ".parquet") -> list[str]:
        """Data files below ``folder`` in the bucket (as a reader lists them)."""
        selector = pafs.FileSelector(f"{BUCKET}/{folder}", recursive=True, allow_not_found=True)
        return sorted(
            i.path
            for i in self.fs.get_file_info(selector)
            if i.type == pafs.FileType.File
            and i.base_name.endswith(suffix)
            and not i.base_name.startswith((".", "_"))
        )

    def table(self, path: str) -> pd.DataFrame:
        return pq.read_table(path, filesystem=self.fs).to_pandas()


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    """moto's S3 server on a free loopback port, with an empty bucket; stopped at the end."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http",
                               access_key=KEY, secret_key=KEY, region=REGION,
                               allow_bucket_creation=True)  # fmt: skip
        fs.create_dir(BUCKET)
        yield Store(f"{host}:{port}", fs)
    finally:
        server.stop()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A short ``gcnc`` command (status, analyze, report) to its end."""
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


def epochs_written(store: Store, study: str) -> int:
    """The most epoch files any trial of a running study has written (a listing only: a
    live study rolls up and merges its files)."""
    per_trial: dict[str, int] = {}
    for path in store.files(f"{study}/metrics"):
        folder, name = path.rsplit("/", 2)[-2:]
        if name.startswith("epoch="):
            per_trial[folder] = per_trial.get(folder, 0) + 1
    return max(per_trial.values(), default=0)


def raw_rows(store: Store, study: str) -> pd.DataFrame:
    """Every row of every metrics file in the bucket, duplicates included."""
    paths = store.files(f"{study}/metrics")
    tables = [pq.read_table(p, filesystem=store.fs) for p in paths]
    return pa.concat_tables(tables, promote_options="default").to_pandas()


@pytest.mark.parametrize("form", FORMS)
def test_a_study_on_an_object_store_survives_a_killed_driver_and_reads_back(
    store, spawn, tmp_path, form
):
    env, name = store.env(form), f"store-{form}"
    path = sleep_study(tmp_path, f"[sweep]\nseeds = {list(range(SEEDS))}\n", name=name,
                       epochs=EPOCHS, sleep_s=0.4)  # fmt: skip
    study = store.uri(form, name)
    driver = gcnc(spawn, "run", str(path), "--storage", store.uri(form), "--no-report", env=env)

    def some_epochs_in() -> bool:
        assert driver.poll() is None, driver.communicate()[0]  # the driver must still run
        return epochs_written(store, f"{form}/{name}") >= 2

    wait_for(some_epochs_in, timeout_s=180, what="a trial some epochs in on the store")
    kill_driver(driver)
    status = run_cli("status", study, env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"finish it with: gcnc resume {shlex.quote(study)}" in status.stdout, status.stdout

    out = finish(gcnc(spawn, "resume", study, "--no-report", env=env))
    assert f"{name}: {SEEDS}/{SEEDS} trials done" in out, out
    trials = store.table(f"{BUCKET}/{form}/{name}/trials.parquet")
    assert len(trials) == SEEDS and (trials["status"] == "done").all(), trials
    raw = raw_rows(store, f"{form}/{name}")
    assert len(raw) == SEEDS * (EPOCHS + 1)  # each trial's rows, none twice
    assert not raw.duplicated(["trial_id", "epoch"]).any()
    assert (raw.groupby("trial_id")["epoch"].nunique() == EPOCHS + 1).all()
    assert_reads_back(store, study, name, tmp_path, env=env)
    assert not store.files(f"{form}/{name}", suffix=".html")  # the report went to local.html


def assert_reads_back(store: Store, study: str, name: str, tmp_path: Path, *, env) -> None:
    """``gcnc status``, ``analyze --json`` and ``report -o`` read the study from its URI and
    write their files locally."""
    status = run_cli("status", study, env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"trials: {SEEDS} — {SEEDS} done, 0 running, 0 failed" in status.stdout, status.stdout
    assert f"rows: {SEEDS * (EPOCHS + 1)} metrics rows from {SEEDS} trials" in status.stdout

    verdicts = tmp_path / "verdicts.json"
    analyze = run_cli("analyze", study, "--json", str(verdicts), env=env)
    assert analyze.returncode == 0, analyze.stdout + analyze.stderr
    info = json.loads(verdicts.read_text())
    assert info["study"] == name and info["directory"] == study and not info["warnings"]
    assert {v["n"] for v in info["final_values"]} == {SEEDS}

    html = tmp_path / "local.html"
    report = run_cli("report", study, "-o", str(html), env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert html.stat().st_size > 0 and name in html.read_text()


def test_a_trial_error_on_an_object_store_reaches_the_user_in_one_line(store, spawn, tmp_path):
    env = store.env("uri")
    path = write_study(tmp_path, FAILING)
    proc = gcnc(spawn, "run", str(path), "--storage", store.uri("uri"), "--no-report", env=env)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    error = "ValueError: train.lr = 1.0 is at or above fail_lr = 0.5"
    assert f"gcnc: trial t00001 failed (not retried): {error}" in out.splitlines(), out
    assert "Traceback" not in out, out
    status = run_cli("status", store.uri("uri", "store-fails"), env=env)
    assert f"  t00001: {error}" in status.stdout.splitlines(), status.stdout


def test_a_store_that_does_not_answer_is_one_line_naming_the_study_dir(store):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    where = f"s3://{BUCKET}/uri/any?endpoint_override=127.0.0.1:{port}&scheme=http"
    status = run_cli("status", where, env=store.env("uri"))
    assert status.returncode == 2, status.stdout + status.stderr
    assert status.stdout == "" and len(status.stderr.splitlines()) == 1, status.stderr
    assert status.stderr.startswith(f"gcnc: error: STUDY_DIR: cannot reach {where}: ")


@pytest.mark.parametrize("form", FORMS)
def test_a_small_file_goes_to_the_store_in_one_put_and_reads_back_whole(
    store, form, monkeypatch, caplog
):
    for key, value in store.env(form).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    caplog.set_level(logging.INFO, logger="werkzeug")  # moto's server logs each request
    storage = Storage.open(store.uri(form, "one-put"))
    data = json.dumps({"form": form, "fill": "x" * 5000}).encode()
    storage.write_bytes(storage.path("study.json"), data)
    assert storage.read_bytes(storage.path("study.json")) == data
    requests = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    puts = [m for m in requests if f'"PUT /{BUCKET}/{form}/one-put/study.json ' in m]
    assert len(puts) == 1, requests
    assert not [m for m in requests if "uploads" in m or "uploadId" in m], requests
