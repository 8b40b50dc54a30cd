"""Every threshold the analysis uses, with its default and the reason for it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from studyfiles.plan import CLAIM_GROUPS, COMPARISONS, CORRECTIONS, Plan, alpha_problem


@dataclass(frozen=True)
class Options:
    """Statistical and drawing settings of an analysis.

    The statistical ones (``alpha`` and ``confidence`` = 1 − α, ``correction``, ``comparison``,
    ``claims``, ``evidence``, ``require``, ``progress_by``, ``progress_quantile``) are a
    study's analysis plan (:class:`studyfiles.plan.Plan`): :meth:`from_plan` makes them
    from one, :meth:`plan` gives the plan they amount to, and results computed with a plan
    other than the study's are labelled exploratory.

    Attributes:
        confidence: level of every confidence interval (t-intervals of means, Welch intervals
            of differences, percentile bootstrap intervals of correlations), and 1 − α of
            the verdicts' familywise error rate. Default 0.95.
        alpha: the verdicts' familywise error rate, in the plan's range
            (``studyfiles.plan.ALPHA_MIN`` ≤ α < ``ALPHA_MAX``). Give either it or
            ``confidence`` (or both, agreeing): the other follows. Held exactly as given
            (a plan's 0.05/3 stays 0.05/3); from ``confidence`` it is 1 − confidence to
            12 decimals (0.05, not 0.050000000000000044).
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
        require: ``"all"``: a claim's p-value is the largest of its tests' (each must
            reject); ``"any"``: the smallest times their number (Bonferroni between them).
            Either way the tests' estimates must not point different ways (then the claim
            is "inconclusive"), and the verdict goes the way they point.
        min_per_group: fewest trials at each extreme for the extremes test (Welch needs 2).
        min_trials: fewest trials for a rank correlation to count as evidence.
        progress_by: the training-progress measure for matched comparisons, ``"train_loss"``
            or ``"train_acc"`` (SPEC 5).
        progress_quantile: the matched level is the one this fraction of finished trials
            reached (1.0: every trial; a lower value drops the least-trained ones).
        min_progress: a matched level is "not applicable" when more than half the trials
            that reached it had come less than this fraction of the way from their first
            evaluation to their best (in the progress measure's own units) when they did:
            it is where they start, not a level of training. 0.2: the committed studies'
            levels lie 0.8 of the way or beyond for every trial; a level set by trials that
            barely learnt lies 0.01–0.12 of the way for the others.
        kendall_max_n: above this many trials Kendall's tau gets no bootstrap interval (its
            bootstrap costs n² per resample); the point estimate is still given.
        boot_max_n: above this many trials a correlation's interval is Fisher's z-interval
            (analysis.correlate.fisher_interval) instead of the bootstrap's: at that size
            they agree, and the bootstrap costs n per resample and pair.
        n_levels: points of the training-progress axis of progress-aligned curves.
        max_points: most points drawn per line or scatter trace in a figure; statistics are
            computed on every row, only the drawing is thinned.
    """

    confidence: float | None = None  # 0.95 unless alpha is given
    alpha: float | None = None  # 1 - confidence unless given
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
    min_progress: float = 0.2
    kendall_max_n: int = 500
    boot_max_n: int = 2000
    n_levels: int = 40
    max_points: int = 2000

    def __post_init__(self) -> None:
        self._settle_alpha()
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
        if not 0.0 <= self.min_progress < 1.0:
            raise ValueError(f"min_progress must be in [0, 1), got {self.min_progress}")
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

    def _settle_alpha(self) -> None:
        """Fill in whichever of ``alpha`` and ``confidence`` is missing; check they agree."""
        alpha, confidence = self.alpha, self.confidence
        if alpha is None:
            confidence = 0.95 if confidence is None else float(confidence)
            if not 0.0 < confidence < 1.0:
                raise ValueError(f"confidence must be in (0, 1), got {confidence}")
            alpha = round(1.0 - confidence, 12)
        elif confidence is None:
            confidence = 1.0 - alpha
        elif not math.isclose(alpha, 1.0 - confidence, rel_tol=0.0, abs_tol=1e-12):
            raise ValueError(f"alpha {alpha} and confidence {confidence} disagree")
        problem = alpha_problem(alpha)
        if problem:
            raise ValueError(f"alpha: {problem}")
        object.__setattr__(self, "alpha", float(alpha))
        object.__setattr__(self, "confidence", float(confidence))

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
        return replace(self, alpha=plan.alpha, confidence=1.0 - plan.alpha, **shared)


#: The plan's fields that are options of the same name (its ``alpha`` is ``1 - confidence``).
_SHARED = (
    "claims", "comparison", "progress_by", "progress_quantile", "correction", "evidence",
    "require",
)  # fmt: skip
