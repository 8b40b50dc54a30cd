"""Everything one trial needs: datasets, models, the training loop and the metric library.

Runs and is tested without Ray; the orchestrator adapts :func:`run` to Ray Tune. The
training loop (and with it ``torch``) is imported on first use of :func:`run`, so that
reading configs (validation, ``gcnc status``) does not pay for it.
"""

from typing import Any

from trainables.config import TrialConfig
from trainables.reporter import MemoryReporter, Reporter

__all__ = ["MemoryReporter", "Reporter", "TrialConfig", "run"]


def __getattr__(name: str) -> Any:
    if name == "run":
        from trainables.train import run

        return run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
