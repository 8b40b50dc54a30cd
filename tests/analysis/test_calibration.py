"""Calibration and power of the verdicts, through the real loader and verdict code.

The studies are the quickstart's shape (studies/quickstart.toml: 7 settings × 5 seeds),
drawn by benchmarks/bench_verdicts.py's :class:`NoiseModel` (measured on a real quickstart
run): with no effect of any hyperparameter, every "reproduced" or "not reproduced" on a
hyperparameter claim is false. With N null studies a rate's Monte-Carlo standard error at
the nominal level is ``sqrt(α (1 − α) / N)``; N = 100 puts the bound α + 2 s.e. at 0.094
for α = 0.05. The full measurement (400 null studies, power at 5 and 3 seeds) is the
benchmark's; docs/analysis.md, "Calibration and power", gives its numbers. The outsider's
check, shuffles of the committed quickstart run (docs/results/quickstart), is asserted here
too, on fewer shuffles than the benchmark's 200.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest
from synthetic_study import write_synthetic_study

import analysis.verdicts as V
from analysis import Options, load_results
from analysis.inference import spearman_permutation_p
from analysis.verdicts import verdict_table

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import bench_verdicts as bench

SEEDS = bench.SEEDS  # per value: 5, the quickstart's
ALPHA = 0.05
N_NULL = 100
N_PLANTED = 12
N_SHUFFLES = 80  # ≈ 40 s on 2 cores; α + 2 s.e. = 0.099
QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "results", "quickstart")


def _bound(n: int, alpha: float = ALPHA) -> float:
    return alpha + 2.0 * np.sqrt(alpha * (1.0 - alpha) / n)


@pytest.fixture(scope="module")
def null_verdicts(tmp_path_factory) -> pd.DataFrame:
    root = str(tmp_path_factory.mktemp("null"))
    studies = bench.simulated_studies(N_NULL, bench.NoiseModel(seed=7), root=root)
    return bench.run_verdicts(studies, [(ALPHA, "holm"), (ALPHA, "none")])


def test_the_benchmarks_design_is_the_quickstarts():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "studies", "quickstart.toml")
    with open(path, "rb") as fh:
        sweep = tomllib.load(fh)["sweep"]
    grids = {k: tuple(v) for grid in sweep["grids"] for k, v in grid.items()}
    assert len(sweep["seeds"]) == SEEDS == 5
    assert grids == {
        "train.lr": bench.LRS,
        "train.batch_size": bench.BATCHES,
        "train.l2": bench.L2S,
    }


def test_a_study_of_the_pool_is_the_study_written_alone(tmp_path):
    model = bench.NoiseModel(effect=3.0)
    pooled = bench.simulated_studies(2, model, root=str(tmp_path))[1]  # seeds 5 … 9
    spec = dataclasses.replace(bench.pool_spec(1, model), seeds=tuple(range(SEEDS, 2 * SEEDS)))
    alone = load_results(write_synthetic_study(tmp_path / "alone", spec))
    options = Options(n_boot=100)
    assert pooled.hyper_params == alone.hyper_params
    pd.testing.assert_frame_equal(
        verdict_table(pooled, options=options), verdict_table(alone, options=options)
    )


def test_null_trials_differ_only_by_seed_noise(tmp_path):
    (study,) = bench.simulated_studies(1, bench.NoiseModel(), root=str(tmp_path))
    finals = study.metrics[study.metrics["epoch"] == study.metrics["epoch"].max()]
    assert finals["trial_id"].nunique() == 7 * SEEDS and len(study.hyper_params) == 3
    log_gc = np.log(finals["gc"].to_numpy())
    assert 0.05 < log_gc.std() < 0.5  # seed noise of the order measured (0.195)
    rho = np.corrcoef(np.log(finals["gc"]), np.log(finals["target_nc_cdnv"]))[0, 1]
    assert rho > 0  # one trial's quantities move together


def test_studies_of_three_seeds_stay_available(tmp_path):
    studies = bench.simulated_studies(2, bench.NoiseModel(), root=str(tmp_path), seeds=3)
    seeds = [sorted(s.metrics[s.seed_param].unique()) for s in studies]
    assert seeds == [[0, 1, 2], [3, 4, 5]]
    assert all(s.metrics["trial_id"].nunique() == 21 for s in studies)


def test_shuffling_moves_whole_trials_between_settings(tmp_path):
    (study,) = bench.simulated_studies(1, bench.NoiseModel(), root=str(tmp_path))
    mixed = bench.shuffled(study, np.random.default_rng(0))
    keys = [*study.hyper_params, study.seed_param]
    design = study.metrics.drop_duplicates("trial_id")[keys]
    new = mixed.metrics.drop_duplicates("trial_id")[keys]
    assert sorted(map(tuple, design.to_numpy())) == sorted(map(tuple, new.to_numpy()))
    assert not np.array_equal(design.to_numpy(), new.to_numpy())
    per_trial = mixed.metrics.groupby("trial_id", observed=True)[keys].nunique()
    assert (per_trial == 1).all().all()  # every row of a trial took the same setting
    pd.testing.assert_series_equal(mixed.metrics["gc"], study.metrics["gc"])


def test_one_table_decided_per_setting_gives_each_settings_own_verdicts(tmp_path):
    # The benchmark computes a study's table once and decides it at every (α, correction)
    (study,) = bench.simulated_studies(1, bench.NoiseModel(effect=3.0), root=str(tmp_path))
    settings = [(0.01, "holm"), (0.05, "holm"), (0.2, "none")]
    long = bench.verdicts(study, settings)
    for alpha, correction in settings:
        table = verdict_table(study, options=bench.options_for(alpha, correction))
        got = long[(long["alpha"] == alpha) & (long["correction"] == correction)]
        assert got["verdict"].tolist() == table["verdict"].astype(str).tolist()
    counts = long.groupby(["alpha", "correction"])["verdict"].apply(
        lambda v: (v != "inconclusive").sum()
    )
    assert counts.nunique() > 1  # the settings do decide differently here


@pytest.mark.slow
def test_null_familywise_false_verdict_rate_is_within_alpha(null_verdicts):
    (summary,) = [s for s in bench.null_summary(null_verdicts) if s["correction"] == "holm"]
    assert summary["familywise"]["n"] == N_NULL
    assert summary["familywise"]["rate"] <= _bound(N_NULL)


@pytest.mark.slow
def test_without_correction_the_simulation_sees_the_family_inflate(null_verdicts):
    (summary,) = [s for s in bench.null_summary(null_verdicts) if s["correction"] == "none"]
    assert summary["familywise"]["rate"] > _bound(N_NULL)  # detectably miscalibrated
    assert 0.0 < summary["per_claim_mean"] <= _bound(N_NULL)  # each test alone holds α


@pytest.mark.slow
def test_a_large_planted_effect_is_reproduced(tmp_path):
    # Power 0.99 at d = 6 in the benchmark's 100 studies, 0.73 at d = 4
    model = bench.NoiseModel(effect=6.0, seed=3)  # GC ×3.2 from lr 0.005 to 0.1
    studies = bench.simulated_studies(N_PLANTED, model, root=str(tmp_path))
    (power,) = bench.power_summary(bench.run_verdicts(studies, [(ALPHA, "holm")]), 6.0)
    assert power["power_final"] >= 0.8 and power["power_matched"] >= 0.8


def _planted_verdicts(studies, *, seed: int) -> pd.DataFrame:
    """The planted claims' p-values and verdicts of ``studies`` at ``Options(seed=seed)``
    (the quickstart's plan: 46 claims, Holm, α = 0.05)."""
    frames = []
    for i, study in enumerate(studies):
        table = verdict_table(study, options=Options(seed=seed))
        rows = table[(table["x"] == "train.lr") & table["y"].isin(bench.PLANTED)]
        frames.append(rows[["y", "at", "p_spearman", "verdict"]].assign(study=i))
    return pd.concat(frames, ignore_index=True)


def _raw_monte_carlo_p(sub: pd.DataFrame, claim: V.Claim, options: Options) -> float:
    """``_spearman_p`` without its exact least value: the bare Monte-Carlo estimate."""
    data = sub[[claim.x, claim.y]].apply(pd.to_numeric, errors="coerce").dropna()
    x, y = data[claim.x].to_numpy(float), data[claim.y].to_numpy(float)
    rng = np.random.default_rng([options.seed, len(x), 7])
    return spearman_permutation_p(x, y, n_perm=options.n_perm, rng=rng)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seeds", "verdict"),
    [
        (3, "inconclusive"),  # exact p 2·(3!)³/9! = 1.19e-3 > Holm's first 0.05/46 = 1.09e-3
        (5, "reproduced"),  # exact p 2.6e-6, given as the least 1 / (n_perm + 1) = 5e-5
    ],
)
def test_a_perfectly_ordered_sweeps_verdict_does_not_depend_on_the_permutation_seed(
    tmp_path, monkeypatch, seeds, verdict
):
    model = bench.NoiseModel(effect=20.0, seed=3)  # GC ×49: every trial in order
    studies = bench.simulated_studies(4, model, root=str(tmp_path), seeds=seeds)
    runs = [_planted_verdicts(studies, seed=s) for s in range(3)]
    exact = 2 * math.factorial(seeds) ** 3 / math.factorial(3 * seeds)
    least = max(exact, 1 / (Options().n_perm + 1))
    assert runs[0]["p_spearman"].to_numpy() == pytest.approx(least)
    for run in runs[1:]:
        pd.testing.assert_frame_equal(run, runs[0])
    assert (runs[0]["verdict"] == verdict).all()
    if seeds == 3:  # where the exact value decides: the bare estimate would hang on the seed
        monkeypatch.setattr(V, "_spearman_p", _raw_monte_carlo_p)
        raw = [_planted_verdicts(studies, seed=s)["verdict"] for s in range(3)]
        assert len({tuple(v) for v in raw}) > 1, "the bare estimate did not depend on the seed"


@pytest.mark.slow
def test_shuffles_of_the_committed_quickstart_keep_the_familywise_rate_within_alpha():
    """A real study's trials, their settings permuted so that no hyperparameter can matter:
    the fraction of shuffles with any verdict other than "inconclusive" on a hyperparameter
    claim ("reproduced" or "not reproduced"; "not applicable" rows join no family)."""
    check = bench.shuffle_check(QUICKSTART, N_SHUFFLES, alpha=ALPHA, seed=0)
    (holm,) = [s for s in check["summary"] if (s["alpha"], s["correction"]) == (ALPHA, "holm")]
    assert check["trials"] == 7 * SEEDS and len(check["hyper_params"]) == 3
    assert holm["familywise"]["n"] == N_SHUFFLES
    assert holm["familywise"]["rate"] <= _bound(N_SHUFFLES)
