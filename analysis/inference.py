"""Tests, p-values, familywise adjustment and intervals that respect a quantity's range.

A quantity's range (``studyfiles.schema.scale_of``) and its values decide how it is compared
(:func:`interval_scale`):

- ``log``: a positive quantity (GC, geometric collapse, NC, losses) whose values are all
  > 0. A group's centre is its geometric mean, its interval the t-interval of the mean log,
  exponentiated; two groups differ by a ratio, shown as a percent change ``100 (ratio − 1)``,
  which cannot go below −100 %.
- ``nonnegative``: a positive quantity holding zeros (a loss of exactly 0 in float32, a
  class GC of 0): the geometric mean would be 0, so the linear scale (said in the output:
  the centre is the mean). A group's interval is the t-interval of the mean cut at 0; two
  groups differ by the ratio of their means with Fieller's interval (Fieller 1954) cut at
  0, so the percent change stays ≥ −100 %. Fieller's interval is the set of ratios ρ that
  Welch's test of ``mean(high) − ρ mean(low) = 0`` does not reject: it holds 0 % exactly
  when Welch's p-value is at least ``1 − confidence``, and it has no upper bound (given as
  NaN, like any missing bound) when the low group's mean is not clearly above 0.
- ``unit`` (accuracies, error rates): on the linear scale, every interval cut to [0, 1].
- ``real``: on the linear scale. A positive quantity with a negative value (a data error)
  is warned about and treated as ``real``: its intervals are not cut.

Cutting an interval of a mean to the range the mean cannot leave (its intersection with the
parameter space) keeps at least its coverage.

P-values are two-sided: Welch's t-test for a difference of means (Welch 1947; on the log
scale for ``log``), a permutation test of Spearman's rho (trials exchangeable under "no
trend"; Good 2005, ch. 3). Familywise error over a table's claims is held by Holm's
step-down method (Holm 1979), which controls it at α under any dependence between the
tests; Bonferroni and no correction are the alternatives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from studyfiles.schema import scale_of

CORRECTIONS = ("holm", "bonferroni", "none")
#: The ways a quantity is compared (module docstring), each with the range of its intervals
#: (a linear interval is cut to it).
LIMITS = {
    "log": (0.0, np.inf),
    "nonnegative": (0.0, np.inf),
    "unit": (0.0, 1.0),
    "real": (-np.inf, np.inf),
}


def interval_scale(column: str, *groups: np.ndarray) -> str:
    """How ``column`` is compared given its values in ``groups`` (NaNs aside): ``log``,
    ``nonnegative``, ``unit`` or ``real`` (the keys of :data:`LIMITS`), as the module
    docstring says. Warns about a positive quantity holding a negative value."""
    scale = scale_of(column)
    if scale != "positive":
        return scale
    finite = [g[np.isfinite(g)] for g in map(np.asarray, groups)]
    if all(np.all(g > 0) for g in finite):
        return "log"
    if all(np.all(g >= 0) for g in finite):
        return "nonnegative"
    warnings.warn(
        f"{column} holds negative values, which a positive quantity cannot take (a data "
        "error?); its intervals are on the linear scale and not cut to a range",
        stacklevel=2,
    )
    return "real"


def centre_interval(
    values: np.ndarray, column: str, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """A group's centre with its t-interval, on the column's scale (module docstring).

    Returns:
        ``(centre, low, high)``: the geometric mean and its interval on the log scale, the
        mean and its interval cut to the column's range otherwise; NaN bounds with fewer
        than two values.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    scale = interval_scale(column, v)
    w = np.log(v) if scale == "log" else v
    mean = float(w.mean())
    if len(w) < 2:
        low = high = float("nan")
    else:
        half = float(stats.t.ppf(0.5 + confidence / 2.0, len(w) - 1) * w.std(ddof=1))
        half /= np.sqrt(len(w))
        low, high = mean - half, mean + half
    if scale == "log":
        return float(np.exp(mean)), float(np.exp(low)), float(np.exp(high))
    return tuple(float(x) for x in np.clip([mean, low, high], *LIMITS[scale]))


@dataclass(frozen=True)
class Difference:
    """Two groups compared: ``high`` against ``low`` on the column's scale.

    Attributes:
        centre_low, centre_high: each group's centre (geometric mean on the log scale).
        diff, diff_low, diff_high: ``high − low`` in the column's units with its interval
            (for a ratio, on the ``log`` and ``nonnegative`` scales: ``centre_low (ratio −
            1)``, its interval mapped from the ratio's).
        change, change_low, change_high: the percent change from ``low`` with its interval;
            ``100 (ratio − 1)`` for a ratio, never below −100 %; NaN where ``low``'s centre
            is 0, and an upper bound NaN where the ratio's interval has none.
        p: Welch's two-sided p-value (on the log scale for ``log``).
        scale: the comparison's scale (:func:`interval_scale`).
    """

    centre_low: float
    centre_high: float
    diff: float
    diff_low: float
    diff_high: float
    change: float
    change_low: float
    change_high: float
    p: float
    scale: str

    @property
    def log(self) -> bool:
        """Whether the comparison was made on the log scale."""
        return self.scale == "log"


def compare_groups(
    low: np.ndarray, high: np.ndarray, column: str, *, confidence: float = 0.95
) -> Difference:
    """``high`` against ``low`` with Welch's test on the column's scale (module docstring)."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    scale = interval_scale(column, a, b)
    if scale == "log":
        d, d_low, d_high, p = welch(np.log(a), np.log(b), confidence=confidence)
        ca, cb = float(np.exp(np.log(a).mean())), float(np.exp(np.log(b).mean()))
        return _as_ratio(ca, cb, np.exp([d, d_low, d_high]), p, scale)
    d, d_low, d_high, p = welch(a, b, confidence=confidence)
    ca, cb = float(a.mean()), float(b.mean())
    if scale == "nonnegative" and ca > 0:
        ratio_low, ratio_high = fieller(a, b, confidence=confidence)
        return _as_ratio(ca, cb, np.array([cb / ca, ratio_low, ratio_high]), p, scale)
    if scale == "unit":  # the high group's mean stays in [0, 1]
        d_low, d_high = max(d_low, -ca), min(d_high, 1.0 - ca)
    base = abs(ca) if ca != 0 else np.nan
    change = [100.0 * v / base for v in (d, d_low, d_high)]
    return Difference(ca, cb, d, d_low, d_high, *change, p, scale)


def _as_ratio(ca: float, cb: float, ratio: np.ndarray, p: float, scale: str) -> Difference:
    """A :class:`Difference` from ``(ratio, low, high)`` of the centres; an infinite bound
    (no bound) becomes NaN."""
    ratio = np.where(np.isfinite(ratio), ratio, np.nan)
    change = 100.0 * (ratio - 1.0)
    diffs = ca * ratio - ca  # the ratio's interval in the column's units
    return Difference(ca, cb, *diffs, *change, p, scale)


def welch(
    low: np.ndarray, high: np.ndarray, *, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """``mean(high) − mean(low)``, its Welch–Satterthwaite t-interval and two-sided p-value.

    Two constant groups give a zero-width interval, and p = 0 when their means differ
    (p = 1 when they are equal).
    """
    diff = float(np.mean(high) - np.mean(low))
    va, vb, df = _squared_errors(low, high)
    if va + vb == 0:
        return diff, diff, diff, (0.0 if diff != 0 else 1.0)
    se = float(np.sqrt(va + vb))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df) * se)
    p = float(2.0 * stats.t.sf(abs(diff) / se, df))
    return diff, diff - half, diff + half, p


def fieller(low: np.ndarray, high: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float]:
    """Fieller's interval (Fieller 1954) for ``mean(high) / mean(low)`` of two independent
    groups of a quantity that cannot be negative, cut at 0.

    The interval is every ratio ρ ≥ 0 with ``(m_b − ρ m_a)² ≤ q² (v_b + ρ² v_a)``: the
    ratios that Welch's test of ``mean(high) − ρ mean(low) = 0`` does not reject (``m`` the
    means, ``v`` their squared standard errors, ``q`` the t-quantile at the degrees of
    freedom of :func:`welch`, so ρ = 1 is inside exactly when :func:`welch` does not
    reject). It has no upper bound (inf) when ``mean(low)`` is not clearly above 0
    (``m_a² ≤ q² v_a``).

    Returns:
        ``(low, high)`` of the ratio.
    """
    ma, mb = float(np.mean(low)), float(np.mean(high))
    va, vb, df = _squared_errors(low, high)
    q = float(stats.t.ppf(0.5 + confidence / 2.0, df)) if va + vb > 0 else 0.0
    a, b, c = ma * ma - q * q * va, ma * mb, mb * mb - q * q * vb  # a ρ² − 2 b ρ + c ≤ 0
    root = float(np.sqrt(max(b * b - a * c, 0.0)))
    if a > 0:
        return max((b - root) / a, 0.0), (b + root) / a
    # every large ρ is inside; the least ρ ≥ 0 inside: 0, or the root c / (b + root)
    return (0.0 if c <= 0 else c / (b + root)), float("inf")


def _squared_errors(low: np.ndarray, high: np.ndarray) -> tuple[float, float, float]:
    """Each group's squared standard error of the mean, and the Welch–Satterthwaite degrees
    of freedom of their difference (NaN for two constant groups)."""
    na, nb = len(low), len(high)
    va, vb = float(np.var(low, ddof=1) / na), float(np.var(high, ddof=1) / nb)
    if va + vb == 0:
        return va, vb, float("nan")
    return va, vb, (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))


def spearman_permutation_p(
    x: np.ndarray, y: np.ndarray, *, n_perm: int, rng: np.random.Generator
) -> float:
    """Two-sided permutation p-value of Spearman's rho: the share of ``n_perm`` random
    pairings of ``x`` with ``y`` (plus the observed one) whose |rho| is at least the
    observed |rho| (Phipson & Smyth 2010: never 0). NaN for fewer than 3 points or a
    constant input.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    rx = (rx - rx.mean()) / np.linalg.norm(rx - rx.mean())
    ry = (ry - ry.mean()) / np.linalg.norm(ry - ry.mean())
    observed = abs(float(rx @ ry)) * (1.0 - 1e-12)  # ties of |rho| count as extreme
    extreme = 0
    chunk = max(1, min(n_perm, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_perm:
        m = min(chunk, n_perm - done)
        perms = rng.permuted(np.broadcast_to(ry, (m, n)), axis=1)
        extreme += int(np.count_nonzero(np.abs(perms @ rx) >= observed))
        done += m
    return (extreme + 1.0) / (n_perm + 1.0)


def adjust(p: np.ndarray, method: str = "holm") -> np.ndarray:
    """Familywise-adjusted p-values; NaN entries are not in the family and stay NaN.

    ``holm``: step-down, ``p_(i) · (m − i + 1)`` made monotone (Holm 1979); ``bonferroni``:
    ``p · m``; ``none``: unchanged. Adjusted values are capped at 1.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; known: {', '.join(CORRECTIONS)}")
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    if method == "none":
        adj = q
    elif method == "bonferroni":
        adj = q * m
    else:
        order = np.argsort(q, kind="stable")
        stepped = q[order] * (m - np.arange(m))
        adj = np.empty(m)
        adj[order] = np.maximum.accumulate(stepped)
    out[ok] = np.minimum(adj, 1.0)
    return out
