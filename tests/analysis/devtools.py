"""Headless Chromium for the browser tests, driven through the DevTools protocol over
``--remote-debugging-pipe`` (file descriptors 3 and 4, NUL-terminated JSON): no extra
package. Debian's ``chromium`` package provides the browser (``GCNC_CHROMIUM`` can point at
another); the tests that use it skip, saying so, where it is absent.
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

CHROMIUM = (
    os.environ.get("GCNC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (Debian package 'chromium')"
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
    "--remote-debugging-pipe",
]
NO_NAMES = "MAP * ~NOTFOUND"  # no name resolves: nothing can leave the machine


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, profile: str, *, timeout: float = 60.0, loopback: bool = False) -> None:
        """Start Chromium with its profile in ``profile``; no host name resolves, and no
        address but file:// pages is reached unless ``loopback`` (then 127.0.0.1 too)."""
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()
        # The browser reads commands on fd 3 and answers on fd 4; a tiny exec wrapper wires
        # them (no preexec_fn, which is unsafe in a threaded process).
        wire = "import os, sys; a, b = (os.dup(int(fd)) for fd in sys.argv[1:3]); "
        wire += "os.dup2(a, 3); os.dup2(b, 4); os.set_inheritable(3, True); "
        wire += "os.set_inheritable(4, True); os.execv(sys.argv[3], sys.argv[3:])"
        rules = f"{NO_NAMES}, EXCLUDE 127.0.0.1" if loopback else NO_NAMES
        flags = [*FLAGS, f"--host-resolver-rules={rules}", f"--user-data-dir={profile}"]
        argv = [CHROMIUM, *flags, "about:blank"]
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

    def new_page(self, *, width: int = 1400, height: int = 900) -> Page:
        """A fresh tab with the page, runtime and log domains on."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session)
        self.call(
            "Emulation.setDeviceMetricsOverride", session, width=width, height=height,
            deviceScaleFactor=1, mobile=False,
        )  # fmt: skip
        return Page(self, session)


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition, take screenshots."""

    def __init__(self, browser: DevTools, session: str) -> None:
        self.browser, self.session = browser, session

    def call(self, method: str, **params) -> dict:
        return self.browser.call(method, self.session, **params)

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.browser.wait_for("Page.loadEventFired")

    def js(self, expression: str):
        """The value of ``expression`` (awaited if a promise), as JSON-able data."""
        reply = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait(self, expression: str, *, timeout: float = 30.0, what: str = ""):
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:g} s for {what or expression}")
            time.sleep(0.2)

    def click_at(self, x: float, y: float) -> None:
        """A real mouse click at viewport coordinates (``x``, ``y``)."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
            time.sleep(0.05)

    def click(self, selector: str, *, text: str | None = None) -> None:
        """A real mouse click at the centre of the first element matching ``selector``
        (whose text is ``text``, if given), scrolled into view."""
        find = f"Array.from(document.querySelectorAll({json.dumps(selector)}))"
        if text is not None:
            find += f".filter(e => e.innerText.trim() === {json.dumps(text)})"
        box = self.wait(
            f"(() => {{ const e = {find}[0]; if (!e) return null; e.scrollIntoView({{block: "
            "'center'}); const r = e.getBoundingClientRect(); "
            "return [r.left + r.width / 2, r.top + r.height / 2]; })()",
            what=f"{selector} {text or ''}".strip(),
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                clickCount=1,
            )  # fmt: skip

    def screenshot(self, clip: dict | None = None) -> bytes:
        """A PNG of the viewport, of ``clip`` (x, y, width, height in page pixels), or of
        the whole page with ``clip={}``."""
        params: dict = {"format": "png", "captureBeyondViewport": True}
        if clip == {}:
            size = self.js("[document.documentElement.scrollWidth, document.body.scrollHeight]")
            clip = {"x": 0, "y": 0, "width": size[0], "height": size[1]}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])


def errors(events: list[dict]) -> list[dict]:
    """The JavaScript exceptions, console errors and log errors among ``events``."""

    def is_error(e: dict) -> bool:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            return True
        if method == "Runtime.consoleAPICalled":
            return params["type"] == "error"
        return method == "Log.entryAdded" and params["entry"]["level"] == "error"

    return [e for e in events if is_error(e)]


def non_blank(png: bytes) -> float:
    """Fraction of pixels that differ from the most common colour."""
    image = pytest.importorskip("PIL.Image").open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24)
    return 1.0 - max(c for c, _ in colours) / (image.width * image.height)
