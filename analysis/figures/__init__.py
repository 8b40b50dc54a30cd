"""Plotly figures: each a tested ``_get_<figure>_info`` returning plain data and a thin
``plot_<figure>`` drawing it. A figure whose metrics a study did not measure raises
:class:`NotMeasured` from its info function, so a report leaves it out with a note."""

from analysis.figures._base import NotMeasured
from analysis.figures._bound import BoundInfo, _get_bound_info, plot_bound
from analysis.figures._curves import (
    CurvesInfo,
    Line,
    _get_sweep_info,
    _get_transfer_info,
    plot_curves,
    plot_sweep,
    plot_transfer,
)
from analysis.figures._depth import DepthInfo, _get_depth_info, plot_depth
from analysis.figures._heatmap import (
    HeatmapInfo,
    _get_correlation_heatmap_info,
    plot_correlation_heatmap,
)
from analysis.figures._robustness import RobustnessInfo, _get_robustness_info, plot_robustness
from analysis.figures._scatter import (
    ScatterMatrixInfo,
    _get_scatter_matrix_info,
    plot_scatter_matrix,
)

__all__ = [
    "BoundInfo",
    "CurvesInfo",
    "DepthInfo",
    "HeatmapInfo",
    "Line",
    "NotMeasured",
    "RobustnessInfo",
    "ScatterMatrixInfo",
    "_get_bound_info",
    "_get_correlation_heatmap_info",
    "_get_depth_info",
    "_get_robustness_info",
    "_get_scatter_matrix_info",
    "_get_sweep_info",
    "_get_transfer_info",
    "plot_bound",
    "plot_correlation_heatmap",
    "plot_curves",
    "plot_depth",
    "plot_robustness",
    "plot_scatter_matrix",
    "plot_sweep",
    "plot_transfer",
]
