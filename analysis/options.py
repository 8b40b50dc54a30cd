"""Every threshold the analysis uses, with its default and the reason for it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from studyfiles.plan import CLAIM_GROUPS, COMPARISONS, CORRECTIONS, Plan


@dataclass(frozen=True)
class Options:
    """Statistical and drawing settings of an analysis.

    The statistical ones (``confidence`` = 1 − α, ``correction``, ``comparison``,
    ``claims``, ``evidence``, ``require``, ``progress_by``, ``progress_quantile``) are a
    study's analysis plan (:class:`studyfiles.plan.Plan`): :meth:`from_plan` makes them
    from one, :meth:`plan` gives the plan they amount to, and results computed with a plan
    other than the study's are labelled exploratory.

    Attributes:
        confidence: level of every confidence interval (t-intervals of means, Welch intervals
            of differences, percentile bootstrap intervals of correlations), and 1 − α of
            the verdicts' familywise error rate. Default 0.95.
        correction: ``holm`` (default), ``bonferroni`` or ``none``: how a verdict table
            holds its familywise error (analysis.inference.adjust).
        comparison: ``both`` (default): claims are tested at the final epoch and at matched
            progress, one family; ``final`` or ``matched``: that comparison is the family,
            the other one is shown as secondary (its own family, not in the headline).
        claims: ``("all",)`` or the claim groups to test (``studyfiles.plan.CLAIM_GROUPS``).
        n_perm: random permutations of a Spearman test's p-value; its smallest possible
            p-value is ``1 / (n_perm + 1)``, well below α / (claims tested).
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
    correction: str = "holm"
    comparison: str = "both"
    claims: tuple[str, ...] = ("all",)
    n_perm: int = 20000
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
        if self.n_perm < 100:
            raise ValueError(f"n_perm must be at least 100, got {self.n_perm}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {COMPARISONS}, got {self.comparison!r}")
        groups = ("all", *CLAIM_GROUPS)
        if not self.claims or any(c not in groups for c in self.claims):
            raise ValueError(f"claims must name 'all' or groups of {CLAIM_GROUPS}")

    @property
    def alpha(self) -> float:
        """The familywise error rate of a verdict table."""
        return round(1.0 - self.confidence, 12)

    @classmethod
    def from_plan(cls, plan: Plan) -> Options:
        """Options carrying ``plan``'s statistical settings, the others at their defaults."""
        return cls().with_plan(plan)

    def plan(self) -> Plan:
        """The analysis plan these options amount to."""
        return Plan(alpha=self.alpha, **{name: getattr(self, name) for name in _SHARED})

    def with_plan(self, plan: Plan) -> Options:
        """These options' drawing settings with ``plan``'s statistical ones."""
        shared = {name: getattr(plan, name) for name in _SHARED}
        return replace(self, confidence=round(1.0 - plan.alpha, 12), **shared)


#: The plan's fields that are options of the same name (its ``alpha`` is ``1 - confidence``).
_SHARED = (
    "claims", "comparison", "progress_by", "progress_quantile", "correction", "evidence",
    "require",
)  # fmt: skip
