"""The paper's claims (SPEC 1, 4) as ordering tests, each with a verdict and its numbers.

A claim says how a quantity moves with a swept hyperparameter (larger learning rate, smaller
batch, stronger L2, stronger GC regularisation ⇒ lower GC, geometric collapse and NC, lower
target NC, higher few-shot accuracy) or with another quantity (lower source GC ⇒ lower
target NC ⇒ higher few-shot accuracy). Two tests weigh it:

- ``extremes``: the difference of seed-means at the highest and lowest swept value, with a
  Welch t-interval;
- ``spearman``: the rank correlation over trials, with a percentile-bootstrap interval.

A test supports the claim when its interval lies strictly on the claimed side of zero and
contradicts it when it lies strictly on the other side; :class:`~analysis.options.Options`
says how tests combine into "reproduced", "not reproduced" or "inconclusive". Verdicts are
computed at the final epoch and at matched training progress (SPEC 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import aggregate
from analysis.correlate import correlations
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"

#: Sign of the change of GC, geometric collapse and NC as each key grows, and the arrow the
#: paper's statement uses (SPEC 1: larger lr, smaller batch, stronger L2 or GC penalty).
MECHANISMS = {
    "train.lr": (-1, "↑", "SPEC §4 E1–E5, E8–E9"),
    "train.batch_size": (+1, "↓", "SPEC §4 E1–E3, E8"),
    "train.l2": (-1, "↑", "SPEC §4 E1–E5, E8"),
    "train.gc_reg.alpha": (-1, "↑", "SPEC §4 E10"),
}
LOWER = ("gc", "geo_collapse", "nc_cdnv", "target_nc_cdnv")


@dataclass(frozen=True)
class Claim:
    """``y`` moves with sign ``sign`` as ``x`` grows (sign -1: ``y`` falls as ``x`` rises)."""

    x: str
    y: str
    sign: int
    text: str
    source: str


def claims_for(study: StudyResults) -> list[Claim]:
    """The claims this study can test: its swept mechanisms and measured quantities."""
    shots = [c for c in schema.fewshot_columns(study.metrics.columns) if study.measured(c)]
    out = []
    for param in study.hyper_params:
        if param not in MECHANISMS:
            continue
        sign, arrow, source = MECHANISMS[param]
        for y in [m for m in LOWER if study.measured(m)]:
            out.append(
                Claim(
                    param,
                    y,
                    sign,
                    f"{arrow} {schema.label(param)} ⇒ lower {schema.label(y)}",
                    source,
                )
            )
        for y in shots:
            out.append(
                Claim(
                    param,
                    y,
                    -sign,
                    f"{arrow} {schema.label(param)} ⇒ higher {schema.label(y)}",
                    source,
                )
            )
    return out + _chain_claims(study, shots)


def _chain_claims(study: StudyResults, shots: list[str]) -> list[Claim]:
    source = "SPEC §4 E8–E9"
    out = []
    if study.measured("gc") and study.measured("target_nc_cdnv"):
        out.append(Claim("gc", "target_nc_cdnv", +1, "lower source GC ⇒ lower target NC", source))
    for y in shots:
        if study.measured("target_nc_cdnv"):
            text = f"lower target NC ⇒ higher {schema.label(y)}"
            out.append(Claim("target_nc_cdnv", y, -1, text, source))
        if study.measured("gc"):
            out.append(Claim("gc", y, -1, f"lower source GC ⇒ higher {schema.label(y)}", source))
    return out


def welch_interval(
    low: np.ndarray, high: np.ndarray, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """``mean(high) - mean(low)`` with its Welch–Satterthwaite t-interval."""
    na, nb = len(low), len(high)
    diff = float(np.mean(high) - np.mean(low))
    va, vb = np.var(low, ddof=1) / na, np.var(high, ddof=1) / nb
    if va + vb == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df) * np.sqrt(va + vb))
    return diff, diff - half, diff + half


def side(low: float, high: float, sign: int) -> int | None:
    """+1 if the interval lies strictly on the claimed side of 0, -1 if on the other, else 0."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    if low > 0 or high < 0:
        return 1 if np.sign(low if low > 0 else high) == sign else -1
    return 0


def combine(sides: list[int | None], *, require: str = "all") -> tuple[str, str]:
    """A verdict and its reason from the tests' sides (None: a test that could not run)."""
    ran = [s for s in sides if s is not None]
    if not ran:
        return INCONCLUSIVE, "too few trials for any test"
    if 1 in ran and -1 in ran:
        return INCONCLUSIVE, "tests point in opposite directions"
    pick = all if require == "all" else any
    if pick(s == 1 for s in ran):
        return REPRODUCED, "interval on the claimed side of 0"
    if pick(s == -1 for s in ran):
        return NOT_REPRODUCED, "interval on the opposite side of 0"
    return INCONCLUSIVE, "an interval includes 0"


def verdict_table(study: StudyResults, *, options: Options | None = None) -> pd.DataFrame:
    """Every testable claim at the final epoch and at matched training progress.

    Returns:
        One row per (claim, comparison) with the numbers behind each verdict: the extremes
        compared, their seed-means and counts, the difference with its interval, the relative
        change, Spearman's rho with its interval, the trials used, and the verdict.
    """
    options = options or Options()
    claims = claims_for(study)
    if not claims:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    frames = comparison_frames(study, claims, options=options)
    rows = []
    for at, frame in frames.items():
        rows += _evaluate(frame, claims, study.hyper_params, at, options)
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


VERDICT_COLUMNS = [
    "claim", "x", "y", "at", "n", "slice", "x_low", "x_high", "n_low", "n_high", "mean_low",
    "mean_high", "diff", "diff_low", "diff_high", "change_pct", "rho", "rho_low", "rho_high",
    "verdict", "reason", "source",
]  # fmt: skip


def comparison_frames(study: StudyResults, claims: list[Claim], *, options: Options) -> dict:
    """Per-trial frames to compare on: the final epoch and the matched progress level."""
    quantities = sorted({c.y for c in claims} | {c.x for c in claims if schema.is_metric_name(c.x)})
    finals = aggregate.final_rows(study)
    by = options.progress_by
    if not study.measured(by):
        return {"final epoch": finals}
    matched, level = aggregate.matched_progress(
        study, quantities, by=by, quantile=options.progress_quantile
    )
    op = "≤" if by == "train_loss" else "≥"
    return {"final epoch": finals, f"{schema.label(by)} {op} {level:.3g}": matched}


def _evaluate(frame, claims, hyper, at: str, options: Options) -> list[list]:
    slices: dict[str, tuple[pd.DataFrame, str]] = {}
    for claim in claims:
        if claim.x in hyper and claim.x not in slices:
            others = [p for p in hyper if p != claim.x]
            slices[claim.x] = aggregate.sweep_slice(frame, claim.x, others)
    rhos = _rank_evidence(frame, claims, slices, options)
    rows = []
    for claim in claims:
        sub, note = slices.get(claim.x, (frame, "all trials"))
        rows.append(_row(claim, sub, note, at, rhos[(claim.x, claim.y)], options))
    return rows


def _rank_evidence(frame, claims, slices, options: Options) -> dict:
    """Spearman rows per claim, one bootstrap per distinct trial subset."""
    groups: dict[tuple, tuple[pd.DataFrame, list]] = {}
    for claim in claims:
        sub = slices.get(claim.x, (frame, ""))[0]
        key = tuple(sub["trial_id"])
        groups.setdefault(key, (sub, []))[1].append((claim.x, claim.y))
    out = {}
    for sub, pairs in groups.values():
        table = correlations(sub, pairs, methods=("spearman",), options=options)
        out |= {(r.x, r.y): r for r in table.itertuples()}
    return out


def _row(claim: Claim, sub: pd.DataFrame, note: str, at: str, rho, options: Options) -> list:
    ext = None if schema.is_metric_name(claim.x) else _extremes(claim, sub, options)
    tests: dict[str, int | None] = {}
    if "extremes" in options.evidence and not schema.is_metric_name(claim.x):
        tests["extremes"] = (
            None if ext is None else side(ext["diff_low"], ext["diff_high"], claim.sign)
        )
    if "spearman" in options.evidence:
        rank_ok = rho.n >= options.min_trials
        tests["spearman"] = side(rho.ci_low, rho.ci_high, claim.sign) if rank_ok else None
    verdict, _ = combine(list(tests.values()), require=options.require)
    reason = "; ".join(f"{name}: {_OUTCOME[s]}" for name, s in tests.items())
    ext = ext or dict.fromkeys(_EXTREME_KEYS, np.nan)
    return [
        claim.text, claim.x, claim.y, at, int(rho.n), note, *[ext[k] for k in _EXTREME_KEYS],
        rho.r, rho.ci_low, rho.ci_high, verdict, reason, claim.source,
    ]  # fmt: skip


_OUTCOME = {1: "supports", -1: "contradicts", 0: "interval includes 0", None: "too few trials"}

_EXTREME_KEYS = (
    "x_low", "x_high", "n_low", "n_high", "mean_low", "mean_high", "diff", "diff_low",
    "diff_high", "change_pct",
)  # fmt: skip


def _extremes(claim: Claim, sub: pd.DataFrame, options: Options) -> dict | None:
    """Seed-means of ``y`` at the lowest and highest ``x``; None with too few trials there."""
    data = sub[[claim.x, claim.y]].dropna()
    if data[claim.x].nunique() < 2:
        return None
    lo, hi = data[claim.x].min(), data[claim.x].max()
    a = data.loc[data[claim.x] == lo, claim.y].to_numpy(dtype=float)
    b = data.loc[data[claim.x] == hi, claim.y].to_numpy(dtype=float)
    if min(len(a), len(b)) < max(2, options.min_per_group):
        return None
    diff, d_low, d_high = welch_interval(a, b, confidence=options.confidence)
    change = 100.0 * diff / abs(a.mean()) if a.mean() != 0 else np.nan
    values = (lo, hi, len(a), len(b), a.mean(), b.mean(), diff, d_low, d_high, change)
    return dict(zip(_EXTREME_KEYS, values, strict=True))
