"""Building the Dash app and serving it: loopback by default, dev tools off, quiet logs."""

from __future__ import annotations

import errno
import logging
import socket
import sys

import dash
from werkzeug.serving import make_server

from analysis.explore._callbacks import register
from analysis.explore._hub import StudyHub
from analysis.explore._page import INDEX, layout
from analysis.explore._views import opening_view
from studyfiles import InputError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def make_app(
    locations: list[str], *, interval_s: float = 5.0, allow_missing: bool = False
) -> dash.Dash:
    """The explorer of ``locations`` (study directories: local paths or storage URIs) as a
    Dash app; the page reads new results every ``interval_s`` seconds (0: never). A metrics
    file that cannot be read at start is refused unless ``allow_missing`` (then named).

    Raises:
        ResultsError: a location that is not a study directory or cannot be read.
    """
    gap = min(interval_s, 5.0) / 2
    hub = StudyHub(list(locations), min_gap_s=gap, allow_missing=allow_missing)
    app = dash.Dash(
        __name__,
        title="gcnc explorer",
        update_title=None,
        serve_locally=True,  # Dash's and Plotly's scripts from the package: works offline
        include_assets_files=False,  # nothing served from any folder
        enable_mcp=False,
        suppress_callback_exceptions=True,  # the filters and comparison graphs come and go
    )
    app.index_string = INDEX
    app.layout = lambda: layout(hub, interval_s=interval_s, opening=opening_view(hub))
    register(app, hub)
    app.hub = hub  # for tests
    return app


def serve(
    locations: list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8050,
    interval_s: float = 5.0,
    allow_missing: bool = False,
) -> None:
    """Serve the explorer of ``locations`` at ``http://host:port`` until interrupted.

    Binds the loopback address unless ``host`` says otherwise, and then warns that anyone
    who can reach that address can read the studies. Dash's dev tools stay off (the app is
    served by a plain threaded WSGI server, never Dash's debug runner), and requests are
    not logged.

    Raises:
        ResultsError: a location that is not a study directory or cannot be read.
        InputError: the port is in use or the address cannot be bound.
    """
    check_port(host, port)  # before loading the studies, which may take a while
    app = make_app(locations, interval_s=interval_s, allow_missing=allow_missing)
    if host not in LOOPBACK:
        print(
            f"WARNING: serving on {host}:{port}, not this machine's loopback address: anyone "
            "who can reach it can read these studies (the explorer has no login). Prefer the "
            "default 127.0.0.1 and an SSH tunnel (docs/analysis.md).",
            file=sys.stderr,
        )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    try:
        http = make_server(host, port, app.server, threaded=True)
    except OSError as exc:  # taken since the check
        raise _bind_error(host, port, exc) from None
    where = f"[{host}]" if ":" in host else host
    print(f"gcnc explorer on http://{where}:{port}/ (Ctrl-C to stop)", file=sys.stderr)
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        print("gcnc explorer stopped", file=sys.stderr)
    finally:
        http.server_close()


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, a port that is in use or an address that cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise _bind_error(host, port, exc) from None


def _bind_error(host: str, port: int, exc: OSError) -> InputError:
    if exc.errno == errno.EADDRINUSE:
        return InputError("--port", f"port {port} on {host} is in use", "pick another with --port")
    why = exc.strerror or str(exc)
    return InputError("--host", f"cannot listen on {host}:{port}: {why}", "check --host and --port")
