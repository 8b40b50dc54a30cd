"""Analysis of a gcnc study directory: reads Parquet only (docs/schema.md).

Load a study, aggregate across seeds, correlate final quantities, test the paper's claims,
draw its figures and write one self-contained HTML report.
"""

from analysis.load import ResultsError, StudyResults, load_results
from analysis.options import Options
from analysis.report import PngExportError, write_report
from analysis.tables import Results, compute_results, format_tables, results_json

__all__ = [
    "Options",
    "PngExportError",
    "Results",
    "ResultsError",
    "StudyResults",
    "compute_results",
    "format_tables",
    "load_results",
    "results_json",
    "write_report",
]
