"""The study directory's layout (docs/schema.md): where each file of a study lives."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

from studyfiles.errors import InputError
from studyfiles.storage import Storage

COMPACTED = "compacted.parquet"
TRIAL_FOLDER = "trial_id="  # metrics/trial_id=<id>/: a trial whose rows are not merged yet
# The tables of a study: a folder each, laid out alike (docs/schema.md).
METRICS_TABLE = "metrics"  # one row per (trial, evaluation)
LAYERS_TABLE = "layers"  # one row per (trial, evaluation, layer), where a study measures layers
TABLES = (METRICS_TABLE, LAYERS_TABLE)
PART_PREFIX = "part-"
PARTS_TRIALS_KEY = "gcnc.trials"  # a part's key-value metadata: the JSON list of its trials
CODE_DIFF = "code.diff"  # the source tree's changes from its commit, when it was dirty


@dataclass(frozen=True)
class StudyDir:
    """Paths of one study directory on its storage."""

    storage: Storage  # rooted at the study directory

    @classmethod
    def of(cls, storage: str, name: str) -> StudyDir:
        """The directory of study ``name`` under ``--storage``.

        Raises:
            InputError: the storage cannot be opened or reached.
        """
        return cls(Storage.open(storage).reach().child(name))

    @classmethod
    def at(cls, location: str) -> StudyDir:
        """An existing study directory (one holding ``study.json``).

        Raises:
            InputError: the location cannot be opened or reached, or holds no ``study.json``.
        """
        sdir = cls(Storage.open(location, field="STUDY_DIR").reach(field="STUDY_DIR"))
        if not sdir.exists():
            raise InputError(
                "STUDY_DIR",
                f"{location} holds no study.json",
                "give a directory written by gcnc run",
            )
        return sdir

    @property
    def location(self) -> str:
        return self.storage.location

    def exists(self) -> bool:
        return self.storage.is_file(self.study_json)

    @property
    def study_json(self) -> str:
        return self.storage.path("study.json")

    @property
    def code_diff(self) -> str:
        return self.storage.path(CODE_DIFF)

    @property
    def trials_parquet(self) -> str:
        return self.storage.path("trials.parquet")

    @property
    def driver_json(self) -> str:
        return self.storage.path("driver.json")

    @property
    def report_html(self) -> str:
        return self.storage.path("report.html")

    @property
    def metrics(self) -> str:
        return self.table(METRICS_TABLE)

    @property
    def layers(self) -> str:
        return self.table(LAYERS_TABLE)

    def table(self, table: str) -> str:
        """The folder of ``table`` (one of :data:`TABLES`)."""
        if table not in TABLES:
            raise ValueError(f"no table {table!r}; the tables: {', '.join(TABLES)}")
        return self.storage.path(table)

    def trial_folder(self, trial_id: str, *, table: str = METRICS_TABLE) -> str:
        return posixpath.join(self.table(table), f"{TRIAL_FOLDER}{trial_id}")

    def epoch_file(self, trial_id: str, epoch: int, *, table: str = METRICS_TABLE) -> str:
        folder = self.trial_folder(trial_id, table=table)
        return posixpath.join(folder, f"epoch={epoch:05d}.parquet")

    def rolled_file(self, trial_id: str, *, table: str = METRICS_TABLE) -> str:
        return posixpath.join(self.trial_folder(trial_id, table=table), "rolled.parquet")

    def compacted_file(self, trial_id: str, *, table: str = METRICS_TABLE) -> str:
        return posixpath.join(self.trial_folder(trial_id, table=table), COMPACTED)

    def part_file(self, name: str, *, table: str = METRICS_TABLE) -> str:
        return posixpath.join(self.table(table), f"{PART_PREFIX}{name}.parquet")

    @property
    def checkpoints(self) -> str:
        return self.storage.path("checkpoints")

    def checkpoint_folder(self, trial_id: str) -> str:
        return self.storage.path("checkpoints", trial_id)

    def checkpoint_file(self, trial_id: str, epoch: int) -> str:
        return self.storage.path("checkpoints", trial_id, f"epoch={epoch:05d}.ckpt")

    @property
    def tune(self) -> str:
        return self.storage.path("tune")

    def read_info(self) -> dict[str, Any]:
        """The parsed ``study.json``.

        Raises:
            InputError: it cannot be read or is not a JSON object.
        """
        try:
            info = json.loads(self.storage.read_bytes(self.study_json))
        except (OSError, ValueError) as err:
            raise InputError(
                "study.json",
                f"cannot read {self.study_json}: {err}",
                "restore the file or start a new study",
            ) from None
        if not isinstance(info, dict):
            raise InputError("study.json", f"{self.study_json} holds no JSON object", "restore it")
        return info


def trial_of_folder(path: str) -> str | None:
    """The trial id of a file in a table's ``trial_id=<id>/`` folder, else None."""
    folder = posixpath.basename(posixpath.dirname(path))
    return folder.removeprefix(TRIAL_FOLDER) if folder.startswith(TRIAL_FOLDER) else None


def is_part(path: str) -> bool:
    name = posixpath.basename(path)
    return name.startswith(PART_PREFIX) and name.endswith(".parquet")
