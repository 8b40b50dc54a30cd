"""Every threshold the analysis uses, with its default and the reason for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """Statistical and drawing settings of an analysis.

    Attributes:
        confidence: level of every confidence interval (t-intervals of means, Welch intervals
            of differences, percentile bootstrap intervals of correlations). Default 0.95.
        n_boot: bootstrap resamples of trials for correlation intervals; 1000 is the usual
            floor for percentile intervals at 95 % (Efron & Tibshirani 1993, ch. 13).
        seed: seeds the bootstrap's ``numpy.random.Generator``; a report is reproducible.
        evidence: which tests a claim's verdict rests on: ``"extremes"`` (Welch interval of
            the difference of seed-means at the lowest and highest swept value) and/or
            ``"spearman"`` (bootstrap interval of the rank correlation over trials).
        require: ``"all"``: a verdict is "reproduced" only when every available test's
            interval lies on the claimed side, and "not reproduced" only when every one lies
            on the opposite side; ``"any"``: one such test suffices if none points the other
            way. Anything else is "inconclusive".
        min_per_group: fewest trials at each extreme for the extremes test (Welch needs 2).
        min_trials: fewest trials for a rank correlation to count as evidence.
        progress_by: the training-progress measure for matched comparisons, ``"train_loss"``
            or ``"train_acc"`` (SPEC 5).
        progress_quantile: the matched level is the one this fraction of finished trials
            reached (1.0: every trial; a lower value drops the least-trained ones).
        kendall_max_n: above this many trials Kendall's tau gets no bootstrap interval (its
            bootstrap costs n² per resample); the point estimate is still given.
        n_levels: points of the training-progress axis of progress-aligned curves.
        max_points: most points drawn per line or scatter trace in a figure; statistics are
            computed on every row, only the drawing is thinned.
    """

    confidence: float = 0.95
    n_boot: int = 1000
    seed: int = 0
    evidence: tuple[str, ...] = ("extremes", "spearman")
    require: str = "all"
    min_per_group: int = 2
    min_trials: int = 4
    progress_by: str = "train_loss"
    progress_quantile: float = 1.0
    kendall_max_n: int = 500
    n_levels: int = 40
    max_points: int = 2000

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        unknown = set(self.evidence) - {"extremes", "spearman"}
        if unknown or not self.evidence:
            raise ValueError(
                f"evidence must name 'extremes' and/or 'spearman', got {self.evidence}"
            )
        if self.require not in ("all", "any"):
            raise ValueError(f"require must be 'all' or 'any', got {self.require!r}")
        if self.progress_by not in ("train_loss", "train_acc"):
            raise ValueError(
                f"progress_by must be train_loss or train_acc, got {self.progress_by!r}"
            )
        if not 0.0 < self.progress_quantile <= 1.0:
            raise ValueError(f"progress_quantile must be in (0, 1], got {self.progress_quantile}")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be at least 100, got {self.n_boot}")
