"""The metric library: geometric complexity, neural collapse, few-shot transfer, bounds.

Pure functions of a model's embedding function and tensors (SPEC 2, 3); streaming
accumulators (:class:`ClassStats`) are kept apart from the measures; sums are in float64.
"""

from trainables.metrics.bounds import fewshot_error_bound, ncc_error, ncc_error_bound
from trainables.metrics.collapse import geometric_collapse, geometric_collapse_from
from trainables.metrics.estimators import ESTIMATORS, GCEstimator, make_estimator
from trainables.metrics.fewshot import fewshot_ncc, sample_episodes
from trainables.metrics.gc import (
    class_average,
    class_gc,
    gc_estimator_label,
    gc_per_sample,
    geometric_complexity,
)
from trainables.metrics.nc import (
    cdnv,
    cdnv_from_stats,
    centred_means,
    nc1,
    nc1_from_stats,
    nc2,
    nc2_from_means,
    nc2_from_stats,
    nc3,
    nc3_from_stats,
    nc4,
)
from trainables.metrics.stats import ClassStats

__all__ = [
    "ESTIMATORS",
    "ClassStats",
    "GCEstimator",
    "cdnv",
    "cdnv_from_stats",
    "centred_means",
    "class_average",
    "class_gc",
    "fewshot_error_bound",
    "fewshot_ncc",
    "gc_estimator_label",
    "gc_per_sample",
    "geometric_collapse",
    "geometric_collapse_from",
    "geometric_complexity",
    "make_estimator",
    "nc1",
    "nc1_from_stats",
    "nc2",
    "nc2_from_means",
    "nc2_from_stats",
    "nc3",
    "nc3_from_stats",
    "nc4",
    "ncc_error",
    "ncc_error_bound",
    "sample_episodes",
]
