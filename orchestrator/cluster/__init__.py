"""Ray and Ray Tune: the only modules of the project that import ``ray``.

:func:`session` brings Ray up for a run (and Tune's settings), :func:`run_study` runs or
resumes a study's trials as one Tune experiment.
"""

from orchestrator.cluster.session import session
from orchestrator.cluster.temp import remove_dead_private_folders
from orchestrator.cluster.tuner import run_study

__all__ = ["remove_dead_private_folders", "run_study", "session"]
