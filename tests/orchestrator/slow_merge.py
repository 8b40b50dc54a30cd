"""``gcnc`` whose merges pause between writing their parts and removing what those replace.

``python slow_merge.py MARKER ARGS…`` runs ``gcnc ARGS…``; each merge touches ``MARKER``
once its new parts are written, then waits a minute, so that a test can kill the driver
in the middle of a merge. Only the driver merges, so the trials are untouched.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from orchestrator import cli, parts

_remove = parts._remove


def _paused_remove(sdir, read_parts, folders) -> None:
    Path(sys.argv[1]).touch()
    time.sleep(60)
    _remove(sdir, read_parts, folders)


if __name__ == "__main__":
    parts._remove = _paused_remove
    sys.exit(cli.main(sys.argv[2:]))
