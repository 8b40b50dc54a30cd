"""Tests, p-values, familywise adjustment and intervals that respect a quantity's range.

A quantity's range (``studyfiles.schema.scale_of``) decides how it is compared:

- ``positive`` (GC, geometric collapse, NC, losses): on the log scale. A group's centre is
  its geometric mean, its interval the t-interval of the mean log, exponentiated; two groups
  differ by a ratio, shown as a percent change ``100 (ratio − 1)``, which cannot go below
  −100 %. A group holding a value ≤ 0 falls back to the linear scale (said in the output).
- ``unit`` (accuracies, error rates): on the linear scale, every interval cut to [0, 1]
  (an interval intersected with the parameter space keeps at least its coverage).
- ``real``: on the linear scale.

P-values are two-sided: Welch's t-test for a difference of means (Welch 1947), a
permutation test of Spearman's rho (trials exchangeable under "no trend"; Good 2005, ch. 3).
Familywise error over a table's claims is held by Holm's step-down method (Holm 1979), which
controls it at α under any dependence between the tests; Bonferroni and no correction are
the alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from studyfiles.schema import scale_of

CORRECTIONS = ("holm", "bonferroni", "none")


def log_scale(column: str, *groups: np.ndarray) -> bool:
    """Whether ``column`` is compared on the log scale: a positive quantity whose values in
    ``groups`` are all > 0 (NaNs aside)."""
    if scale_of(column) != "positive":
        return False
    return all(np.all(g[np.isfinite(g)] > 0) for g in groups)


def centre_interval(
    values: np.ndarray, column: str, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """A group's centre with its t-interval, on the column's scale (module docstring).

    Returns:
        ``(centre, low, high)``: the geometric mean and its interval for a positive
        quantity, the mean and its interval (cut to [0, 1] for a fraction) otherwise; NaN
        bounds with fewer than two values.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    log = log_scale(column, v)
    w = np.log(v) if log else v
    mean = float(w.mean())
    if len(w) < 2:
        low = high = float("nan")
    else:
        half = float(stats.t.ppf(0.5 + confidence / 2.0, len(w) - 1) * w.std(ddof=1))
        half /= np.sqrt(len(w))
        low, high = mean - half, mean + half
    if log:
        return float(np.exp(mean)), float(np.exp(low)), float(np.exp(high))
    return _clip(column, mean, low, high)


def _clip(column: str, *values: float) -> tuple[float, ...]:
    if scale_of(column) == "unit":
        return tuple(float(np.clip(v, 0.0, 1.0)) if np.isfinite(v) else v for v in values)
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Difference:
    """Two groups compared: ``high`` against ``low`` on the column's scale.

    Attributes:
        centre_low, centre_high: each group's centre (geometric mean on the log scale).
        diff, diff_low, diff_high: ``high − low`` in the column's units with its interval
            (on the log scale: the difference of the centres, its interval mapped from the
            ratio's).
        change, change_low, change_high: the percent change from ``low`` with its interval;
            on the log scale ``100 (ratio − 1)``, never below −100 %.
        p: Welch's two-sided p-value (on the log scale for a positive quantity).
        log: whether the comparison was made on the log scale.
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
    log: bool


def compare_groups(
    low: np.ndarray, high: np.ndarray, column: str, *, confidence: float = 0.95
) -> Difference:
    """``high`` against ``low`` with Welch's test on the column's scale."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    log = log_scale(column, a, b)
    wa, wb = (np.log(a), np.log(b)) if log else (a, b)
    d, d_low, d_high, p = welch(wa, wb, confidence=confidence)
    if log:
        ca, cb = float(np.exp(wa.mean())), float(np.exp(wb.mean()))
        ratio = np.exp([d, d_low, d_high])
        change = 100.0 * (ratio - 1.0)
        diffs = ca * ratio - ca  # the ratio's interval in the column's units
        return Difference(ca, cb, *diffs, *change, p, True)
    ca, cb = float(a.mean()), float(b.mean())
    if scale_of(column) == "unit":  # the high group's mean stays in [0, 1]
        d_low, d_high = max(d_low, -ca), min(d_high, 1.0 - ca)
    base = abs(ca) if ca != 0 else np.nan
    change = [100.0 * v / base for v in (d, d_low, d_high)]
    return Difference(ca, cb, d, d_low, d_high, *change, p, False)


def welch(
    low: np.ndarray, high: np.ndarray, *, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """``mean(high) − mean(low)``, its Welch–Satterthwaite t-interval and two-sided p-value.

    Two constant groups give a zero-width interval, and p = 0 when their means differ
    (p = 1 when they are equal).
    """
    na, nb = len(low), len(high)
    diff = float(np.mean(high) - np.mean(low))
    va, vb = np.var(low, ddof=1) / na, np.var(high, ddof=1) / nb
    if va + vb == 0:
        return diff, diff, diff, (0.0 if diff != 0 else 1.0)
    se = float(np.sqrt(va + vb))
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df) * se)
    p = float(2.0 * stats.t.sf(abs(diff) / se, df))
    return diff, diff - half, diff + half, p


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
