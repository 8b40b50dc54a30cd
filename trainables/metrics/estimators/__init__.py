"""GC estimators (SPEC 2.2), looked up by name in :data:`ESTIMATORS`.

Each module holds one estimator class; :data:`ESTIMATORS` names where each lives and imports
it on first use (checking a name imports no torch); :func:`make_estimator` builds one from a
name and an options dict (as written in a study file) and rejects unknown options. A new
estimator is registered with ``ESTIMATORS.add_lazy(name, "module:Class")`` here, or with
``ESTIMATORS.add(name, cls)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainables._lazy import lazy_exports
from trainables.registry import Registry

if TYPE_CHECKING:
    from trainables.metrics.estimators._base import (
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

ESTIMATORS: Registry[type[GCEstimator]] = Registry("GC estimator")
ESTIMATORS.add_lazy("exact", "trainables.metrics.estimators.exact:Exact")
ESTIMATORS.add_lazy("batch", "trainables.metrics.estimators.batch:BatchSample")
ESTIMATORS.add_lazy("output_sample", "trainables.metrics.estimators.output_sample:OutputSample")
ESTIMATORS.add_lazy("mask", "trainables.metrics.estimators.mask:Mask")
ESTIMATORS.add_lazy("projection", "trainables.metrics.estimators.projection:Projection")

__getattr__ = lazy_exports(
    __name__,
    {
        "EmbeddingFn": "_base",
        "GCEstimator": "_base",
        "Linearization": "_base",
        "make_estimator": "_base",
        "BatchSample": "batch",
        "Exact": "exact",
        "Mask": "mask",
        "OutputSample": "output_sample",
        "Projection": "projection",
    },
)
