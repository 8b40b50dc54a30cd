"""``gcnc serve`` in a real browser: headless Chromium (``devtools.py``) drives the explorer
of two synthetic studies served on a free loopback port. The page loads without a
JavaScript error; choosing another metric redraws the curves with the right traces; a
filter changes the trial count; rows written into a running study appear on screen at the
next refresh; the verdicts turn exploratory when a setting departs from the plan; the
comparison has one column per study; a study's strings are shown as text.

``GCNC_SCREENSHOTS=DIR`` also saves the page at each step as ``DIR/explorer_*.png``
(docs/analysis.md shows them).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from devtools import NEEDS_CHROMIUM, DevTools, errors
from synthetic_study import SyntheticSpec, write_synthetic_study
from werkzeug.serving import make_server

from analysis import load_results
from analysis.explore import make_app
from studyfiles import Storage, StudyDir
from studyfiles.tables import to_bytes

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "orchestrator"))
from gcnc_testkit import reap_session, sleep_study  # noqa: E402  (the orchestrator tests' kit)

CURVES = "document.querySelector('#curves .js-plotly-plot')"
# A trace's array as a list: Plotly keeps numpy's arrays as typed arrays (base64 on the wire)
ARRAY = "(v => Array.from(v && v._inputArray ? v._inputArray : v))"
SCREENSHOTS = os.environ.get("GCNC_SCREENSHOTS")


def _text(page, element_id: str) -> str:
    return page.js(f"(document.getElementById('{element_id}') || {{}}).innerText || ''")


def _shot(page, name: str) -> None:
    """Save the viewport as ``$GCNC_SCREENSHOTS/explorer_<name>.png`` when asked to."""
    if not SCREENSHOTS:
        return
    time.sleep(0.5)  # let the transitions end
    page.js("window.scrollTo(0, 0)")
    os.makedirs(SCREENSHOTS, exist_ok=True)
    with open(os.path.join(SCREENSHOTS, f"explorer_{name}.png"), "wb") as fh:
        fh.write(page.screenshot({"x": 0, "y": 0, "width": 1400, "height": 1050}))


class Server:
    """The explorer of ``locations`` on a free loopback port, in a thread."""

    def __init__(self, locations: list[str], *, interval_s: float) -> None:
        self.app = make_app(locations, interval_s=interval_s)
        self.http = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.http.server_port}/"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def study_dirs(tmp_path_factory) -> list[str]:
    grid = SyntheticSpec(
        name="lr-batch-grid", lrs=(0.005, 0.02, 0.1), batch_sizes=(64, 256), seeds=(0, 1, 2),
        diverged=1, running=2, restarted=0, roll_every=1000,
    )  # fmt: skip
    sweep = SyntheticSpec(name="lr-sweep", seeds=(0, 1, 2, 3), running=0, restarted=0)
    return [
        write_synthetic_study(tmp_path_factory.mktemp("grid"), grid),
        write_synthetic_study(tmp_path_factory.mktemp("sweep"), sweep),
    ]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = DevTools(str(tmp_path_factory.mktemp("profile")), loopback=True)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def page(study_dirs, browser):
    server = Server(study_dirs, interval_s=1.0)
    tab = browser.new_page()
    tab.open(server.url)
    tab.wait(f"{CURVES} && {CURVES}.data && {CURVES}.data.length > 0", what="the curves")
    yield tab
    server.close()


def test_the_page_loads_without_javascript_errors(page, browser):
    assert page.js("document.title") == "gcnc explorer"
    assert "lr-batch-grid" in _text(page, "study")
    assert page.wait("document.getElementById('trial-count').innerText") == "18 of 18 trials shown"
    _shot(page, "curves")
    assert errors(browser.events) == []


def test_choosing_a_metric_redraws_the_curves_with_its_traces(page, study_dirs):
    page.click("#metric")
    page.click(".dash-dropdown-option", text="NC (CDNV)")
    page.wait(f"{CURVES}.layout.title.text.startsWith('NC (CDNV)')", what="the NC curves")
    traces = page.js(
        f"{CURVES}.data.filter(t => t.name)"
        f".map(t => ({{name: t.name, x: {ARRAY}(t.x), y: {ARRAY}(t.y)}}))"
    )
    names = {t["name"] for t in traces}
    assert names == {f"lr={lr}, batch_size={b}" for lr in (0.005, 0.02, 0.1) for b in (64, 256)}
    # the geometric mean over seeds, from the Parquet files (finished trials: never change)
    m = load_results(study_dirs[0]).metrics
    at = m[(m["train.lr"] == 0.005) & (m["train.batch_size"] == 64) & (m["epoch"] == 3)]
    line = next(t for t in traces if t["name"] == "lr=0.005, batch_size=64")
    assert line["y"][line["x"].index(3)] == pytest.approx(np.exp(np.log(at["nc_cdnv"]).mean()))


def test_a_filter_changes_the_trial_count_and_the_curves(page):
    page.click("#param-filters label", text="0.1")
    page.wait("document.getElementById('trial-count').innerText === '12 of 18 trials shown'")
    page.wait(f"!{CURVES}.data.some(t => (t.name || '').startsWith('lr=0.1'))")
    page.click("#param-filters label", text="0.1")
    page.wait("document.getElementById('trial-count').innerText === '18 of 18 trials shown'")


def _grow(study_dir: str, epochs: int) -> int:
    """Write the next ``epochs`` evaluations of every running trial as its per-epoch
    files, as the sink does; the rows written."""
    sdir = StudyDir(Storage.open(study_dir))
    status = pq.read_table(os.path.join(study_dir, "trials.parquet")).to_pandas()
    written = 0
    for trial in status.loc[status["status"] == "running", "trial_id"]:
        files = sdir.storage.files(sdir.trial_folder(trial), suffix=".parquet")
        rows = pa.concat_tables(
            [pq.read_table(pa.BufferReader(sdir.storage.read_bytes(f))) for f in files]
        )
        last = rows.slice(int(pc.index(rows["epoch"], pc.max(rows["epoch"])).as_py()), 1)
        for k in range(1, epochs + 1):
            epoch = last["epoch"][0].as_py() + k
            row = last.set_column(
                last.schema.get_field_index("epoch"), "epoch", pa.array([epoch], pa.int64())
            )
            now = pa.array([time.time_ns()], pa.timestamp("ns")).cast(
                last.schema.field("written_at").type
            )
            row = row.set_column(row.schema.get_field_index("written_at"), "written_at", now)
            sdir.storage.write_bytes(sdir.epoch_file(trial, epoch), to_bytes(row))
            written += 1
    return written


def test_rows_written_into_a_running_study_appear_at_the_next_refresh(page, study_dirs):
    before = int(page.wait("document.getElementById('row-count').innerText"))
    added = _grow(study_dirs[0], epochs=2)
    assert added == 4
    page.wait(
        f"Number(document.getElementById('row-count').innerText) === {before + added}",
        timeout=20, what="the new rows on screen",
    )  # fmt: skip


def test_a_file_that_cannot_be_read_is_named_on_the_page_not_a_crash(page, study_dirs):
    broken = os.path.join(study_dirs[0], "metrics", "broken.parquet")
    with open(broken, "wb") as fh:
        fh.write(b"not parquet")
    try:
        problem = page.wait("(document.getElementById('problem-text') || {}).innerText", timeout=20)
        assert "broken.parquet" in problem
        assert _text(page, "trial-count") == "18 of 18 trials shown"
    finally:
        os.remove(broken)
    page.wait("!document.getElementById('problem-text')", timeout=20, what="the problem gone")


def test_clicking_a_trial_s_line_shows_that_trial(page):
    page.click("#mode label", text="each trial")
    page.wait(f"{CURVES}.data.length === 3 && !{CURVES}.data[0].fill", what="one line per lr")
    page.js(f"{CURVES}.scrollIntoView({{block: 'center'}})")
    # the pixel of a point of the lr=0.005 line (its trials overlap), from Plotly's own axes
    trials, x, y = page.js(
        f"(() => {{ const el = {CURVES}, t = el._fullData[0], L = el._fullLayout;"
        " const k = 5, r = el.getBoundingClientRect();"
        " return [Array.from(new Set(t.customdata)), r.left + L.xaxis._offset +"
        " L.xaxis.d2p(t.x[k]), r.top + L.yaxis._offset + L.yaxis.d2p(t.y[k])]; })()"
    )
    page.click_at(x, y)
    facts = page.wait("(document.getElementById('trial-facts') || {}).innerText", timeout=20)
    shown = facts.split("\n")[1].split("\t")[1]
    assert shown in trials and "train.lr\t0.005" in facts
    page.click("#mode label", text="settings (all swept keys but the seed), across seeds")


def test_changing_a_verdict_setting_labels_the_results_exploratory(page):
    page.click(".tab", text="Verdicts")
    label = page.wait("(document.getElementById('analysis-label') || {}).innerText", timeout=60)
    assert label.startswith("primary")
    assert page.js("document.querySelectorAll('#headline tbody tr').length") > 0
    page.click("#alpha")
    page.click(".dash-dropdown-option", text="0.1")
    page.wait(
        "(document.getElementById('analysis-label') || {}).innerText.startsWith('EXPLORATORY')",
        timeout=60, what="the exploratory label",
    )  # fmt: skip
    assert "alpha=0.1" in _text(page, "analysis-label")
    _shot(page, "verdicts")


def test_clicking_a_trial_shows_its_curves_config_and_provenance(page):
    page.click(".tab", text="Trials")
    page.click("#trial-table td", text="t00004")
    page.wait("((document.getElementById('trial-facts') || {}).innerText || '').includes('t00004')")
    config = _text(page, "trial-config")
    assert '"lr": 0.005' in config and '"batch_size": 256' in config
    page.wait("((document.querySelector('#trial-curves .js-plotly-plot') || {}).data || []).length")
    page.wait("document.querySelector('#parcoords .js-plotly-plot').data.length === 1")
    _shot(page, "trials")


def test_brushing_an_axis_of_the_parallel_coordinates_filters_the_trials(page):
    page.click(".tab", text="Trials")
    parcoords = "document.querySelector('#parcoords .js-plotly-plot')"
    page.wait(f"{parcoords}.data.length === 1")
    labels = page.js(f"{parcoords}.data[0].dimensions.map(d => d.label)")
    lr = labels.index("lr")
    # as a drag along the axis does: Plotly emits the restyle event Dash listens to
    page.js(
        f"void Plotly.restyle({parcoords}, {{'dimensions[{lr}].constraintrange': [[0.004, 0.03]]}})"
    )
    page.wait("document.getElementById('trial-count').innerText === '12 of 18 trials shown'")
    note = _text(page, "brush-note")
    assert note == "brushed on the parallel coordinates: lr in [0.004, 0.03]"
    page.wait("document.querySelectorAll('#trial-table tbody tr').length === 12")
    drawn = page.wait(f"{parcoords}.data[0].dimensions[{lr}].constraintrange")
    assert drawn == [0.004, 0.03]  # the brush stays drawn where the reader left it
    page.click("#clear-brush")
    page.wait("document.getElementById('trial-count').innerText === '18 of 18 trials shown'")
    page.wait(f"!{parcoords}.data[0].dimensions[{lr}].constraintrange", what="the brush gone")


def test_the_comparison_has_one_column_per_study(page):
    page.click(".tab", text="Compare studies")
    page.wait("!!document.getElementById('compare-final')", timeout=60, what="the comparison")
    heads = page.js(
        "Array.from(document.querySelectorAll('#compare-final th.study-col')).map(e => e.innerText)"
    )
    assert heads == ["lr-batch-grid", "lr-sweep"]
    _shot(page, "compare")


def test_no_javascript_error_in_the_whole_session(page, browser):
    page.js("1")  # collect late events
    assert errors(browser.events) == []


def _wait(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(0.5)


def test_a_running_gcnc_study_s_rows_grow_on_screen(tmp_path, browser, ray_tmpdir):
    """A real ``gcnc run`` of the stand-in trainable (``testing.sleep``, one epoch a second)
    in another process; the page served from its study directory while it runs."""
    path = sleep_study(
        tmp_path, "[sweep]\nseeds = [0, 1, 2, 3]\n", name="sleepy-live", epochs=20, sleep_s=1.0
    )
    study_dir = str(tmp_path / "runs" / "sleepy-live")
    with open(tmp_path / "run.log", "w") as log:
        run = [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(path),
            "--storage",
            str(tmp_path / "runs"),
            "--no-report",
        ]
        driver = subprocess.Popen(run, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = None
    try:
        files = os.path.join(study_dir, "metrics", "**", "*.parquet")
        _wait(lambda: glob.glob(files, recursive=True), timeout=240, what="the run's first rows")
        server = Server([study_dir], interval_s=1.0)
        tab = browser.new_page()
        tab.open(server.url)
        first = int(tab.wait("(document.getElementById('row-count') || {}).innerText", timeout=60))
        tab.wait(
            f"Number(document.getElementById('row-count').innerText) >= {first + 2}",
            timeout=60, what="more rows on screen",
        )  # fmt: skip
        assert "running" in _text(tab, "progress")
        if SCREENSHOTS:  # a few epochs more, one line per trial
            tab.click("#mode label", text="each trial")
            tab.wait("Number(document.getElementById('row-count').innerText) >= 24", timeout=90)
            _shot(tab, "live")
    finally:
        if server is not None:
            server.close()
        reap_session(driver.pid)


def test_a_study_s_strings_are_shown_as_text(tmp_path, browser):
    hostile = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    spec = SyntheticSpec(name=f"sweep {hostile}", running=0, restarted=0)
    server = Server([write_synthetic_study(tmp_path / "s", spec)], interval_s=0)
    try:
        tab = browser.new_page()
        tab.open(server.url)
        tab.wait(f"{CURVES} && {CURVES}.data && {CURVES}.data.length > 0", what="the curves")
        assert hostile in _text(tab, "study")
        assert tab.js("window.pwned") is None
        assert tab.js("document.querySelectorAll('img').length") == 0
    finally:
        server.close()
