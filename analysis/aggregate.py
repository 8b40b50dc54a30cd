"""Per-trial views of a study and statistics across seeds.

Three ways to line trials up (SPEC 5): by ``epoch``, by ``step``, or by training progress
(``train_loss`` or ``train_acc``), since a trial with a small learning rate or a large batch
is less trained at the same epoch. A trial's value at a progress level is read where its
best-so-far progress first reaches that level, interpolated linearly between successive new
bests (in log loss for ``train_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.inference import LIMITS, interval_scale
from analysis.load import StudyResults
from studyfiles import schema

ALIGNMENTS = ("epoch", "step", "train_loss", "train_acc")


def t_interval(
    mean: np.ndarray, std: np.ndarray, n: np.ndarray, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t confidence interval of a mean; NaN where fewer than two values."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = stats.t.ppf(0.5 + confidence / 2.0, np.where(n > 1, n - 1, np.nan))
        half = q * np.asarray(std, dtype=float) / np.sqrt(n)
    return np.asarray(mean) - half, np.asarray(mean) + half


def summarize(
    frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], *, confidence: float = 0.95
) -> pd.DataFrame:
    """Centre, spread and CI of each metric per group, in long form, each group on its scale
    (analysis.inference.interval_scale): on the log scale (``log`` True: a positive quantity
    whose values in the group are all > 0), ``mean`` is the geometric mean, ``std`` the
    standard deviation of the log and the interval the exponentiated t-interval of the mean
    log; otherwise the mean, std and t-interval, the interval cut to the quantity's range
    ([0, 1] for a fraction, ≥ 0 for a positive quantity whose group holds a zero). A
    positive quantity with a negative value anywhere (a data error, warned about) is left
    on the linear scale, uncut, in every group.

    Returns:
        Columns ``*by, metric, n, mean, std, ci_low, ci_high, log``, groups sorted, each
        group's metrics in the order given; nulls are left out of ``n``.
    """
    by, metrics = list(by), list(metrics)
    cols = [*by, "metric", "n", "mean", "std", "ci_low", "ci_high", "log"]
    if frame.empty or not metrics:
        return pd.DataFrame(columns=cols)
    grouped = frame.groupby(by, sort=True, dropna=False, observed=True)
    codes = grouped.ngroup().to_numpy()
    keys = grouped.size().index  # group g's keys, in the order of ngroup
    n, mean, std, floor, ceiling = (np.empty((len(keys), len(metrics))) for _ in range(5))
    logs = np.zeros((len(keys), len(metrics)), dtype=bool)
    for j, metric in enumerate(metrics):
        values = frame[metric].to_numpy(dtype=float, na_value=np.nan)
        scales = _group_scales(metric, values, codes, len(keys))
        logs[:, j] = scales == "log"
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(logs[codes, j], np.log(values), values)
        n[:, j], mean[:, j], std[:, j] = _group_stats(values, codes, len(keys))
        floor[:, j], ceiling[:, j] = np.array([LIMITS[s] for s in scales]).T
    low, high = t_interval(mean, std, n, confidence=confidence)
    low = np.where(logs, np.exp(low), np.clip(low, floor, ceiling))
    high = np.where(logs, np.exp(high), np.clip(high, floor, ceiling))
    out = keys.repeat(len(metrics)).to_frame(index=False)
    out["metric"] = np.tile(np.asarray(metrics, dtype=object), len(keys))
    out["n"] = n.ravel().astype(int)
    out["mean"] = np.where(logs, np.exp(mean), mean).ravel()
    out["std"], out["ci_low"], out["ci_high"] = std.ravel(), low.ravel(), high.ravel()
    out["log"] = logs.ravel()
    return out[cols]


def _group_scales(metric: str, values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Each group's :func:`analysis.inference.interval_scale`: decided over the whole column
    (so a negative value anywhere is warned about once), then a positive quantity holding
    zeros goes back to the log scale in the groups without one."""
    scale = interval_scale(metric, values)
    if scale != "nonnegative":
        return np.full(n_groups, scale, dtype=object)
    zeros = np.bincount(codes, weights=values == 0, minlength=n_groups) > 0
    return np.where(zeros, "nonnegative", "log").astype(object)


def _group_stats(
    v: np.ndarray, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count of non-null values, mean and sample std (two passes) per group code."""
    missing = np.isnan(v)
    c, v = (codes[~missing], v[~missing]) if missing.any() else (codes, v)
    n = np.bincount(c, minlength=n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(c, weights=v, minlength=n_groups) / n
        dev = v - mean[c]
        var = np.bincount(c, weights=dev * dev, minlength=n_groups) / (n - 1)
    return n, mean, np.where(n > 1, np.sqrt(var), np.nan)


def final_rows(study: StudyResults, *, finished_only: bool = True) -> pd.DataFrame:
    """Each trial's last evaluation, with ``diverged`` (ever) and the trial's ``config``.

    A trial counts as finished when ``trials.parquet`` says ``done`` (or, without a status,
    when it reached the study's last epoch); diverged trials stay, with their null metrics.
    """
    m = study.metrics
    rows = m.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    rows["diverged"] = (
        m.groupby("trial_id", sort=False, observed=True)["diverged"].any().reindex(rows.index)
    )
    rows["diverged"] = rows["diverged"].fillna(False).astype(bool)
    trials = study.trials.drop_duplicates("trial_id", keep="last").set_index("trial_id")
    if "config" in trials:
        rows["config"] = trials["config"].reindex(rows.index)
    if finished_only:
        rows = rows[_finished(rows)]
    return rows.reset_index()


def _finished(rows: pd.DataFrame) -> pd.Series:
    last_epoch = rows["epoch"].max()
    by_epoch = rows["epoch"] == last_epoch
    if "trial_status" not in rows:
        return by_epoch | rows["diverged"]
    status = rows["trial_status"]
    return (status == "done").fillna(False).astype(bool) | (status.isna() & by_epoch)


def trial_design(frame: pd.DataFrame, params: Sequence[str]) -> pd.DataFrame:
    """One row per trial with its values of ``params``."""
    return frame.drop_duplicates("trial_id")[["trial_id", *params]].reset_index(drop=True)


def sweep_slice(frame: pd.DataFrame, param: str, others: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """The rows that vary ``param`` with the other swept keys held fixed.

    With one such slice (a one-at-a-time sweep around a centre config) its rows are returned;
    with several (a full grid) every row is kept, pooled over the other keys.

    Returns:
        The rows and a note saying which slice or pooling was used ("" for a lone sweep).
    """
    others = [o for o in others if o != param and o in frame]
    if not others:
        return frame, ""
    trials = frame.drop_duplicates("trial_id") if "trial_id" in frame else frame  # params
    combos = trials[[*others, param]].drop_duplicates()
    spread = combos.groupby(others, dropna=False, observed=True)[param].nunique()
    informative = spread[spread > 1]
    if len(informative) == 1:
        fixed = dict(zip(others, np.atleast_1d(informative.index[0]), strict=True))
        mask = np.logical_and.reduce([frame[k] == v for k, v in fixed.items()])
        note = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fixed.items()
        )
        return frame[mask], f"at {note}"
    return frame, f"pooled over {', '.join(others)}"


def progress_coordinate(values: np.ndarray, by: str) -> np.ndarray:
    """An increasing measure of progress: ``-log(train_loss)`` or ``train_acc``."""
    values = np.asarray(values, dtype=float)
    if by == "train_loss":
        return -np.log(np.maximum(values, np.finfo(float).tiny))
    if by == "train_acc":
        return values
    raise ValueError(f"unknown progress measure {by!r}; known: train_loss, train_acc")


def at_levels(
    frame: pd.DataFrame, by: str, levels: Sequence[float], metrics: Sequence[str]
) -> pd.DataFrame:
    """Each trial's metrics where its progress first reaches each level.

    Vectorised over trials: each trial's progress is shifted into its own band of one
    increasing axis, so a single ``searchsorted`` finds every (trial, level) crossing.

    Args:
        frame: metric rows (each trial's rows are ordered by ``epoch``).
        by: ``train_loss`` or ``train_acc``.
        levels: in the units of ``by``.
        metrics: columns to read (``epoch`` works too: the fractional epoch of reaching).

    Returns:
        Columns ``trial_id, level, *metrics``; NaN where a trial never reached a level.
    """
    targets = progress_coordinate(np.asarray(levels, dtype=float), by)
    codes, ids = pd.factorize(frame["trial_id"])
    order = np.lexsort((frame["epoch"].to_numpy(), codes))
    p = progress_coordinate(frame[by].to_numpy(dtype=float, na_value=np.nan)[order], by)
    finite = np.isfinite(p)
    order, codes, p = order[finite], codes[order][finite], p[finite]
    lo = p.min() if len(p) else 0.0
    span = (p.max() - lo + 1.0) if len(p) else 1.0
    axis = (p - lo) + codes * span  # trial c lives in [c * span, (c + 1) * span)
    record = axis > np.r_[-np.inf, np.maximum.accumulate(axis)[:-1]]  # each new best
    query = (targets[None, :] - lo) + np.arange(len(ids))[:, None] * span  # (T, L)
    first_row = np.searchsorted(codes, np.arange(len(ids)))
    out = {"trial_id": np.repeat(np.asarray(ids, dtype=object), len(targets))}
    out["level"] = np.tile(np.asarray(levels, dtype=float), len(ids))
    for m in metrics:
        y = frame[m].to_numpy(dtype=float, na_value=np.nan)[order]
        out[m] = _crossings(axis, y, record, codes, first_row, query).ravel()
    return pd.DataFrame(out)


def _crossings(axis, y, record, codes, first_row, query) -> np.ndarray:
    """Interpolate ``y`` over each trial's records at each query point (trials × levels)."""
    use = record & np.isfinite(y)
    xs, ys, cs = axis[use], y[use], codes[use]
    n_trials = query.shape[0]
    starts = np.searchsorted(cs, np.arange(n_trials), side="left")[:, None]
    ends = np.searchsorted(cs, np.arange(n_trials), side="right")[:, None]
    out = np.full(query.shape, np.nan)
    if len(xs) < 1:
        return out
    j = np.searchsorted(xs, query, side="left")  # first record at or past the level
    inside = (j > starts) & (j < ends)
    k = np.clip(j, 1, max(len(xs) - 1, 1))
    if len(xs) > 1:
        w = (query - xs[k - 1]) / (xs[k] - xs[k - 1])
        out = np.where(inside, ys[k - 1] + w * (ys[k] - ys[k - 1]), out)
    in_range = first_row < len(use)
    first_used = np.zeros(n_trials, dtype=bool)
    first_used[in_range] = use[first_row[in_range]]
    at_start = (j == starts) & (ends > starts) & first_used[:, None]
    return np.where(at_start, ys[np.minimum(starts, len(ys) - 1)], out)


def matched_level(finals: pd.DataFrame, by: str, *, quantile: float = 1.0) -> float:
    """The progress level that a ``quantile`` of trials reached (1.0: every trial).

    Args:
        finals: one row per trial with its best ``by`` in column ``best``.
    """
    best = finals["best"].dropna().to_numpy(dtype=float)
    if len(best) == 0:
        return float("nan")
    q = quantile if by == "train_loss" else 1.0 - quantile
    return float(np.quantile(best, q))


def progress_label(by: str, level: float) -> str:
    """A matched comparison's label: ``train loss ≤ 0.0123`` (``≥`` for an accuracy)."""
    op = "≤" if by == "train_loss" else "≥"
    return f"{schema.label(by)} {op} {level:.3g}"


def matched_progress(
    study: StudyResults, metrics: Sequence[str], *, by: str = "train_loss", quantile: float = 1.0
) -> tuple[pd.DataFrame, float]:
    """Finished trials' metrics at the progress level that ``quantile`` of them reached.

    Returns:
        One row per finished trial (hyperparameters, ``*metrics``, ``epoch`` at reaching, and
        ``reached``) and the level used.
    """
    finals = final_rows(study)
    rows = study.metrics[study.metrics["trial_id"].isin(finals["trial_id"])]
    agg = "min" if by == "train_loss" else "max"
    best = (
        rows.groupby("trial_id", sort=False, observed=True)[by]
        .agg(agg)
        .rename("best")
        .reset_index()
    )
    level = matched_level(best, by, quantile=quantile)
    cols = list(dict.fromkeys([*metrics, "epoch"]))
    values = at_levels(rows, by, [level], cols).drop(columns="level")
    keep = [c for c in finals if c not in values or c == "trial_id"]
    out = finals[keep].merge(values, on="trial_id", how="left")
    out["reached"] = out["epoch"].notna()
    return out, level


def curves(
    study: StudyResults,
    param: str | None,
    metrics: Sequence[str],
    *,
    align: str = "epoch",
    n_levels: int = 40,
    confidence: float = 0.95,
) -> tuple[pd.DataFrame, str]:
    """Curves of ``metrics`` per value of ``param`` across seeds, aligned as asked.

    Returns:
        ``summarize`` output with the alignment coordinate in column ``x`` (and the param's
        values in column ``param``, or ``"all"`` when ``param`` is None), and the slice note.
    """
    if align not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {align!r}; known: {', '.join(ALIGNMENTS)}")
    frame, note = study.metrics, ""
    if param is not None:
        others = [p for p in study.hyper_params if p != param]
        frame, note = sweep_slice(frame, param, others)
    if align in ("epoch", "step"):
        data = frame.assign(x=frame[align])
    else:
        levels = progress_grid(frame[align], align, n=n_levels)
        data = at_levels(frame, align, levels, metrics).rename(columns={"level": "x"})
        data = data.merge(trial_design(frame, [param] if param else []), on="trial_id")
    group = data[param] if param is not None else pd.Series("all", index=data.index)
    data = data.assign(param=group.to_numpy())
    return summarize(data, ["param", "x"], metrics, confidence=confidence), note


def progress_grid(values: pd.Series, by: str, *, n: int = 40) -> np.ndarray:
    """``n`` levels spanning the observed progress (log-spaced for loss)."""
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v) & ((v > 0) if by == "train_loss" else True)]
    if len(v) == 0:
        return np.array([])
    lo, hi = float(v.min()), float(v.max())
    if by == "train_loss":
        return np.geomspace(hi, lo, n) if hi > lo else np.array([lo])
    return np.linspace(lo, hi, n) if hi > lo else np.array([lo])
