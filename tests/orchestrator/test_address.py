"""``--address`` where no cluster answers: one line and exit 2 at once, nothing written."""

from __future__ import annotations

import pathlib
import socket
import time

from orchestrator import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_where_nothing_listens_is_refused_in_one_line(tmp_path, capsys):
    storage = tmp_path / "runs"
    address = f"127.0.0.1:{_free_port()}"
    start = time.monotonic()
    study = pathlib.Path(__file__).resolve().parents[2] / "studies" / "quickstart.toml"
    argv = ["run", str(study), "--smoke", "--storage", str(storage)]
    code = cli.main([*argv, "--address", address])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and time.monotonic() - start < 20
    assert len(err) == 1 and err[0].startswith(
        f"gcnc: error: --address: no Ray cluster answers at {address}"
    )
    assert "leave --address out" in err[0]
    assert not storage.exists()
