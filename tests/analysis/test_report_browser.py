"""A real browser opens the report from disk with the network off: no JavaScript error, no
request leaves the file, and every figure renders (a non-blank screenshot of each).

Headless Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe``
(file descriptors 3 and 4, NUL-terminated JSON), so no extra package is needed. Debian's
``chromium`` package provides the browser; the test skips, saying so, where it is absent.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import sys
import time

import pytest

from analysis import write_report

CHROMIUM = (
    os.environ.get("GCNC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",  # software WebGL for the scatter matrix
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: nothing can leave the machine
    "--remote-debugging-pipe",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package 'chromium')"),
]


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, profile: str, *, timeout: float = 60.0) -> None:
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()
        # The browser reads commands on fd 3 and answers on fd 4; a tiny exec wrapper wires
        # them (no preexec_fn, which is unsafe in a threaded process).
        wire = "import os, sys; a, b = (os.dup(int(fd)) for fd in sys.argv[1:3]); "
        wire += "os.dup2(a, 3); os.dup2(b, 4); os.set_inheritable(3, True); "
        wire += "os.set_inheritable(4, True); os.execv(sys.argv[3], sys.argv[3:])"
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", wire, str(cmd_read), str(out_write), *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(cmd_read, out_write),
        )
        os.close(cmd_read)
        os.close(out_write)
        self.timeout, self.events, self._buffer, self._next_id = timeout, [], b"", 0

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self._cmd_write)
        os.close(self._out_read)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read()
            if event.get("method") == method:
                return event
            self.events.append(event)

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out_read], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._out_read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)


FIGURES_JS = """JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => {
  el.scrollIntoView();
  const r = el.getBoundingClientRect();
  return {id: el.id, traces: (el.data || []).length, svg: !!el.querySelector('.main-svg'),
          x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
}))"""


def _non_blank(png: bytes) -> float:
    """Fraction of pixels that differ from the most common colour."""
    image = pytest.importorskip("PIL.Image").open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24)
    return 1.0 - max(c for c, _ in colours) / (image.width * image.height)


def open_offline(page: str, profile: str) -> dict:
    """Open ``page`` with the network off; its events, figures and a screenshot of each."""
    browser = DevTools(profile)
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session)
        browser.call(
            "Network.emulateNetworkConditions", session, offline=True, latency=0,
            downloadThroughput=-1, uploadThroughput=-1,
        )  # fmt: skip
        browser.call(
            "Emulation.setDeviceMetricsOverride", session, width=1400, height=900,
            deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        browser.call("Page.navigate", session, url="file://" + page)
        browser.wait_for("Page.loadEventFired")
        found = browser.call("Runtime.evaluate", session, expression=FIGURES_JS)
        figures = json.loads(found["result"]["value"])
        shots = {fig["id"]: _screenshot(browser, session, fig) for fig in figures}
        time.sleep(0.5)
        browser.call("Runtime.evaluate", session, expression="1")  # collect late events
        return {"events": browser.events, "figures": figures, "shots": shots}
    finally:
        browser.close()


def _screenshot(browser: DevTools, session: str, fig: dict) -> bytes:
    clip = {"x": fig["x"], "y": fig["y"], "width": fig["w"], "height": fig["h"], "scale": 1}
    data = browser.call(
        "Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True
    )
    return base64.b64decode(data["data"])


def _errors(events: list[dict]) -> list[dict]:
    def is_error(e: dict) -> bool:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            return True
        if method == "Runtime.consoleAPICalled":
            return params["type"] == "error"
        return method == "Log.entryAdded" and params["entry"]["level"] == "error"

    return [e for e in events if is_error(e)]


@pytest.fixture(scope="module")
def rendered(lr_study_dir, tmp_path_factory):
    report = write_report(lr_study_dir, output=str(tmp_path_factory.mktemp("html") / "r.html"))
    return open_offline(report, str(tmp_path_factory.mktemp("profile")))


def test_the_harness_sees_errors_and_blank_figures(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><div class="js-plotly-plot" id="blank" style="width:400px;height:300px">'
        "</div><script>throw new Error('boom')</script>"
        '<img src="https://example.com/x.png"></body></html>'
    )
    seen = open_offline(str(page), str(tmp_path / "profile"))
    assert any("boom" in json.dumps(e) for e in _errors(seen["events"]))
    assert _non_blank(seen["shots"]["blank"]) < 0.02
    urls = [
        e["params"]["request"]["url"]
        for e in seen["events"]
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert "https://example.com/x.png" in urls


def test_no_javascript_errors(rendered):
    assert _errors(rendered["events"]) == []


def test_no_request_leaves_the_file(rendered):
    urls = [
        e["params"]["request"]["url"]
        for e in rendered["events"]
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert urls and all(u.startswith(("file://", "data:", "about:")) for u in urls), urls


def test_every_figure_renders(rendered):
    figures = rendered["figures"]
    assert len(figures) == 7
    for fig in figures:
        assert fig["svg"] and fig["traces"] > 0 and fig["w"] > 300 and fig["h"] > 200, fig


def test_every_figure_screenshot_is_not_blank(rendered):
    for name, png in rendered["shots"].items():
        assert _non_blank(png) > 0.02, name
