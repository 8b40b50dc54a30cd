"""The on-disk contract of a study directory (docs/schema.md), shared by the orchestrator that
writes it and the analysis that reads it: the columns and their types, the layout, storage
access (atomic writes, listings) and the rule that keeps one row per key. It imports nothing
heavier than pyarrow.
"""

from studyfiles.errors import InputError
from studyfiles.layout import StudyDir
from studyfiles.storage import Storage

__all__ = ["InputError", "Storage", "StudyDir"]
