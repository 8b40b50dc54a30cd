"""A real browser opens the report from disk with the network off: no JavaScript error, no
request leaves the file, and every figure renders (a non-blank screenshot of each).

Headless Chromium is driven through the DevTools protocol over its debugging pipe
(``devtools.py``), so no extra package is needed. Debian's ``chromium`` package provides
the browser; the test skips, saying so, where it is absent.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from devtools import NEEDS_CHROMIUM, DevTools
from devtools import errors as _errors
from devtools import non_blank as _non_blank

from analysis import write_report

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]


FIGURES_JS = """JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => {
  el.scrollIntoView();
  const r = el.getBoundingClientRect();
  return {id: el.id, traces: (el.data || []).length, svg: !!el.querySelector('.main-svg'),
          x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
}))"""


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
