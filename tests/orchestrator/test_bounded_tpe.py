"""The TPE sampler that learns from a bounded history: Optuna's own suggestions while the
study is within the bound; past it, the best trials and the most recent ones; pickled
with Tune's searcher."""

from __future__ import annotations

import math
import pickle

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from orchestrator.search._bounded_tpe import (
    BEST_KEPT,
    BoundedTPESampler,
    _Best,
    _Recent,
    recent_and_best,
)

SPACE = {
    "train.lr": FloatDistribution(1e-4, 1.0, log=True),
    "train.batch_size": IntDistribution(16, 512, log=True),
}


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _loss(trial) -> float:
    return (math.log10(trial.params["train.lr"]) + 1.5) ** 2 + trial.params[
        "train.batch_size"
    ] / 1e4


def _run(sampler, n: int, *, running_every: int = 0) -> list[dict]:
    """``n`` ask/tell rounds; every ``running_every``-th trial is left running (as trials
    still training when the next is proposed), so the constant liar counts it."""
    study = optuna.create_study(sampler=sampler)
    out = []
    for i in range(n):
        trial = study.ask(SPACE)
        out.append(dict(trial.params))
        if not (running_every and i % running_every == 0):
            study.tell(trial, _loss(trial))
    return out


def test_within_its_history_it_proposes_what_optuna_s_tpe_proposes():
    ours = _run(BoundedTPESampler(seed=3, history=100), 60, running_every=7)
    optunas = _run(optuna.samplers.TPESampler(seed=3, constant_liar=True), 60, running_every=7)
    assert ours == optunas


def test_past_its_history_it_learns_from_the_best_and_the_most_recent():
    sampler = BoundedTPESampler(seed=0, history=40)
    study = optuna.create_study(sampler=sampler)
    shown: list[int] = []
    real = optuna.samplers.TPESampler._sample

    def spy(self, study_view, trial, space):
        shown.append(len(study_view._get_trials(deepcopy=False, states=None)))
        return real(self, study_view, trial, space)

    optuna.samplers.TPESampler._sample = spy
    try:
        for _ in range(120):
            trial = study.ask(SPACE)
            study.tell(trial, _loss(trial))
    finally:
        optuna.samplers.TPESampler._sample = real
    assert max(shown) == 40 and len(study.trials) == 120
    best = sorted(study.trials, key=lambda t: t.value)[0].params["train.lr"]
    assert -2.5 < math.log10(best) < -0.5  # it still finds the good region (lr ≈ 10^-1.5)


def _trials(values: list[float | None]) -> list:
    out = []
    for i, v in enumerate(values):
        state = TrialState.RUNNING if v is None else TrialState.COMPLETE
        t = optuna.trial.create_trial(
            state=state, value=v, params={"x": float(i)},
            distributions={"x": FloatDistribution(0, 1e6)},
        )  # fmt: skip
        t.number = i
        out.append(t)
    return out


def test_the_trials_kept_are_the_best_complete_ones_then_the_latest_in_order():
    values = [float(v) for v in range(100, 0, -1)]  # the latest are the best
    values[3], values[10] = -5.0, -1.0  # two old ones are better still
    values[95] = None  # running: recent, never among the best
    trials = _trials(values)
    for maximize in (False, True):
        kept = recent_and_best(trials, 30, maximize=maximize)
        numbers = [t.number for t in kept]
        assert numbers == sorted(numbers) and len(set(numbers)) == 30
        complete = [t for t in trials if t.value is not None]
        ranked = sorted(complete, key=lambda t: -t.value if maximize else t.value)
        best = {t.number for t in ranked[:BEST_KEPT]}
        assert best <= set(numbers)
        others = [n for n in numbers if n not in best]
        left_out = set(range(100)) - set(numbers)
        assert others and max(left_out) < min(others)  # the others are the most recent
    assert {3, 10, 95} <= {t.number for t in recent_and_best(trials, 30, maximize=False)}
    assert recent_and_best(trials[:20], 30, maximize=False) == trials[:20]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_kept_trials_followed_as_the_study_grows_are_those_a_full_scan_keeps(direction):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5), direction=direction)
    view = _Recent(study, 40, _Best(BEST_KEPT))
    running = []
    for i in range(150):
        trial = study.ask(SPACE)
        running.append(trial)
        if i % 3:  # some trials end later, out of order: the constant liar's running ones
            done = running.pop(0 if i % 2 else -1)
            study.tell(done, _loss(done))
        for states in (None, (TrialState.COMPLETE, TrialState.PRUNED),
                       (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)):  # fmt: skip
            every = study._get_trials(deepcopy=False, states=states)
            shown = view._get_trials(deepcopy=False, states=states, use_cache=False)
            want = recent_and_best(every, 40, maximize=direction == "maximize")
            assert [t.number for t in shown] == [t.number for t in want]


def test_the_sampler_survives_pickling_as_tune_snapshots_its_searcher():
    sampler = BoundedTPESampler(seed=1, history=50)
    study = optuna.create_study(sampler=sampler)
    for _ in range(15):
        trial = study.ask(SPACE)
        study.tell(trial, _loss(trial))
    restored = pickle.loads(pickle.dumps(study))
    assert isinstance(restored.sampler, BoundedTPESampler) and restored.sampler.history == 50
    assert restored.ask(SPACE).params.keys() == SPACE.keys()
