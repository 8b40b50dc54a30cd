"""An object store that does not answer is bad input in one line, not a traceback.

A loopback HTTP server that refuses every S3 request (403, as for credentials the store
rejects) stands in for the store: pyarrow does not retry a refusal, so the test is fast.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from studyfiles import InputError, StudyDir
from studyfiles.storage import Storage


class _Refuse(http.server.BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_store(monkeypatch) -> Iterator[str]:
    """``s3://bucket/runs?…`` on a loopback server that refuses every request."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    yield f"s3://bucket/runs?endpoint_override=127.0.0.1:{port}&scheme=http"
    server.shutdown()
    thread.join()


def test_a_store_that_refuses_is_bad_input_naming_the_option(refusing_store):
    with pytest.raises(InputError) as caught:
        StudyDir.of(refusing_store, "quick")
    assert caught.value.field == "--storage"
    assert "cannot reach s3://bucket/runs?endpoint_override=" in caught.value.problem
    assert "ACCESS_DENIED" in caught.value.problem
    assert "\n" not in caught.value.line()


def test_a_study_dir_on_a_store_that_refuses_is_bad_input(refusing_store):
    base, _, query = refusing_store.partition("?")
    with pytest.raises(InputError) as caught:
        StudyDir.at(f"{base}/quick?{query}")
    assert caught.value.field == "STUDY_DIR"
    assert "\n" not in caught.value.line()


def test_a_local_folder_that_does_not_exist_yet_is_reached(tmp_path):
    storage = Storage.open(str(tmp_path / "not-yet"))
    assert storage.reach() is storage
