"""The paper's claims (SPEC 1, 4) as hypothesis tests, each with a verdict and its numbers.

A claim says how a quantity moves with a swept hyperparameter (larger learning rate, smaller
batch, stronger L2, stronger GC regularisation ⇒ lower GC, geometric collapse and NC, lower
target NC, higher few-shot accuracy) or with another quantity (lower source GC ⇒ lower
target NC ⇒ higher few-shot accuracy). Two tests weigh it (analysis.inference):

- ``extremes``: the seed-groups at the two extreme swept values, in the claim's direction
  (from the lowest lr to the highest; from the largest batch to the smallest), compared on
  the quantity's scale (a ratio of geometric means for a positive quantity) by Welch's
  t-test;
- ``spearman``: the rank correlation over trials, its p-value by permutation, its interval
  by the percentile bootstrap.

A claim's p-value combines its tests (``require = "all"``: the largest, an
intersection-union test; ``"any"``: the smallest times their number), and only when their
estimates do not point different ways. The claims a table tests at its planned comparisons
are one family: their p-values are adjusted for multiplicity (Holm by default) and a claim
is "reproduced" when its adjusted p-value is ≤ α and its estimates point the claimed way,
"not reproduced" when ≤ α and they point the other way, otherwise "inconclusive". A
comparison outside the plan (``comparison = "final"`` or ``"matched"``) is a second,
*secondary* family. A study that measures layers (``metrics.layers``) adds the mechanism
claims on GC, geometric collapse and NC at each layer but the embedding (group ``depth``,
:mod:`analysis.depth`): the same tests on that layer's values, in the same family. Rows
where no test could run are "not tested" (no data, or too few trials); a matched-progress
level that most trials reached near where they started (:func:`near_start`) cannot match
anything: its rows are "not applicable". Neither joins a family. Each row's ``role`` says
which family it is in and whether the results are the plan's own (``primary``,
``secondary``) or computed with options that depart from it (``exploratory``,
``exploratory (secondary)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import special, stats

from analysis import aggregate, depth
from analysis.correlate import correlations
from analysis.inference import adjust, compare_groups, spearman_permutation_p
from analysis.load import StudyResults
from analysis.options import Options
from studyfiles import schema
from studyfiles.plan import Plan

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_APPLICABLE, NOT_TESTED = "not applicable", "not tested"
#: Verdicts of rows that join no family: no test was made.
UNTESTED = (NOT_APPLICABLE, NOT_TESTED)
PRIMARY, SECONDARY, EXPLORATORY = "primary", "secondary", "exploratory"
#: The roles of the rows in the family a table's verdicts rest on (its planned comparisons):
#: the plan's own, or computed with options that depart from the plan.
MAIN_ROLES = (PRIMARY, EXPLORATORY)
FINAL = "final epoch"

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
    """``y`` moves with sign ``sign`` as ``x`` grows (sign -1: ``y`` falls as ``x`` rises);
    ``y`` of the embedding (the metrics), or of the measured layer ``layer``."""

    x: str
    y: str
    sign: int
    text: str
    source: str
    layer: int | None = None
    layer_name: str = ""

    @property
    def downward(self) -> bool:
        """Whether the claim reads along a falling ``x`` (``↓ batch_size``): its extremes are
        then compared from the largest value to the smallest."""
        return self.x in MECHANISMS and MECHANISMS[self.x][1] == "↓"

    @property
    def group(self) -> str:
        """Its claim group (``studyfiles.plan.CLAIM_GROUPS``): the swept key, ``chain``,
        or ``depth`` for a claim at a layer."""
        if self.layer is not None:
            return "depth"
        return self.x if self.x in MECHANISMS else "chain"


def claims_for(study: StudyResults, options: Options | None = None) -> list[Claim]:
    """The claims this study can test (its swept mechanisms and measured quantities, and
    its measured layers), of the groups ``options.claims`` names (default: the study's
    plan)."""
    options = options or Options.from_plan(study.plan)
    wanted = options.plan()
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
    claims = [c for c in out + _chain_claims(study, shots) if wanted.wants(c.group)]
    return claims + _layer_claims(study, out, wanted)


def _layer_claims(study: StudyResults, claims: list[Claim], wanted: Plan) -> list[Claim]:
    """The claims on GC, geometric collapse and NC of each wanted mechanism at each measured
    layer but the embedding (its claims are those of the metrics), claim by claim, layers
    from the input; none without a layers table or where the plan leaves out ``depth``."""
    table = study.layers
    if table is None or not wanted.wants("depth"):
        return []
    return [
        replace(
            claim,
            text=f"{claim.text} at {layer.name}",
            source=f"{claim.source}; SPEC Across depth",
            layer=layer.index,
            layer_name=layer.name,
        )
        for claim in claims
        if claim.y in depth.CLAIMED and wanted.wants(claim.x) and table.measured(claim.y)
        for layer in table.inner()
    ]


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


def verdict_table(study: StudyResults, *, options: Options | None = None) -> pd.DataFrame:
    """Every testable claim at the final epoch and at matched training progress.

    Args:
        study: the study.
        options: the analysis options (default: the study's plan). Options that depart
            from the plan make every row's ``role`` exploratory.

    Returns:
        One row per (claim, comparison) with the numbers behind each verdict: the extremes
        compared, their centres and counts, the difference and the percent change with
        their intervals, Spearman's rho with its interval, each test's p-value, the claim's
        raw and familywise-adjusted p-values, its family (``role`` and ``family`` size: the
        tests that ran), the verdict on the raw p-value and the verdict (on the adjusted one).
    """
    options = options or Options.from_plan(study.plan)
    claims = claims_for(study, options)
    if not claims:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    main, other = roles(study, options)
    rows = []
    for comparison in comparisons(study, claims, options=options):
        role = main if comparison.kind in _planned(options) else other
        if comparison.not_applicable:
            rows += [_not_applicable(c, comparison, role) for c in claims]
        else:
            rows += _evaluate(comparison, claims, study.hyper_params, role, options)
    layered = any(c.layer is not None for c in claims)
    table = pd.DataFrame(rows, columns=VERDICT_COLUMNS + (LAYER_COLUMNS if layered else []))
    return _decide(table, options)


VERDICT_COLUMNS = [
    "claim", "group", "x", "y", "at", "role", "n", "slice", "x_from", "x_to", "n_from",
    "n_to", "mean_from", "mean_to", "diff", "diff_low", "diff_high", "change_pct",
    "change_low", "change_high", "scale", "rho", "rho_low", "rho_high", "p_extremes",
    "p_spearman", "direction", "p", "p_floor", "p_adj", "family", "verdict_raw", "verdict",
    "reason", "source",
]  # fmt: skip
#: The columns a table with claims across depth adds: the layer's depth and name (null for
#: the claims on the embedding).
LAYER_COLUMNS = ["layer", "layer_name"]


def _planned(options: Options) -> tuple[str, ...]:
    return ("final", "matched") if options.comparison == "both" else (options.comparison,)


def roles(study: StudyResults, options: Options) -> tuple[str, str]:
    """The ``role`` of the rows at the planned comparisons and of the others: ``primary``
    and ``secondary`` under the study's own plan; ``exploratory`` and ``exploratory
    (secondary)`` when ``options`` depart from it (``Plan.differences``)."""
    if study.plan.differences(options.plan()):
        return EXPLORATORY, f"{EXPLORATORY} ({SECONDARY})"
    return PRIMARY, SECONDARY


def in_main_family(table: pd.DataFrame) -> pd.Series:
    """Which rows are at the planned comparisons: the family the verdicts rest on (primary,
    or exploratory under options that depart from the plan)."""
    return table["role"].isin(MAIN_ROLES)


@dataclass
class Comparison:
    """Trials lined up at one point: ``kind`` ``final`` or ``matched``, the label shown in
    the ``at`` column, one row per trial, why it cannot be used (or ""), and for claims
    across depth each layer's values of the same trials, at the same point, by layer."""

    kind: str
    at: str
    frame: pd.DataFrame
    not_applicable: str = ""
    layers: dict[int, pd.DataFrame] = field(default_factory=dict)


def comparisons(study: StudyResults, claims: list[Claim], *, options: Options) -> list[Comparison]:
    """The final epoch, and the matched progress level when the study measured progress."""
    on_metrics = [c for c in claims if c.layer is None]
    quantities = sorted(
        {c.y for c in on_metrics} | {c.x for c in on_metrics if schema.is_metric_name(c.x)}
    )
    finals = aggregate.final_rows(study)
    at_depth = _at_depth(study, claims, options)
    out = [Comparison("final", FINAL, finals, layers=at_depth.get("final", {}))]
    by = options.progress_by
    if not study.measured(by):
        return out
    matched, level = aggregate.matched_progress(
        study, quantities, by=by, quantile=options.progress_quantile
    )
    at = aggregate.progress_label(by, level)
    why = _unmatched(study, matched, at, level=level, options=options)
    return [*out, Comparison("matched", at, matched, why, layers=at_depth.get("matched", {}))]


def _at_depth(
    study: StudyResults, claims: list[Claim], options: Options
) -> dict[str, dict[int, pd.DataFrame]]:
    """Per comparison (``final``, ``matched``), each layer's values of the finished trials
    (:func:`analysis.depth.compared`), where claims across depth are tested."""
    if all(c.layer is None for c in claims):
        return {}
    points = depth.compared(study, options=options)
    return {kind: dict(tuple(p.frame.groupby("layer"))) for kind, p in points.items()}


def _unmatched(
    study: StudyResults, matched: pd.DataFrame, at: str, *, level: float, options: Options
) -> str:
    """Why a matched level cannot compare trials ("" when it can): no trial reached it, or
    it is near where most of them started (:func:`near_start`)."""
    reached = matched[matched["reached"]] if "reached" in matched else matched
    if reached.empty:
        return f"no trial reached {at}"
    near, at_first = near_start(
        study, reached, by=options.progress_by, level=level, min_progress=options.min_progress
    )
    if near.sum() * 2 <= len(reached):
        return ""
    first = f" ({int(at_first.sum())} of them by their first evaluation)" if at_first.any() else ""
    return (
        f"{int(near.sum())} of {len(reached)} trials reached {at} less than "
        f"{options.min_progress:.0%} of the way from their first evaluation to their best"
        f"{first}: the level is where they start, not a level of training"
    )


def near_start(
    study: StudyResults, reached: pd.DataFrame, *, by: str, level: float, min_progress: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which trials reached the matched ``level`` near where they started.

    A trial's share of its progress at the level is ``(level − first) / (best − first)``
    in ``by``'s own units (loss falling, accuracy rising), ``first`` its first evaluation's
    value and ``best`` its best: 0 where it started, 1 at its best. A trial is near its
    start when that share is below ``min_progress`` (or ≤ 0: it was past the level at its
    first evaluation; a trial that never improved counts as 0), or when its first evaluation
    had already reached the level.

    Args:
        study: the study.
        reached: the trials that reached the level (``trial_id`` and the ``epoch`` of reaching).
        by: the progress measure.
        level: the matched level, in ``by``'s units.
        min_progress: the least share of its progress at which a trial is not near its start.

    Returns:
        Per row of ``reached``: near its start, and reached at its first evaluation.
    """
    ids = reached["trial_id"]
    rows = study.metrics[study.metrics["trial_id"].isin(ids)]  # by trial, then epoch
    values = rows[by].to_numpy(dtype=float, na_value=np.nan)
    sign = -1.0 if by == "train_loss" else 1.0  # progress: loss falls, accuracy rises
    finite = rows.assign(progress=sign * values)[np.isfinite(values)]
    per_trial = finite.groupby("trial_id", sort=False, observed=True)["progress"]
    first, best = per_trial.first().reindex(ids), per_trial.max().reindex(ids)
    gained = (best - first).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(gained > 0, (sign * level - first.to_numpy(float)) / gained, 0.0)
    first_epoch = rows.groupby("trial_id", sort=False, observed=True)["epoch"].min()
    at_first = reached["epoch"].to_numpy(float) <= first_epoch.reindex(ids).to_numpy(float)
    return (share < min_progress) | at_first, at_first


def _not_applicable(claim: Claim, comparison: Comparison, role: str) -> dict:
    row = dict.fromkeys(VERDICT_COLUMNS, np.nan)
    row |= {
        "claim": claim.text, "group": claim.group, "x": claim.x, "y": claim.y,
        "at": comparison.at, "role": role, "n": len(comparison.frame), "slice": "",
        "verdict_raw": NOT_APPLICABLE, "verdict": NOT_APPLICABLE, "direction": 0,
        "reason": comparison.not_applicable, "source": claim.source, "scale": "",
    }  # fmt: skip
    return row | _layer_of(claim)


def _layer_of(claim: Claim) -> dict:
    """A claim across depth's :data:`LAYER_COLUMNS`; nothing for a claim on the embedding."""
    return {} if claim.layer is None else {"layer": claim.layer, "layer_name": claim.layer_name}


def _evaluate(comparison: Comparison, claims, hyper, role: str, options: Options) -> list[dict]:
    """The rows of ``claims`` at ``comparison``, in their order: the claims on the
    embedding on its frame, each layer's on that layer's values of the same trials."""
    by_layer: dict[int | None, list[Claim]] = {}
    for claim in claims:
        by_layer.setdefault(claim.layer, []).append(claim)
    rows: dict[Claim, dict] = {}
    for layer, group in by_layer.items():
        frame = comparison.frame if layer is None else comparison.layers.get(layer)
        if frame is None:  # no trial at this point: no rows
            frame = comparison.frame.iloc[:0]
        found = _evaluate_on(frame, group, hyper, comparison.at, role, options)
        rows |= {c: row | _layer_of(c) for c, row in zip(group, found, strict=True)}
    return [rows[c] for c in claims]


def _evaluate_on(frame: pd.DataFrame, claims, hyper, at: str, role: str, options) -> list[dict]:
    slices: dict[str, tuple[pd.DataFrame, str]] = {}
    for claim in claims:
        if claim.x in hyper and claim.x not in slices:
            others = [p for p in hyper if p != claim.x]
            slices[claim.x] = aggregate.sweep_slice(frame, claim.x, others)
    rhos = _rank_evidence(frame, claims, slices, options)
    rows = []
    for claim in claims:
        sub, note = slices.get(claim.x, (frame, "all trials"))
        rows.append(_row(claim, sub, note, at, role, rhos[(claim.x, claim.y)], options))
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


def _row(claim: Claim, sub: pd.DataFrame, note: str, at: str, role: str, rho, opts) -> dict:
    row = dict.fromkeys(VERDICT_COLUMNS, np.nan)
    row |= {
        "claim": claim.text, "group": claim.group, "x": claim.x, "y": claim.y, "at": at,
        "role": role, "n": int(rho.n), "slice": note, "source": claim.source, "scale": "",
        "rho": rho.r, "rho_low": rho.ci_low, "rho_high": rho.ci_high,
    }  # fmt: skip
    tests: dict[str, tuple[float, int] | None] = {}  # name -> (p, direction) or None
    floors = {"extremes": 0.0}  # the smallest p-value each test can give in this design
    if "extremes" in opts.evidence and not schema.is_metric_name(claim.x):
        ext = _extremes(claim, sub, opts)
        if ext is not None:
            row |= ext
            along = -claim.sign if claim.downward else claim.sign  # y's sign along the arrow
            tests["extremes"] = (ext["p_extremes"], _direction(ext["diff"], along))
        else:
            tests["extremes"] = None
    if "spearman" in opts.evidence:
        tests["spearman"] = None
        if rho.n >= opts.min_trials and np.isfinite(rho.r):
            p = _spearman_p(sub, claim, opts)
            row["p_spearman"] = p
            floors["spearman"] = _spearman_floor(sub, claim, opts)
            tests["spearman"] = (p, _direction(rho.r, claim.sign)) if np.isfinite(p) else None
    row["p"], row["direction"], row["reason"] = _combine(tests, require=opts.require)
    ran = [floors.get(k, 0.0) for k, v in tests.items() if v is not None]
    if ran:
        row["p_floor"] = max(ran) if opts.require == "all" else min(1.0, min(ran) * len(ran))
    elif rho.n == 0:
        row["reason"] = f"no data: no trial has {_values(claim)} at {at}"
    return row


def _values(claim: Claim) -> str:
    y = schema.label(claim.y)
    if schema.is_metric_name(claim.x):
        return f"values of both {schema.label(claim.x)} and {y}"
    return f"a value of {y}"


def _direction(estimate: float, sign: int) -> int:
    """+1: the estimate points the claimed way; −1: the other way; 0: neither."""
    if not np.isfinite(estimate) or estimate == 0:
        return 0
    return 1 if np.sign(estimate) == sign else -1


def _combine(tests: dict, *, require: str) -> tuple[float, int, str]:
    """A claim's p-value, direction and the reason text from its tests' (p, direction)."""
    ran = {k: v for k, v in tests.items() if v is not None}
    words = {1: "claimed way", -1: "other way", 0: "no trend"}
    reason = "; ".join(
        f"{k}: p={_p(v[0])}, {words[v[1]]}" if v is not None else f"{k}: too few trials"
        for k, v in tests.items()
    )
    if not ran:
        return np.nan, 0, reason or "too few trials for any test"
    ps = np.array([v[0] for v in ran.values()])
    dirs = {v[1] for v in ran.values()}
    if {1, -1} <= dirs or (require == "all" and len(dirs) > 1):
        return 1.0, 0, reason + " (the tests point different ways)"
    if require == "all":
        return float(ps.max()), dirs.pop(), reason
    best = int(np.argmin(ps))  # "any": Bonferroni between the tests
    return float(min(1.0, ps[best] * len(ps))), list(ran.values())[best][1], reason


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _spearman_p(sub: pd.DataFrame, claim: Claim, options: Options) -> float:
    """Spearman's two-sided p-value over ``sub``'s trials: by permutation up to
    ``PERMUTATION_MAX_N`` trials, from scipy's t-approximation above (exact enough there)."""
    data = sub[[claim.x, claim.y]].apply(pd.to_numeric, errors="coerce").dropna()
    x, y = data[claim.x].to_numpy(float), data[claim.y].to_numpy(float)
    if len(x) > PERMUTATION_MAX_N:
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return float("nan")
        return float(stats.spearmanr(x, y).pvalue)
    floor, largest = _spearman_extreme(x)
    if np.ptp(y) > 0 and abs(stats.spearmanr(x, y).statistic) >= largest - 1e-12:
        return max(floor, 1.0 / (options.n_perm + 1.0))  # exact: every trial in order
    rng = np.random.default_rng([options.seed, len(x), 7])
    p = spearman_permutation_p(x, y, n_perm=options.n_perm, rng=rng)
    return max(p, floor)  # a Monte-Carlo estimate is never taken below the exact least


PERMUTATION_MAX_N = 2000


def _spearman_floor(sub: pd.DataFrame, claim: Claim, options: Options) -> float:
    """The smallest p-value the permutation test can give here: of the ``n!`` pairings,
    at least the ``∏ g!`` that keep ``y``'s order within each group of tied ``x`` values
    (``g`` trials each: the seeds of a swept value) reach the largest |rho| (twice that
    when the smallest rho is as large in size); and a Monte-Carlo p-value is never below
    ``1 / (n_perm + 1)``. Three values × 3 seeds: ``2 (3!)³ / 9! ≈ 0.0012``."""
    data = sub[[claim.x, claim.y]].apply(pd.to_numeric, errors="coerce").dropna()
    n = len(data)
    if n > PERMUTATION_MAX_N or n < 3:
        return 0.0
    return max(_spearman_extreme(data[claim.x].to_numpy(float))[0], 1.0 / (options.n_perm + 1.0))


def _spearman_extreme(x: np.ndarray) -> tuple[float, float]:
    """For ``x`` paired with untied ``y``: the exact probability, over random pairings, of
    the largest |rho| any pairing reaches, and that |rho| (``y`` in ``x``'s order)."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    rx = stats.rankdata(x)
    up = float(np.corrcoef(rx, np.arange(n))[0, 1])  # y in x's order: the largest rho
    down = float(np.corrcoef(rx, np.arange(n)[::-1])[0, 1])
    ways = 2.0 if np.isclose(abs(up), abs(down)) else 1.0  # both extremes count if equal
    groups = np.unique(x, return_counts=True)[1]
    log_share = float(np.sum(special.gammaln(groups + 1.0)) - special.gammaln(n + 1.0))
    return ways * float(np.exp(log_share)), max(abs(up), abs(down))


def _extremes(claim: Claim, sub: pd.DataFrame, options: Options) -> dict | None:
    """The seed-groups at the lowest and highest ``x`` compared; None with too few trials."""
    data = sub[[claim.x, claim.y]].dropna()
    if data[claim.x].nunique() < 2:
        return None
    lo, hi = data[claim.x].min(), data[claim.x].max()
    if claim.downward:  # "↓ batch ⇒ …": from the largest value to the smallest
        lo, hi = hi, lo
    a = data.loc[data[claim.x] == lo, claim.y].to_numpy(dtype=float)
    b = data.loc[data[claim.x] == hi, claim.y].to_numpy(dtype=float)
    if min(len(a), len(b)) < max(2, options.min_per_group):
        return None
    d = compare_groups(a, b, claim.y, confidence=options.confidence)
    return {
        "x_from": lo, "x_to": hi, "n_from": len(a), "n_to": len(b),
        "mean_from": d.centre_low, "mean_to": d.centre_high, "diff": d.diff,
        "diff_low": d.diff_low, "diff_high": d.diff_high, "change_pct": d.change,
        "change_low": d.change_low, "change_high": d.change_high,
        "scale": d.scale, "p_extremes": d.p,
    }  # fmt: skip


def _decide(table: pd.DataFrame, options: Options) -> pd.DataFrame:
    """Adjust each family's p-values and give the verdicts. A family is the tests that ran
    at the planned comparisons (or at the others); rows where no test ran are "not
    tested", and they and the "not applicable" rows join no family (``family`` 0)."""
    alpha = options.alpha
    for text in ("verdict_raw", "verdict", "reason", "slice", "scale"):
        table[text] = table[text].astype(object)
    table["p_adj"] = np.nan
    table["family"] = 0
    applicable = table["verdict"] != NOT_APPLICABLE
    tested = applicable & table["p"].notna()
    main = in_main_family(table)
    for members in (tested & main, tested & ~main):
        table.loc[members, "family"] = int(members.sum())
        table.loc[members, "p_adj"] = adjust(
            table.loc[members, "p"].to_numpy(float), options.correction
        )
    table.loc[tested, "verdict_raw"] = _verdicts(
        table.loc[tested, "p"], table.loc[tested, "direction"], alpha
    )
    table.loc[tested, "verdict"] = _verdicts(
        table.loc[tested, "p_adj"], table.loc[tested, "direction"], alpha
    )
    table.loc[applicable & ~tested, ["verdict_raw", "verdict"]] = NOT_TESTED
    table["direction"] = table["direction"].fillna(0).astype(int)
    table["family"] = table["family"].astype(int)
    return table


def _verdicts(p: pd.Series, direction: pd.Series, alpha: float) -> list[str]:
    out = []
    for pv, d in zip(p.to_numpy(float), direction.to_numpy(float), strict=True):
        if pv > alpha * (1 + 1e-9) or d == 0:  # p = α by rounding: in
            out.append(INCONCLUSIVE)
        else:
            out.append(REPRODUCED if d > 0 else NOT_REPRODUCED)
    return out
