"""Calibration and power of the verdicts, measured through the real loading and verdict code.

    python benchmarks/bench_verdicts.py --quick         # tens of studies, ≈ 1 min on 2 cores
    python benchmarks/bench_verdicts.py --seeds 5 3     # 400 null studies at 5 seeds, 100 per
                                                        # effect size at 5 and at 3 seeds
    python benchmarks/bench_verdicts.py --shuffle docs/results/quickstart --n 200

Three checks (SPEC §4, verdict statistics; docs/analysis.md, "Calibration and power"):

1. **Null studies.** The quickstart's shape (studies/quickstart.toml): one-at-a-time sweeps
   of lr {0.005, 0.02, 0.1}, batch {16, 64, 256} and L2 {0, 0.001, 0.01} around lr 0.02,
   batch 64, L2 0; 5 seeds (``--seeds``; 3 was its former shape), 35 trials, 11
   evaluations, GC, geometric collapse, NC, target NC and 1-/5-shot accuracy. No
   hyperparameter has any effect: every trial draws its curves from one distribution
   (:class:`NoiseModel`, measured on a real quickstart run), so any "reproduced" or "not
   reproduced" on a hyperparameter claim is a false verdict. Chain claims (source GC ⇒
   target NC ⇒ accuracy) are counted apart: the quantities of one trial are correlated, so
   the chain genuinely holds across trials.
2. **Planted effects.** The same studies with a larger lr lowering GC, geometric collapse
   and NC by ``d`` seed SDs on the log scale between lr 0.005 and 0.1; power is the fraction
   of studies whose verdict on those claims is "reproduced", at each ``--seeds`` given.
3. **Shuffles of a real study** (``--shuffle``): its trials' settings permuted, so no
   hyperparameter can have an effect; the false-verdict rate of the shuffled studies.

Many studies are written as one study directory by the metrics sink's own code
(tests/analysis/synthetic_study.py), with seeds ``0 … SN−1``, read once by
:func:`analysis.load_results` and split by seed into N studies of S seeds each; each trial's
curves depend only on its own seed and setting, so a study of the pool is the study written
alone (tests/analysis/test_calibration.py checks it). Each study's verdict table is computed
once and decided at every (α, correction) by the verdict code's own ``_decide``: its
p-values and directions do not depend on either (the test file checks that too). Rates
carry their Monte-Carlo standard error ``sqrt(p (1 − p) / N)``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "analysis"))

from synthetic_study import SyntheticSpec, metric_schema, write_synthetic_study  # noqa: E402

from analysis import Options, StudyResults, load_results  # noqa: E402
from analysis.verdicts import _decide, verdict_table  # noqa: E402

CENTRE = {"train.lr": 0.02, "train.batch_size": 64, "train.l2": 0.0}
LRS, BATCHES, L2S = (0.005, 0.02, 0.1), (16, 64, 256), (0.0, 0.001, 0.01)
SEEDS = 5  # per setting and study, as in the quickstart (3 before)
FALSE = ("reproduced", "not reproduced")
ALPHAS = (0.01, 0.05, 0.1, 0.2)
CORRECTIONS = ("holm", "none")
EFFECTS = (0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 14.0, 20.0)  # in seed SDs of each quantity
PLANTED = ("gc", "geo_collapse", "nc_cdnv")

# The null model's numbers, measured on a run of studies/quickstart.toml (digits, VGG-11 with
# BatchNorm, 2-core CPU, 2025): seed-mean log curves of the centre config at its 11
# evaluations; at the final epoch the residuals of the 21 trials from their setting's mean
# (14 degrees of freedom) give each quantity's seed SD and their correlations; the
# correlation of residuals 1 and 2 evaluations apart (about equal: a lasting part per trial
# plus independent spikes per evaluation) gives the lasting share of the variance. That run
# had 3 seeds; the committed 5-seed run (docs/results/quickstart, 28 degrees of freedom)
# gives seed SDs 0.195, 0.217, 0.229, 0.298, 0.030, 0.038, 0.171: the same within sampling
# error for GC and the collapse measures, larger for accuracy, smaller for train loss.
QUANTITIES = (
    "gc",
    "geo_collapse",
    "nc_cdnv",
    "target_nc_cdnv",
    "fewshot_acc_1shot",
    "fewshot_acc_5shot",
    "train_loss",
)
LOGGED = {"gc", "geo_collapse", "nc_cdnv", "target_nc_cdnv", "train_loss"}
BASE = np.array(
    [  # (quantities, evaluations): logs of the positive ones, accuracies as is
        [-9.34, 4.93, 4.75, 4.59, 4.34, 4.20, 4.12, 4.08, 4.00, 4.14, 3.95],
        [2.99, 1.29, 0.66, 0.41, 0.10, -0.06, -0.15, -0.24, -0.33, -0.06, -0.40],
        [0.65, -1.97, -2.62, -2.88, -3.19, -3.39, -3.49, -3.57, -3.66, -3.39, -3.72],
        [0.64, 0.65, 0.69, 0.65, 0.65, 0.60, 0.72, 0.61, 0.64, 0.86, 0.74],
        [0.393, 0.410, 0.403, 0.408, 0.403, 0.406, 0.406, 0.399, 0.399, 0.389, 0.398],
        [0.530, 0.561, 0.543, 0.536, 0.528, 0.532, 0.524, 0.513, 0.516, 0.503, 0.512],
        [0.48, -1.19, -2.33, -2.98, -3.42, -3.74, -3.92, -4.22, -4.38, -3.80, -4.65],
    ]
)
SD = np.array([0.195, 0.209, 0.269, 0.307, 0.022, 0.032, 0.419])
LASTING = np.array([0.6, 0.4, 0.3, 0.75, 0.55, 0.55, 0.1])
CORR = np.array(
    [
        [1.00, 0.99, 0.86, 0.66, -0.09, -0.17, 0.50],
        [0.99, 1.00, 0.83, 0.59, 0.06, -0.04, 0.38],
        [0.86, 0.83, 1.00, 0.50, -0.06, -0.09, 0.72],
        [0.66, 0.59, 0.50, 1.00, -0.60, -0.72, 0.37],
        [-0.09, 0.06, -0.06, -0.60, 1.00, 0.92, -0.43],
        [-0.17, -0.04, -0.09, -0.72, 0.92, 1.00, -0.32],
        [0.50, 0.38, 0.72, 0.37, -0.43, -0.32, 1.00],
    ]
)


def nearest_correlation(r: np.ndarray, *, floor: float = 0.01) -> np.ndarray:
    """``r`` with its eigenvalues raised to ``floor`` and its diagonal rescaled to 1 (the
    rounded measured matrix is not quite positive definite)."""
    w, v = np.linalg.eigh(r)
    fixed = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(fixed))
    return fixed / np.outer(d, d)


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """How one trial's curves are drawn; every trial of a study from the same distribution,
    except for a planted effect of lr.

    A trial's residual from the base curves at evaluation ``e`` is
    ``SD · (sqrt(LASTING) · a + sqrt(1 − LASTING) · b_e)`` with ``a`` (once per trial) and
    ``b_e`` (once per evaluation) drawn with correlation ``CORR`` across quantities; on the
    log scale for positive quantities. The planted effect adds
    ``−effect · SD · x · ramp(e)`` to the log of each quantity in ``planted``, where ``x`` is
    ``log(lr / 0.02)`` over ``log(0.1 / 0.005)`` (so the extremes differ by ``effect`` SDs)
    and ``ramp`` rises from 0 at the start to 1 at the end of training.
    """

    effect: float = 0.0
    planted: tuple[str, ...] = PLANTED
    seed: int = 0

    def curves(self, spec: SyntheticSpec, configs: list[dict]) -> dict[str, np.ndarray]:
        """Every metric of the study's schema as a ``(trials, evaluations)`` array."""
        n_e = spec.epochs + 1
        if n_e != BASE.shape[1]:
            raise ValueError(f"the null model has {BASE.shape[1]} evaluations, not {n_e}")
        values = np.stack([self._trial(cfg) for cfg in configs])  # (T, Q, E)
        out = {q: values[:, i] for i, q in enumerate(QUANTITIES)}
        nan = np.full((len(configs), n_e), np.nan)
        out["train_acc"] = out["test_acc"] = np.exp(-out["train_loss"])  # unused by verdicts
        out |= {f"fewshot_ci_{k}shot": np.full_like(nan, 0.01) for k in spec.shots}
        names = [f.name for f in metric_schema(spec) if f.type == "double"]
        return {name: out.get(name, nan) for name in names if name != "wall_time_s"}

    def _trial(self, cfg: dict) -> np.ndarray:
        """One trial's (quantities, evaluations) values, a function of its seed and setting."""
        key = [round(cfg[k] * 1e6) for k in ("train.lr", "train.batch_size", "train.l2")]
        rng = np.random.default_rng([self.seed, int(cfg["train.seed"]), *key])
        chol = _cholesky()
        lasting = chol @ rng.standard_normal(len(QUANTITIES))  # (Q,)
        spikes = chol @ rng.standard_normal((len(QUANTITIES), BASE.shape[1]))  # (Q, E)
        resid = SD[:, None] * (
            np.sqrt(LASTING)[:, None] * lasting[:, None] + np.sqrt(1 - LASTING)[:, None] * spikes
        )
        x = np.log(cfg["train.lr"] / CENTRE["train.lr"]) / np.log(LRS[-1] / LRS[0])
        e = np.arange(BASE.shape[1]) / (BASE.shape[1] - 1)
        ramp = (1 - np.exp(-4 * e)) / (1 - np.exp(-4))
        shift = np.array([q in self.planted for q in QUANTITIES]) * self.effect * SD * x
        values = BASE + resid - shift[:, None] * ramp[None, :]
        logged = np.array([q in LOGGED for q in QUANTITIES])
        values[logged] = np.exp(values[logged])
        return values


@functools.cache
def _cholesky() -> np.ndarray:
    return np.linalg.cholesky(nearest_correlation(CORR))


def pool_spec(
    n_studies: int, model: NoiseModel, *, seeds: int = SEEDS, name: str = "calibration"
) -> SyntheticSpec:
    """``n_studies`` quickstart-shaped studies of ``seeds`` seeds per setting as one study
    directory's spec (seeds ``0 … seeds · n_studies − 1``)."""
    return SyntheticSpec(
        name=name,
        lrs=LRS,
        batch_sizes=BATCHES,
        l2s=L2S,
        centre=CENTRE,
        seeds=tuple(range(seeds * n_studies)),
        epochs=BASE.shape[1] - 1,
        running=0,
        restarted=0,
        leftovers=0,
        stopped_merge=False,
        merge_every=max(seeds * 7, min(300, seeds * 7 * n_studies)),
        curves=model.curves,
    )


def simulated_studies(
    n_studies: int, model: NoiseModel, *, root: str, seeds: int = SEEDS
) -> list[StudyResults]:
    """Write ``n_studies`` studies of ``seeds`` seeds per setting as a new directory under
    ``root``, load it once, split it."""
    path = tempfile.mkdtemp(prefix=f"pool-seeds={seeds}-effect={model.effect:g}-", dir=root)
    write_synthetic_study(path, pool_spec(n_studies, model, seeds=seeds))
    return split_by_seed(load_results(path), seeds=seeds)


def split_by_seed(pool: StudyResults, *, seeds: int) -> list[StudyResults]:
    """The loaded ``pool`` as studies of ``seeds`` consecutive seeds each."""
    key = pool.seed_param
    group_m = pool.metrics[key].to_numpy() // seeds
    group_t = pool.trials[key].to_numpy() // seeds
    out = []
    for g in np.unique(group_m):
        metrics = _drop_unused(pool.metrics[group_m == g].reset_index(drop=True))
        trials = pool.trials[group_t == g].reset_index(drop=True)
        out.append(dataclasses.replace(pool, metrics=metrics, trials=trials, warnings=[]))
    return out


def _drop_unused(frame: pd.DataFrame) -> pd.DataFrame:
    for c in frame.select_dtypes("category"):
        frame[c] = frame[c].cat.remove_unused_categories()
    return frame


def shuffled(study: StudyResults, rng: np.random.Generator) -> StudyResults:
    """``study`` with its trials' settings permuted: every row of a trial keeps its trial's
    outcomes and takes another trial's swept values (seed included), so the design stays."""
    keys = [k for k in study.sweep_params if k in study.metrics]
    design = study.metrics.drop_duplicates("trial_id")[["trial_id", *keys]]
    perm = rng.permutation(len(design))
    ids = pd.Index(design["trial_id"].astype(str))
    metrics, trials = study.metrics.copy(), study.trials.copy()
    row_of = ids.get_indexer(metrics["trial_id"].astype(str))
    trial_of = ids.get_indexer(trials["trial_id"].astype(str))
    for k in keys:
        values = design[k].to_numpy()[perm]
        metrics[k] = values[row_of]
        if k in trials:
            trials[k] = np.where(trial_of >= 0, values[trial_of], trials[k].to_numpy())
    return dataclasses.replace(study, metrics=metrics, trials=trials, warnings=[])


def options_for(alpha: float, correction: str) -> Options:
    """The analysis defaults at familywise level ``alpha`` with ``correction``."""
    return Options(confidence=round(1 - alpha, 12), correction=correction)


def verdicts(study: StudyResults, settings: list[tuple[float, str]]) -> pd.DataFrame:
    """One row per (x, y, comparison) and (alpha, correction) in ``settings``, with ``hyper``
    (a hyperparameter claim) and ``verdict``; ``comparison`` is "final" or "matched" (a
    matched level's label differs by study). The table is computed once with the defaults
    and decided at each setting by the verdict code's own ``_decide``: α and the correction
    change the decision only, not a p-value or a direction."""
    table = verdict_table(study, options=Options())
    claims = pd.DataFrame(
        {
            "x": table["x"].astype(str),
            "y": table["y"].astype(str),
            "comparison": np.where(table["at"] == "final epoch", "final", "matched"),
            "hyper": table["x"].isin(study.hyper_params).to_numpy(),
        }
    )
    frames = []
    for alpha, correction in settings:
        decided = _decide(table.copy(), options_for(alpha, correction))
        verdict = decided["verdict"].astype(str).to_numpy()
        frames.append(claims.assign(verdict=verdict, alpha=alpha, correction=correction))
    return pd.concat(frames, ignore_index=True)


def run_verdicts(
    studies: list[StudyResults], settings: list[tuple[float, str]], *, jobs: int = 1
) -> pd.DataFrame:
    """Verdicts of every study at every (alpha, correction) in ``settings``, in long form
    with the study's index; ``jobs`` processes share the studies."""
    chunks = [(studies[i::jobs], i, jobs, settings) for i in range(jobs)]
    if jobs == 1:
        return _chunk_verdicts(chunks[0])
    with ProcessPoolExecutor(jobs) as pool:
        return pd.concat(pool.map(_chunk_verdicts, chunks), ignore_index=True)


def _chunk_verdicts(chunk: tuple) -> pd.DataFrame:
    studies, first, step, settings = chunk
    frames = [
        verdicts(study, settings).assign(study=first + i * step) for i, study in enumerate(studies)
    ]
    return pd.concat(frames, ignore_index=True)


def rate(hits: np.ndarray) -> dict:
    """A fraction with its Monte-Carlo standard error."""
    hits = np.asarray(hits, dtype=bool)
    n = len(hits)
    p = float(hits.mean()) if n else float("nan")
    return {"rate": p, "se": float(np.sqrt(p * (1 - p) / n)) if n else float("nan"), "n": n}


def null_summary(long: pd.DataFrame, *, exclude: tuple[tuple[str, str], ...] = ()) -> list[dict]:
    """Per (alpha, correction): familywise and per-claim false-verdict rates on hyperparameter
    claims (other than ``exclude``, (x, y) pairs with a true effect), and the chain claims'
    "reproduced" rates."""
    out = []
    for (alpha, correction), g in long.groupby(["alpha", "correction"], sort=True):
        planted = pd.Series(list(zip(g["x"], g["y"], strict=True)), index=g.index).isin(exclude)
        hyper = g[g["hyper"] & ~planted]
        false = hyper["verdict"].isin(FALSE)
        per_study = false.groupby(hyper["study"]).any()
        keys = ["x", "y", "comparison"]
        per_claim = [
            {"x": x, "y": y, "comparison": c, **rate(part.to_numpy())}
            for (x, y, c), part in false.groupby([hyper[k] for k in keys])
        ]
        chain = g[~g["hyper"]]
        reproduced = chain["verdict"] == "reproduced"
        means = [c["rate"] for c in per_claim]
        out.append(
            {
                "alpha": float(alpha),
                "correction": correction,
                "studies": int(g["study"].nunique()),
                "family_size": int(len(g) // g["study"].nunique()),
                "familywise": rate(per_study.to_numpy()),
                "any_false_reproduced": _any(hyper, "reproduced"),
                "any_false_not_reproduced": _any(hyper, "not reproduced"),
                "per_claim_mean": float(np.mean(means)),
                "per_claim_max": float(np.max(means)),
                "per_claim": per_claim,
                "chain_reproduced": [
                    {"x": x, "y": y, "comparison": c, **rate(part.to_numpy())}
                    for (x, y, c), part in reproduced.groupby([chain[k] for k in keys])
                ],
            }
        )
    return out


def _any(rows: pd.DataFrame, verdict: str) -> dict:
    return rate((rows["verdict"] == verdict).groupby(rows["study"]).any().to_numpy())


def power_summary(long: pd.DataFrame, effect: float) -> list[dict]:
    """Per (alpha, correction): the fraction of studies whose planted claims are
    "reproduced", per claim and comparison and on average, and the false-verdict rate of
    the other hyperparameter claims."""
    out = []
    planted = tuple(("train.lr", y) for y in PLANTED)
    nulls = {(s["alpha"], s["correction"]): s for s in null_summary(long, exclude=planted)}
    for (alpha, correction), g in long.groupby(["alpha", "correction"], sort=True):
        rows = g[(g["x"] == "train.lr") & g["y"].isin(PLANTED)]
        hit = rows["verdict"] == "reproduced"
        per = [
            {"y": y, "comparison": c, **rate(part.to_numpy())}
            for (y, c), part in hit.groupby([rows["y"], rows["comparison"]])
        ]
        final = [p["rate"] for p in per if p["comparison"] == "final"]
        matched = [p["rate"] for p in per if p["comparison"] == "matched"]
        out.append(
            {
                "effect": effect,
                "alpha": float(alpha),
                "correction": correction,
                "power_final": float(np.mean(final)),
                "power_matched": float(np.mean(matched)),
                "all_final_reproduced": rate(
                    hit[rows["comparison"] == "final"].groupby(rows["study"]).all().to_numpy()
                ),
                "per_claim": per,
                "others_familywise": nulls[(alpha, correction)]["familywise"],
            }
        )
    return out


def crossing(effects: list[float], power: list[float], level: float = 0.8) -> float | None:
    """The smallest effect at which ``power`` reaches ``level``, linearly interpolated."""
    for i, (e, p) in enumerate(zip(effects, power, strict=True)):
        if p >= level:
            if i == 0:
                return e
            e0, p0 = effects[i - 1], power[i - 1]
            return e0 + (level - p0) * (e - e0) / (p - p0)
    return None


def fold(effect: float, quantity: str = "gc") -> float:
    """The change of ``quantity`` between lr 0.005 and 0.1 that ``effect`` SDs amount to."""
    return float(np.exp(effect * SD[QUANTITIES.index(quantity)]))


def shuffle_check(path: str, n: int, *, alpha: float, seed: int = 0, jobs: int = 1) -> dict:
    """The real study at ``path`` and ``n`` shuffles of it: false-verdict rates at every
    α of ``ALPHAS`` (and ``alpha``), and the unshuffled study's verdicts at ``alpha``."""
    study = load_results(path)
    rng = np.random.default_rng(seed)
    studies = [shuffled(study, rng) for _ in range(n)]
    settings = [(a, c) for a in sorted({*ALPHAS, alpha}) for c in CORRECTIONS]
    long = run_verdicts(studies, settings, jobs=jobs)
    real = run_verdicts([study], [(alpha, c) for c in CORRECTIONS])
    hyper = real[real["hyper"] & real["verdict"].isin(FALSE)]
    return {
        "study": os.path.abspath(path),
        "name": study.name,
        "shuffles": n,
        "alpha": alpha,
        "trials": int(study.metrics["trial_id"].nunique()),
        "hyper_params": list(study.hyper_params),
        "unshuffled_hyper_verdicts": {
            c: int((hyper["correction"] == c).sum()) for c in CORRECTIONS
        },
        "unshuffled_hyper_claims": hyper[["correction", "x", "y", "comparison", "verdict"]].to_dict(
            "records"
        ),
        "summary": null_summary(long),
    }


def _get_calibration_info(null: list[dict]) -> pd.DataFrame:
    """False-verdict rates against nominal alpha: one row per (alpha, correction, kind)."""
    rows = []
    for s in null:
        fw, pc = s["familywise"], s["per_claim_mean"]
        rows.append((s["alpha"], s["correction"], "familywise", fw["rate"], fw["se"]))
        pc_se = np.sqrt(pc * (1 - pc) / fw["n"])  # one claim's: the mean's is at most this
        rows.append((s["alpha"], s["correction"], "per claim (mean)", pc, pc_se))
    return pd.DataFrame(rows, columns=["alpha", "correction", "kind", "rate", "se"])


#: The power curves drawn: Holm at both comparisons, no correction at the final epoch.
_CURVES = (("holm", "final"), ("holm", "matched"), ("none", "final"))


def _get_power_info(power: list[dict], *, alpha: float) -> pd.DataFrame:
    """Power against planted effect at ``alpha``: one row per (seeds, effect, correction,
    comparison) of ``_CURVES``."""
    rows = [
        (p["seeds"], p["effect"], correction, at, p[f"power_{at}"])
        for p in power
        if abs(p["alpha"] - alpha) < 1e-9
        for correction, at in _CURVES
        if p["correction"] == correction
    ]
    columns = ["seeds", "effect", "correction", "comparison", "power"]
    return pd.DataFrame(rows, columns=columns)


_COLOURS = {"holm": "rgb(59, 82, 139)", "none": "rgb(94, 201, 98)"}
_SEED_COLOURS = ("rgb(59, 82, 139)", "rgb(230, 120, 40)", "rgb(94, 201, 98)")
_DASH = {("holm", "final"): "solid", ("holm", "matched"): "dash", ("none", "final"): "dot"}
_AT = {"final": "final epoch", "matched": "matched progress"}


def plot_calibration(info: pd.DataFrame, *, studies: int, seeds: int) -> go.Figure:
    """False-verdict rate against nominal alpha, ±2 MC standard errors, with ``y = alpha``."""
    fig = go.Figure()
    top = float(info["alpha"].max())
    diagonal = {"color": "grey", "dash": "dot"}
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="α", line=diagonal))
    for (correction, kind), part in info.groupby(["correction", "kind"], sort=False):
        dash = "solid" if kind == "familywise" else "dash"
        fig.add_trace(
            go.Scatter(
                x=part["alpha"],
                y=part["rate"],
                mode="lines+markers",
                name=f"{correction}: {kind}",
                error_y={"type": "data", "array": 2 * part["se"]},
                line={"color": _COLOURS[correction], "dash": dash},
            )
        )
    fig.update_layout(
        title=f"False verdicts on hyperparameter claims<br>{studies} studies with no effect, "
        f"{seeds} seeds per value",
        xaxis_title="nominal familywise α",
        yaxis_title="fraction of studies (± 2 MC s.e.)",
        height=480,
        width=760,
        template="plotly_white",
    )
    return fig


def plot_power(info: pd.DataFrame, *, studies: int, alpha: float) -> go.Figure:
    """Power of the planted claims against the planted effect, one colour per number of
    seeds, with the 0.8 line."""
    fig = go.Figure()
    order = sorted(info["seeds"].unique(), reverse=True)
    for (seeds, correction, at), part in info.groupby(["seeds", "correction", "comparison"]):
        fig.add_trace(
            go.Scatter(
                x=part["effect"],
                y=part["power"],
                mode="lines+markers",
                name=f"{seeds} seeds, {correction}: {_AT[at]}",
                legendrank=order.index(seeds) * 10 + _CURVES.index((correction, at)),
                line={
                    "color": _SEED_COLOURS[order.index(seeds) % len(_SEED_COLOURS)],
                    "dash": _DASH[(correction, at)],
                },
            )
        )
    fig.add_hline(y=0.8, line={"color": "grey", "dash": "dot"})
    fig.update_layout(
        title=f"↑lr ⇒ lower GC, geometric collapse, NC: power ({studies} studies each, "
        f"α = {alpha:g})",
        xaxis_title=f"planted effect d in seed SDs (GC ×exp({SD[0]:g}·d) from lr 0.005 to 0.1)",
        yaxis_title="fraction of studies reproducing the claim",
        yaxis_range=[0, 1.02],
        height=480,
        width=760,
        template="plotly_white",
    )
    return fig


def write_pngs(figures: dict[str, go.Figure], folder: str) -> list[str]:
    """Each figure as ``<folder>/calibration_<name>.png`` through kaleido."""
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"calibration_{name}.png") for name in figures]
    pio.write_images(list(figures.values()), paths, format="png")
    return paths


def _line(r: dict) -> str:
    return f"{r['rate']:.3f} ± {r['se']:.3f}"


def print_null(null: list[dict], what: str) -> None:
    print(f"{what}: false verdicts on hyperparameter claims (fraction of studies ± MC s.e.)")
    print("  alpha  correction  familywise       per claim mean / max   chain reproduced")
    for s in null:
        chain = np.mean([c["rate"] for c in s["chain_reproduced"]] or [np.nan])
        print(
            f"  {s['alpha']:<5g}  {s['correction']:<10}  {_line(s['familywise'])}  "
            f"{s['per_claim_mean']:.4f} / {s['per_claim_max']:.3f}        {chain:.3f}"
        )


def print_power(power: list[dict], *, alpha: float) -> None:
    print(
        "planted effect of lr on GC, geometric collapse, NC: power (fraction reproduced), "
        f"α={alpha:g}"
    )
    print("  seeds  d (SDs)  GC fold  correction  final epoch  matched  others' familywise")
    for p in power:
        if abs(p["alpha"] - alpha) < 1e-9:
            print(
                f"  {p['seeds']:<5}  {p['effect']:<7g}  ×{fold(p['effect']):<6.2f}  "
                f"{p['correction']:<10}  {p['power_final']:<11.3f}  {p['power_matched']:<7.3f}  "
                f"{_line(p['others_familywise'])}"
            )


def d80_table(power: list[dict]) -> list[dict]:
    """Per (seeds, alpha, correction): the effect at which final-epoch power reaches 0.8."""
    out = []
    keys = sorted({(p["seeds"], p["alpha"], p["correction"]) for p in power})
    for seeds, alpha, correction in keys:
        curve = [
            p
            for p in power
            if (p["seeds"], p["alpha"], p["correction"]) == (seeds, alpha, correction)
        ]
        d = crossing([p["effect"] for p in curve], [p["power_final"] for p in curve])
        gc = None if d is None else fold(d)
        out.append(
            {"seeds": seeds, "alpha": alpha, "correction": correction, "d": d, "gc_fold": gc}
        )
    return out


def run_simulations(args, result: dict) -> str:
    """Null studies at the first of ``args.seeds`` and planted-effect studies at each;
    fills ``result``, returns the summary line."""
    n_null = args.null or (30 if args.quick else 400)
    n_eff = args.per_effect or (12 if args.quick else 100)
    alphas = sorted({*((0.01, 0.05, 0.2) if args.quick else ALPHAS), args.alpha})
    effects = (0.0, 4.0, 8.0, 20.0) if args.quick else EFFECTS
    settings = [(a, c) for a in alphas for c in CORRECTIONS]
    seeds = args.seeds
    result["model"] = _model_json(seeds)
    with tempfile.TemporaryDirectory(prefix="gcnc-bench-verdicts-") as root:
        start = time.perf_counter()
        studies = simulated_studies(n_null, NoiseModel(), root=root, seeds=seeds[0])
        result["null"] = null = null_summary(run_verdicts(studies, settings, jobs=args.jobs))
        result["null_seconds"] = time.perf_counter() - start
        print_null(null, f"{n_null} null studies, {seeds[0]} seeds")
        power = []
        for s in seeds:
            for effect in effects:
                model = NoiseModel(effect=effect, seed=1)
                studies = simulated_studies(n_eff, model, root=root, seeds=s)
                long = run_verdicts(studies, settings, jobs=args.jobs)
                power += [p | {"seeds": s} for p in power_summary(long, effect)]
                print(
                    f"  {s} seeds, d = {effect:g}: {time.perf_counter() - start:.0f} s", flush=True
                )
        result["power"] = power
    print_power(power, alpha=args.alpha)
    result["d80"] = d80 = d80_table(power)
    if args.figures:
        figures = {
            "null": plot_calibration(_get_calibration_info(null), studies=n_null, seeds=seeds[0]),
            "power": plot_power(
                _get_power_info(power, alpha=args.alpha), studies=n_eff, alpha=args.alpha
            ),
        }
        result["figures"] = write_pngs(figures, args.figures)
    fw = _at(null, args.alpha, "holm")["familywise"]
    reached = [
        f"{r['seeds']} seeds: "
        + ("not reached" if r["d"] is None else f"d = {r['d']:.1f} (GC ×{r['gc_fold']:.2f})")
        for r in d80
        if r["correction"] == "holm" and abs(r["alpha"] - args.alpha) < 1e-9
    ]
    return (
        f"familywise false-verdict rate: {_line(fw)} (holm, α={args.alpha:g}, {n_null} null "
        f"studies, {seeds[0]} seeds); power ≥ 0.8 at the final epoch (holm) at "
        f"{'; '.join(reached)} — d in seed SDs, GC's fold change between lr 0.005 and 0.1 "
        f"with seed noise SD {SD[0]:g} on the log scale"
    )


def run_shuffles(args, result: dict) -> str:
    """The shuffle check of ``args.shuffle``; fills ``result``, returns the summary line."""
    shuffle = result["shuffle"] = shuffle_check(
        args.shuffle, args.n, alpha=args.alpha, jobs=args.jobs
    )
    print_null(shuffle["summary"], f"{args.n} shuffles of {shuffle['name']}")
    for claim in shuffle["unshuffled_hyper_claims"]:
        print(
            f"  unshuffled, {claim['correction']}: {claim['x']} ⇒ {claim['y']} "
            f"({claim['comparison']}): {claim['verdict']}"
        )
    fw = _at(shuffle["summary"], args.alpha, "holm")["familywise"]
    return (
        f"shuffled {shuffle['name']}: familywise false-verdict rate {_line(fw)} (holm, "
        f"α={args.alpha:g}, {args.n} shuffles of {shuffle['trials']} trials; unshuffled "
        f"study: {shuffle['unshuffled_hyper_verdicts']} non-inconclusive hyperparameter verdicts)"
    )


def _at(summary: list[dict], alpha: float, correction: str) -> dict:
    return next(
        s for s in summary if s["correction"] == correction and abs(s["alpha"] - alpha) < 1e-9
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tens of studies, ≈ 1 min")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[SEEDS],
        metavar="N",
        help=f"seeds per value ({SEEDS}, the quickstart's); the first is the null studies', "
        "power is measured at each (--seeds 5 3)",
    )
    parser.add_argument("--null", type=int, help="null studies (400; --quick 30)")
    parser.add_argument("--per-effect", type=int, help="studies per effect size (100; 12)")
    parser.add_argument("--shuffle", metavar="STUDY_DIR", help="only the shuffle check of a study")
    parser.add_argument("--n", type=int, default=200, help="shuffles of --shuffle's study")
    parser.add_argument("--alpha", type=float, default=0.05, help="α of power and headline")
    parser.add_argument("--jobs", type=int, default=1, help="processes computing verdicts")
    parser.add_argument("--out", help="write every number as JSON here")
    parser.add_argument(
        "--figures",
        default=os.path.join(ROOT, "docs", "figures"),
        help="folder of calibration_*.png ('' for none; not with --shuffle)",
    )
    args = parser.parse_args()
    if min(args.seeds) < 2:
        parser.error("--seeds: at least 2 seeds per value (Welch's test needs 2 per group)")
    start = time.perf_counter()
    result: dict = {"date": datetime.date.today().isoformat(), "machine": _machine()}
    result["args"] = vars(args)
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, jobs: {args.jobs}")
    line = run_shuffles(args, result) if args.shuffle else run_simulations(args, result)
    result["seconds"] = time.perf_counter() - start
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    print(f"took {result['seconds']:.0f} s")
    print(line)


def _machine() -> dict:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "cpu": model or platform.processor(), "os": platform.platform()}


def _model_json(seeds: list[int]) -> dict:
    return {
        "quantities": list(QUANTITIES),
        "sd": SD.tolist(),
        "lasting": LASTING.tolist(),
        "corr": CORR.tolist(),
        "base": BASE.tolist(),
        "planted": list(PLANTED),
        "design": {"lr": LRS, "batch_size": BATCHES, "l2": L2S, "centre": CENTRE, "seeds": seeds},
        "corrections": CORRECTIONS,
    }


if __name__ == "__main__":
    main()
