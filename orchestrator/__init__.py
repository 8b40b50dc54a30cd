"""The study orchestrator: study files, the ``gcnc`` command, Ray Tune runs, Parquet output.

Only :mod:`orchestrator.runner` imports ``ray``; everything else (validation, storage, the
metrics sink, ``gcnc status``) works without it.
"""

from orchestrator.errors import StudyError
from orchestrator.spec import Study, build_study, load_study

__all__ = ["Study", "StudyError", "build_study", "load_study"]
