"""GC estimators (SPEC 2.2), looked up by name in :data:`ESTIMATORS`.

Each module holds one estimator and registers it on import; :func:`make_estimator` builds one
from a name and an options dict (as written in a study file) and rejects unknown options.
"""

from trainables.metrics.estimators._base import (
    ESTIMATORS,
    EmbeddingFn,
    GCEstimator,
    Linearization,
    make_estimator,
)
from trainables.metrics.estimators.batch import BatchSample
from trainables.metrics.estimators.exact import Exact
from trainables.metrics.estimators.mask import Mask
from trainables.metrics.estimators.output_sample import OutputSample
from trainables.metrics.estimators.projection import Projection

__all__ = [
    "ESTIMATORS",
    "BatchSample",
    "EmbeddingFn",
    "Exact",
    "GCEstimator",
    "Linearization",
    "Mask",
    "OutputSample",
    "Projection",
    "make_estimator",
]
