"""Search algorithms: grids times seeds, seeded random draws, Optuna spaces, the registry."""

from __future__ import annotations

import itertools

import numpy as np
import optuna.distributions as od
import pytest
from gcnc_testkit import write_study

from orchestrator import search
from orchestrator.points import trial_config
from orchestrator.provenance import study_info
from orchestrator.search import algorithm_of, trial_count, trial_points
from orchestrator.search._base import SpaceSearch
from orchestrator.search.random_search import sample
from orchestrator.spec import Distribution
from orchestrator.studyfile import load_spec
from orchestrator.trial import make_job
from studyfiles import InputError, StudyDir
from trainables.config import TrialConfig

SEARCH = """
[search]
algorithm = "{algorithm}"
metric = "test_acc"
mode = "max"
budget = {budget}
seed = {seed}
[search.space]
train.lr = {{loguniform = [0.001, 0.1]}}
train.batch_size = {{choice = [32, 64, 128]}}
model.width = {{log_integer = [8, 64]}}
"""


def test_grid_is_every_combination_times_every_seed_seeds_outermost(tmp_path):
    path = write_study(
        tmp_path,
        """
        [sweep]
        seeds = [3, 4]
        [sweep.grid]
        train.lr = [0.01, 0.1, 1.0]
        train.l2 = [0.0, 0.001]
    """,
    )
    points = trial_points(load_spec(path))
    expected = [
        {"train.lr": lr, "train.l2": l2, "train.seed": s}
        for s, lr, l2 in itertools.product([3, 4], [0.01, 0.1, 1.0], [0.0, 0.001])
    ]
    assert points == expected


def test_no_sweep_is_one_trial_of_the_base_config(tmp_path):
    study = load_spec(write_study(tmp_path, "[train]\nepochs = 2"))
    assert trial_points(study) == [{}]
    assert trial_count(study) == 1


def test_random_points_are_seeded_and_inside_the_space(tmp_path):
    path = write_study(tmp_path, SEARCH.format(algorithm="random", budget=50, seed=7))
    first = trial_points(load_spec(path))
    assert first == trial_points(load_spec(path))
    other = trial_points(load_spec(path, overrides=["search.seed=8"]))
    assert first != other
    assert len(first) == 50
    for p in first:
        assert 0.001 <= p["train.lr"] <= 0.1
        assert p["train.batch_size"] in (32, 64, 128)
        assert isinstance(p["model.width"], int) and 8 <= p["model.width"] <= 64


def test_loguniform_draws_are_uniform_in_log_space():
    rng = np.random.default_rng(0)
    dist = Distribution(loguniform=(1e-4, 1e-0))
    logs = np.log10([sample(dist, rng) for _ in range(4000)])
    # log10 of the draws is uniform on [-4, 0]: quartiles at -3, -2, -1
    assert np.allclose(np.quantile(logs, [0.25, 0.5, 0.75]), [-3, -2, -1], atol=0.1)


def test_integer_bounds_are_inclusive():
    rng = np.random.default_rng(1)
    for dist in (Distribution(integer=(2, 4)), Distribution(log_integer=(2, 4))):
        assert {sample(dist, rng) for _ in range(300)} == {2, 3, 4}


def test_optuna_space_matches_the_study_space(tmp_path):
    study = load_spec(write_study(tmp_path, SEARCH.format(algorithm="tpe", budget=5, seed=0)))
    space = algorithm_of(study).optuna_space(study)
    assert space["train.lr"] == od.FloatDistribution(0.001, 0.1, log=True)
    assert space["train.batch_size"] == od.CategoricalDistribution([32, 64, 128])
    assert space["model.width"] == od.IntDistribution(8, 64, log=True)
    assert trial_points(study) is None
    assert trial_count(study) == 5


def test_optuna_grid_runs_every_point_unless_the_budget_is_smaller(tmp_path):
    text = """
        [search]
        algorithm = "grid"
        metric = "test_acc"
        mode = "max"
        [search.space]
        train.lr = {choice = [0.01, 0.1]}
        train.seed = {choice = [0, 1, 2]}
    """
    path = write_study(tmp_path, text)
    assert trial_count(load_spec(path)) == 6
    assert trial_count(load_spec(path, overrides=["search.budget=4"])) == 4


def test_trial_config_applies_the_point_and_normalises_types():
    base = TrialConfig().model_dump(mode="json")
    config = trial_config(base, {"train.lr": 1, "data.options.noise": 0.5})
    assert config["train"]["lr"] == 1.0 and isinstance(config["train"]["lr"], float)
    assert config["data"]["options"] == {"noise": 0.5}
    assert base["train"]["lr"] == 0.01  # the base is not changed


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_job_has_the_always_present_and_the_swept_columns(tmp_path, algorithm):
    study = load_spec(write_study(tmp_path, SEARCH.format(algorithm=algorithm, budget=3, seed=0)))
    job = make_job(study, StudyDir.of(str(tmp_path / "runs"), study.name), study_info(study))
    assert job.ctx.param_types == {
        "train.lr": "double",
        "train.batch_size": "int64",
        "train.l2": "double",
        "train.gc_reg.alpha": "double",
        "train.seed": "int64",
        "model.width": "int64",
    }
    assert job.ctx.shots == (1, 5)
    assert (job.points is None) == (algorithm == "tpe")


def test_job_trial_ids_are_stable_and_sortable(tmp_path):
    path = write_study(tmp_path, "[sweep]\nseeds = [0, 1, 2]")
    study = load_spec(path)
    job = make_job(study, StudyDir.of(str(tmp_path / "runs"), study.name), study_info(study))
    ids = [job.trial_id({"point": i}, "ignored") for i in range(3)]
    assert ids == ["t00000", "t00001", "t00002"]


def test_searcher_trials_are_named_after_the_runner_id(tmp_path):
    study = load_spec(write_study(tmp_path, SEARCH.format(algorithm="tpe", budget=3, seed=0)))
    job = make_job(study, StudyDir.of(str(tmp_path / "runs"), study.name), study_info(study))
    config = {"train.lr": 0.01, "train.batch_size": 64, "model.width": 16}
    assert job.trial_id(config, "0123abcd") == "t0123abcd"
    assert job.point(config) == config


class _EveryOther(SpaceSearch):
    """A made-up algorithm: every other value of each choice, one key at a time."""

    name = "every-other"

    def points(self, spec):
        return [{k: v} for k, d in spec.search.space.items() for v in (d.choice or [])[::2]]


def test_a_new_algorithm_is_one_registered_class(tmp_path, monkeypatch):
    path = write_study(
        tmp_path,
        """
        [search]
        algorithm = "every-other"
        [search.space]
        train.lr = {choice = [0.1, 0.2, 0.3]}
        train.batch_size = {choice = [32, 64]}
    """,
    )
    with pytest.raises(InputError, match=r"unknown algorithm 'every-other' \(known: grid"):
        load_spec(path)
    monkeypatch.setattr(search, "ALGORITHMS", dict(search.ALGORITHMS))
    search.register(_EveryOther())
    spec = load_spec(path)
    assert trial_points(spec) == [{"train.lr": 0.1}, {"train.lr": 0.3}, {"train.batch_size": 32}]
    assert trial_count(spec) == 3
    with pytest.raises(ValueError, match="registered already"):
        search.register(_EveryOther())
