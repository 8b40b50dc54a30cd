"""Each trial's checkpoints, kept by the study itself: ``checkpoints/<trial id>/``.

A trial resumes from the newest checkpoint of its own that can be read, whoever runs it and
whatever the runner's snapshot says. The runner (Ray Tune) is never given a checkpoint, so
its experiment state can never name one that is gone: a study killed at any moment resumes
from what its storage holds.

A checkpoint is ``epoch=<00000>.ckpt``, written atomically after the row of that epoch
(:mod:`orchestrator.sink`): the state, with the trial's id and hyperparameters so that a
trial id given to other params (an abandoned searcher trial) never resumes from a stranger's
state. While a trial runs the newest :data:`KEEP` are kept; when it ends, only its last (the
final model). A state holding torch tensors is written with ``torch.save`` (so the final
model loads with ``torch.load``), any other with ``pickle``.
"""

from __future__ import annotations

import io
import pickle
import posixpath
import sys
from collections.abc import Mapping
from typing import Any

from studyfiles import StudyDir

KEEP = 2  # checkpoints a running trial keeps (the newest may be unreadable if cut off)
SUFFIX = ".ckpt"
_ZIP = b"PK\x03\x04"  # torch.save's format is a zip archive


class CheckpointStore:
    """The checkpoints of one trial.

    Args:
        sdir: the study directory.
        trial_id: the trial.
        params: the trial's hyperparameter values; a checkpoint of other values is foreign.
        keep: checkpoints kept while the trial runs.
    """

    def __init__(
        self, sdir: StudyDir, trial_id: str, params: Mapping[str, Any], *, keep: int = KEEP
    ) -> None:
        self.sdir, self.trial_id, self.keep = sdir, trial_id, keep
        self.params = dict(params)
        self.folder = sdir.checkpoint_folder(trial_id)

    def paths(self) -> list[str]:
        """The trial's checkpoint files, oldest first."""
        return self.sdir.storage.files(self.folder, suffix=SUFFIX, recursive=False)

    def save(self, state: Mapping[str, Any], *, epoch: int) -> None:
        """Write the state after ``epoch``, then drop all but the newest :attr:`keep`."""
        record = {"trial_id": self.trial_id, "params": self.params, "state": dict(state)}
        path = self.sdir.checkpoint_file(self.trial_id, epoch)
        self.sdir.storage.write_bytes(path, _dumps(record))
        self.prune(self.keep)

    def load(self) -> dict[str, Any] | None:
        """The newest readable state of this trial, or None (a fresh start).

        A file that cannot be read (cut off, or written by another version) is passed over
        for the one before it, with a note on stderr. Finding a checkpoint of other params
        (the trial id was given to another trial) removes them all.
        """
        for path in reversed(self.paths()):
            try:
                record = _loads(self.sdir.storage.read_bytes(path))
            except FileNotFoundError:
                continue  # removed meanwhile by a newer save
            except Exception as err:  # any unpickling error: pass the file over
                _say(f"trial {self.trial_id}: checkpoint {posixpath.basename(path)} is "
                     f"unreadable ({type(err).__name__}); trying the one before")  # fmt: skip
                continue
            if record.get("trial_id") != self.trial_id or record.get("params") != self.params:
                self.clear()
                return None
            return record["state"]
        return None

    def prune(self, keep: int) -> None:
        """Remove all but the newest ``keep`` checkpoints."""
        paths = self.paths()
        for path in paths[: max(0, len(paths) - keep)]:
            self.sdir.storage.delete(path)

    def clear(self) -> None:
        """Remove every checkpoint of the trial."""
        for path in self.paths():
            self.sdir.storage.delete(path)
        self.sdir.storage.remove_empty_folder(self.folder)


def _say(text: str) -> None:
    print(f"gcnc: {text}", file=sys.stderr, flush=True)


def _dumps(record: dict[str, Any]) -> bytes:
    if "torch" in sys.modules and _holds_tensors(record["state"]):
        import torch

        buffer = io.BytesIO()
        torch.save(record, buffer)
        return buffer.getvalue()
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> dict[str, Any]:
    if data.startswith(_ZIP):
        import torch

        # On the CPU: the trainable moves what it loads to its own device, and a trial may
        # resume on a node without the GPU it was saved from.
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    return pickle.loads(data)


def _holds_tensors(value: Any) -> bool:
    import torch

    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensors(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_tensors(v) for v in value)
    return False
