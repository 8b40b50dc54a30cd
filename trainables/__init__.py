"""Everything one trial needs: datasets, models, the training loop and the metric library.

Runs and is tested without Ray; the orchestrator adapts :func:`run` to Ray Tune.
"""

from trainables.config import TrialConfig
from trainables.reporter import MemoryReporter, Reporter
from trainables.train import run

__all__ = ["MemoryReporter", "Reporter", "TrialConfig", "run"]
