"""Spearman, Pearson and Kendall correlations with percentile-bootstrap intervals.

Point estimates and p-values come from ``scipy.stats``. The bootstrap resamples trials with
replacement; a resample is held as a row of counts (how often each trial was drawn), so every
statistic is a weighted one over the original trials and all resamples are computed at once:
Pearson from weighted moments, Spearman from the resample's mid-ranks built by cumulative
counts, Kendall's tau-b from the quadratic forms ``cᵀ S c`` of sign matrices (Efron &
Tibshirani 1993 for the percentile interval; Kendall 1945 for tau-b).

Above ``Options.boot_max_n`` trials the intervals come from Fisher's z-transform instead
(:func:`fisher_interval`): at that size its normal approximation is as good as the
bootstrap's, and the bootstrap's cost (n per resample and pair; n² for Kendall) would
dominate the analysis of a large study.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis import aggregate
from analysis import columns as C
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema

METHODS = ("spearman", "pearson", "kendall")
COLUMNS = ["x", "y", "method", "n", "r", "p_value", "ci_low", "ci_high"]


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` draw counts of ``n_boot`` resamples of ``n`` items with replacement."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def weighted_pearson(counts: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pearson's r of each resample; ``u, v`` are ``(n,)`` or per-resample ``(B, n)``."""
    total = counts.sum(axis=1)
    mu = (counts * u).sum(axis=1) / total
    mv = (counts * v).sum(axis=1) / total
    du, dv = u - mu[:, None], v - mv[:, None]
    cov = (counts * du * dv).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt((counts * du * du).sum(axis=1) * (counts * dv * dv).sum(axis=1))


def resample_ranks(counts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(B, n)`` mid-rank each item would have inside each resample (ties averaged)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    group = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1
    sorted_counts = counts[:, order]
    if len(starts) == len(x):  # no ties: every item is its own group
        per_group = sorted_counts
    else:
        per_group = np.add.reduceat(sorted_counts, starts, axis=1)
    below = np.cumsum(per_group, axis=1) - per_group
    ranks = np.empty_like(counts)
    ranks[:, order] = (below + (per_group + 1.0) / 2.0)[:, group]
    return ranks


def kendall_tau_b(counts: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each resample, from the sign matrices of the original items."""
    sx = np.sign(x[:, None] - x[None, :]).astype(np.float32)
    sy = np.sign(y[:, None] - y[None, :]).astype(np.float32)
    c32 = counts.astype(np.float32)
    n = counts.sum(axis=1)
    pairs = n * (n - 1) / 2.0

    def quad(matrix: np.ndarray) -> np.ndarray:
        return np.einsum("bn,bn->b", (c32 @ matrix).astype(float), counts)

    score = quad(sx * sy) / 2.0
    ties_x = (quad((sx == 0).astype(np.float32)) - n) / 2.0
    ties_y = (quad((sy == 0).astype(np.float32)) - n) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return score / np.sqrt((pairs - ties_x) * (pairs - ties_y))


def point_estimate(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    """(r, p-value) from scipy.stats; NaN for fewer than 3 points or a constant input."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    fn = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fn[method](x, y)
    return float(res.statistic), float(res.pvalue)


def correlations(
    frame: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    methods: Sequence[str] = METHODS,
    options: Options | None = None,
) -> pd.DataFrame:
    """Correlation of each pair over the rows where both are finite, with bootstrap CIs.

    Args:
        frame: one row per trial.
        pairs: ``(x, y)`` column pairs.
        methods: any of ``spearman``, ``pearson``, ``kendall``.
        options: ``n_boot``, ``confidence``, ``seed``, ``kendall_max_n``, ``boot_max_n`` are
            used.

    Returns:
        Columns ``x, y, method, n, r, p_value, ci_low, ci_high``.
    """
    options = options or Options()
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown correlation methods {sorted(unknown)}; known: {METHODS}")
    cache: dict[bytes, dict] = {}
    rows = []
    for x, y in pairs:
        u, v = _floats(frame, x), _floats(frame, y)
        ok = np.isfinite(u) & np.isfinite(v)
        boot = _bootstrap(cache, ok, options)
        for method in methods:
            r, p = point_estimate(u[ok], v[ok], method)
            low, high = _interval(boot, method, x, y, u, v, ok, options)
            rows.append((x, y, method, int(ok.sum()), r, p, low, high))
    return pd.DataFrame(rows, columns=COLUMNS)


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _bootstrap(cache: dict, ok: np.ndarray, options: Options) -> dict:
    """Resample counts (and per-column ranks, filled lazily) shared by pairs with one mask."""
    key = np.packbits(ok).tobytes() + int(ok.size).to_bytes(8, "little")
    if key not in cache:
        rng = np.random.default_rng([options.seed, int(ok.sum())])
        n = int(ok.sum())
        counts = resample_counts(n, options.n_boot, rng) if 3 <= n <= options.boot_max_n else None
        cache[key] = {"counts": counts, "ranks": {}}
    return cache[key]


def _interval(boot, method, x, y, u, v, ok, options: Options) -> tuple[float, float]:
    counts = boot["counts"]
    n = int(ok.sum())
    if n > options.boot_max_n:
        r = point_estimate(u[ok], v[ok], method)[0]
        return fisher_interval(r, n, method, options.confidence)
    if counts is None or (method == "kendall" and counts.shape[1] > options.kendall_max_n):
        return float("nan"), float("nan")
    a, b = u[ok], v[ok]
    if method == "pearson":
        sample = weighted_pearson(counts, a, b)
    elif method == "spearman":
        ranks = boot["ranks"]
        for name, values in ((x, a), (y, b)):
            if name not in ranks:
                ranks[name] = resample_ranks(counts, values)
        sample = weighted_pearson(counts, ranks[x], ranks[y])
    else:
        sample = kendall_tau_b(counts, a, b)
    return percentile_interval(sample, options.confidence)


#: Standard error of Fisher's z = atanh(r) times sqrt(n − k), and k, per method: Pearson
#: (Fisher 1921); Spearman with Bonett & Wright's (2000) variance 1 + r²/2; Kendall's tau
#: with Fieller, Hartley & Pearson's (1957) 0.437.
_FISHER = {"pearson": (None, 3), "spearman": ("bonett-wright", 3), "kendall": (0.437, 4)}


def fisher_interval(r: float, n: int, method: str, confidence: float) -> tuple[float, float]:
    """``tanh(atanh(r) ± z · se)``, the normal-theory interval of a correlation on Fisher's
    z scale: ``se = 1/√(n−3)`` (Pearson), ``√((1 + r²/2)/(n−3))`` (Spearman),
    ``√(0.437/(n−4))`` (Kendall's tau); NaN where r is undefined or ±1."""
    if not np.isfinite(r) or abs(r) >= 1.0:
        return float("nan"), float("nan")
    form, k = _FISHER[method]
    if n <= k:
        return float("nan"), float("nan")
    var = 1.0 if form is None else (1.0 + r * r / 2.0 if form == "bonett-wright" else form)
    half = stats.norm.ppf(0.5 + confidence / 2.0) * np.sqrt(var / (n - k))
    z = np.arctanh(r)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def percentile_interval(sample: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval; NaN when over half the resamples are undefined (constant input)."""
    finite = sample[np.isfinite(sample)]
    if len(finite) < len(sample) / 2:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def correlation_matrix(table: pd.DataFrame, *, method: str = "spearman") -> pd.DataFrame:
    """A symmetric matrix of ``r`` from a :func:`correlations` table (diagonal 1)."""
    sub = table[table["method"] == method]
    names = list(dict.fromkeys([*sub["x"], *sub["y"]]))
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for row in sub.itertuples():
        out.loc[row.x, row.y] = out.loc[row.y, row.x] = row.r
    return out


def quantities(study: StudyResults) -> list[str]:
    """The measured final quantities: GC, geometric collapse, NC, target NC, few-shot, test acc."""
    fewshot = schema.fewshot_columns(study.metrics.columns)
    ordered = [*C.FINAL_QUANTITIES[:-1], *fewshot, C.FINAL_QUANTITIES[-1]]
    return [q for q in ordered if study.measured(q)]


def numeric_params(study: StudyResults) -> list[str]:
    """Swept hyperparameters with numeric values (a rank correlation needs an order)."""
    return [p for p in study.hyper_params if pd.api.types.is_numeric_dtype(study.metrics[p])]


def study_correlations(
    study: StudyResults, *, frame: pd.DataFrame | None = None, options: Options | None = None
) -> pd.DataFrame:
    """Correlations between final quantities, and of each with each swept hyperparameter.

    Args:
        frame: one row per trial (default: :func:`analysis.aggregate.final_rows`).
    """
    frame = aggregate.final_rows(study) if frame is None else frame
    qs, hyper = quantities(study), numeric_params(study)
    pairs = [(a, b) for i, a in enumerate(qs) for b in qs[i + 1 :]]
    pairs += [(h, q) for h in hyper for q in qs]
    return correlations(frame, pairs, options=options)
