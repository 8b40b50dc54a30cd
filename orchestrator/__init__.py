"""The study orchestrator: study files, the ``gcnc`` command, Ray Tune runs, Parquet output.

Only :mod:`orchestrator.cluster` imports ``ray``; everything else (validation, storage, the
metrics sink, ``gcnc status``) works without it.
"""

from orchestrator.spec import StudySpec
from orchestrator.studyfile import build_spec, load_spec
from studyfiles import InputError

__all__ = ["InputError", "StudySpec", "build_spec", "load_spec"]
