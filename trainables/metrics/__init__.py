"""The metric library: geometric complexity, neural collapse, few-shot transfer, bounds.

Pure functions of a model's embedding function and tensors (SPEC 2, 3); streaming
accumulators (:class:`ClassStats`) are kept apart from the measures; sums are in float64.

Submodules are imported on first use of a name, so that importing this package (for
:data:`ESTIMATORS`'s names) imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainables._lazy import lazy_exports

if TYPE_CHECKING:
    from trainables.metrics.bounds import (
        fewshot_error_bound,
        fewshot_error_bound_from,
        ncc_error,
        ncc_error_bound,
        ncc_error_bound_from,
        poincare_ratio,
        training_variance,
    )
    from trainables.metrics.collapse import (
        class_stratified_sample,
        geometric_collapse,
        geometric_collapse_from,
    )
    from trainables.metrics.estimators import (
        ESTIMATORS,
        GCEstimator,
        make_estimator,
    )
    from trainables.metrics.fewshot import (
        fewshot_ncc,
        sample_episodes,
    )
    from trainables.metrics.gc import (
        class_average,
        class_gc,
        gc_estimator_label,
        gc_per_sample,
        geometric_complexity,
    )
    from trainables.metrics.measures import (
        between_class_covariance,
        effective_rank,
        effective_rank_from_stats,
        gnc2,
        gnc2_from_means,
        nc1_trace_ratio,
        nc1_trace_ratio_from_stats,
        nc2_etf_deviation,
        unc3,
        unc3_from_stats,
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
        within_class_covariance,
    )
    from trainables.metrics.stats import (
        ClassStats,
    )

__all__ = [
    "ESTIMATORS",
    "ClassStats",
    "GCEstimator",
    "between_class_covariance",
    "cdnv",
    "cdnv_from_stats",
    "centred_means",
    "class_average",
    "class_gc",
    "class_stratified_sample",
    "effective_rank",
    "effective_rank_from_stats",
    "fewshot_error_bound",
    "fewshot_error_bound_from",
    "fewshot_ncc",
    "gc_estimator_label",
    "gc_per_sample",
    "geometric_collapse",
    "geometric_collapse_from",
    "geometric_complexity",
    "gnc2",
    "gnc2_from_means",
    "make_estimator",
    "nc1",
    "nc1_from_stats",
    "nc1_trace_ratio",
    "nc1_trace_ratio_from_stats",
    "nc2",
    "nc2_etf_deviation",
    "nc2_from_means",
    "nc2_from_stats",
    "nc3",
    "nc3_from_stats",
    "nc4",
    "ncc_error",
    "ncc_error_bound",
    "ncc_error_bound_from",
    "poincare_ratio",
    "sample_episodes",
    "training_variance",
    "unc3",
    "unc3_from_stats",
    "within_class_covariance",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "fewshot_error_bound": "bounds",
        "fewshot_error_bound_from": "bounds",
        "ncc_error": "bounds",
        "ncc_error_bound": "bounds",
        "ncc_error_bound_from": "bounds",
        "poincare_ratio": "bounds",
        "training_variance": "bounds",
        "class_stratified_sample": "collapse",
        "geometric_collapse": "collapse",
        "geometric_collapse_from": "collapse",
        "ESTIMATORS": "estimators",
        "GCEstimator": "estimators",
        "make_estimator": "estimators",
        "fewshot_ncc": "fewshot",
        "sample_episodes": "fewshot",
        "class_average": "gc",
        "class_gc": "gc",
        "gc_estimator_label": "gc",
        "gc_per_sample": "gc",
        "geometric_complexity": "gc",
        "between_class_covariance": "measures",
        "effective_rank": "measures",
        "effective_rank_from_stats": "measures",
        "gnc2": "measures",
        "gnc2_from_means": "measures",
        "nc1_trace_ratio": "measures",
        "nc1_trace_ratio_from_stats": "measures",
        "nc2_etf_deviation": "measures",
        "unc3": "measures",
        "unc3_from_stats": "measures",
        "within_class_covariance": "nc",
        "cdnv": "nc",
        "cdnv_from_stats": "nc",
        "centred_means": "nc",
        "nc1": "nc",
        "nc1_from_stats": "nc",
        "nc2": "nc",
        "nc2_from_means": "nc",
        "nc2_from_stats": "nc",
        "nc3": "nc",
        "nc3_from_stats": "nc",
        "nc4": "nc",
        "ClassStats": "stats",
    },
)
