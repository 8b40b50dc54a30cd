"""Metrics files that cannot be read: found, moved aside, and the trials whose rows they held.

A file of ``metrics/`` that fails to read (cut off, overwritten, a disk fault) would make
every reader fail or, worse, lose its rows in silence. A resumed run moves such a file to
``damaged/`` (kept, in case it can be repaired by hand), and the trials whose rows are then
missing are run again from their start. A file of the layers table (``layers/``) goes to
``damaged/layers/`` the same way, and a trial whose layer rows then stop short of its
metrics rows runs again too.
"""

from __future__ import annotations

import posixpath
import sys
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from studyfiles import StudyDir
from studyfiles.errors import first_line
from studyfiles.layout import LAYERS_TABLE, METRICS_TABLE
from studyfiles.tables import concat


@dataclass(frozen=True)
class Reach:
    """How far a trial's readable rows go: its last epoch, and whether it diverged."""

    last_epoch: int
    diverged: bool


@dataclass(frozen=True)
class Scan:
    """One read of the keys of every file of a table (``metrics/`` or ``layers/``): the rows
    that could be read, and the files that could not (with why)."""

    keys: pa.Table | None  # trial_id, epoch (layer), diverged of every readable row
    unreadable: dict[str, str]

    def reach(self) -> dict[str, Reach]:
        """Each trial's last epoch in the readable rows, and whether it diverged."""
        if self.keys is None:
            return {}
        grouped = self.keys.group_by("trial_id").aggregate([("epoch", "max"), ("diverged", "any")])
        return {
            t: Reach(int(e), bool(d))
            for t, e, d in zip(
                grouped["trial_id"].to_pylist(),
                grouped["epoch_max"].to_pylist(),
                pc.fill_null(grouped["diverged_any"], False).to_pylist(),
                strict=True,
            )
        }


def scan(sdir: StudyDir, *, table: str = METRICS_TABLE) -> Scan:
    """Read the keys of every file of ``table`` once; a file removed meanwhile (merged by a
    running driver) is passed over, one that fails to read is named."""
    tables, bad = [], {}
    for path in sdir.storage.files(sdir.table(table), suffix=".parquet"):
        try:
            with sdir.storage.fs.open_input_file(path) as source:
                file = pq.ParquetFile(source)
                held = file.schema_arrow.names
                names = [c for c in ("trial_id", "epoch", "layer", "diverged") if c in held]
                table = file.read(columns=names, use_threads=False)
        except FileNotFoundError:
            continue
        except (OSError, pa.ArrowException) as err:
            bad[path] = first_line(err)
            continue
        if "diverged" not in table.column_names:
            table = table.append_column("diverged", pa.nulls(table.num_rows, pa.bool_()))
        tables.append(table)
    return Scan(concat(tables) if tables else None, bad)


def layers_short(metrics: Reach | None, layers: Reach | None) -> bool:
    """Whether a trial's readable layer rows stop short of its metrics rows (for a trial
    that measures layers): an evaluation writes its layer rows before its metrics row, so
    only a lost file leaves fewer (a diverged trial's last row has no layers)."""
    if metrics is None or metrics.diverged:
        return False
    return layers is None or layers.last_epoch < metrics.last_epoch


def measures_layers(config: object) -> bool:
    """Whether a trial config (a nested dict) asks for a layers table."""
    section = config.get("metrics") if isinstance(config, dict) else None
    return isinstance(section, dict) and section.get("layers", "last") != "last"


def move_aside(sdir: StudyDir, paths: list[str]) -> list[str]:
    """Move ``paths`` (files under ``metrics/`` or ``layers/``) to ``damaged/`` (those of
    ``layers/`` to ``damaged/layers/``), saying so; returns where."""
    moved = []
    for path in paths:
        if path.startswith(sdir.layers + "/"):
            where = posixpath.join(LAYERS_TABLE, posixpath.relpath(path, sdir.layers))
        else:
            where = posixpath.relpath(path, sdir.metrics)
        target = sdir.storage.path("damaged", where)
        sdir.storage.fs.create_dir(posixpath.dirname(target), recursive=True)
        sdir.storage.fs.move(path, target)
        moved.append(target)
        print(f"gcnc: {path} cannot be read; moved to {target}, its trials run again",
              file=sys.stderr, flush=True)  # fmt: skip
    return moved
