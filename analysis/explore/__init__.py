"""``gcnc serve``: a live Dash explorer of study directories (docs/analysis.md, "The
explorer"). It reads Parquet through :mod:`analysis` only, as the studies grow.

- :func:`serve` serves it (blocking); :func:`make_app` builds the Dash app (tests).
- The page: progress and live refresh (:mod:`._hub`, :mod:`._trials`), curves
  (:mod:`._curves`), final values (:mod:`._finals`), verdicts, comparison and exports
  (:mod:`._results`); layout in :mod:`._page`, callbacks in :mod:`._callbacks`.
"""

from analysis.explore._server import make_app, serve

__all__ = ["make_app", "serve"]
