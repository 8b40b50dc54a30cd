"""Which columns the analysis compares, and how (the columns themselves: studyfiles.schema)."""

from __future__ import annotations

#: The paper's source-side quantities, raw GC first and the scale-free ones beside it (SPEC 5).
SOURCE_METRICS = ("gc", "geo_collapse", "nc_cdnv")
#: Final quantities compared across trials; few-shot accuracies go before ``test_acc``.
FINAL_QUANTITIES = ("gc", "geo_collapse", "nc_cdnv", "target_nc_cdnv", "test_acc")
