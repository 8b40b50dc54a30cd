"""Optuna's TPE sampler learning from a bounded number of trials.

TPE fits one Parzen density to its good trials and one to the rest, and scores each
candidate against every trial of both, so its cost per suggestion grows with the study
(measured with ``benchmarks/bench_scale.py --suggestions``: 1.4 ms at 400 trials, 16 ms at
4,000). :class:`BoundedTPESampler` shows it at most ``history`` trials: the
:data:`BEST_KEPT` best finished ones and the most recent others. The good group is then
unchanged (Optuna's default gamma takes the best ``min(ceil(n / 10), 25)``), and the
density of the others follows where the search has been lately. With ``history`` or fewer
trials it is Optuna's sampler exactly: the same suggestions for the same seed.

Imported only where a TPE search runs (it imports Optuna); a module of its own so that Tune
can pickle the sampler with its searcher.
"""

from __future__ import annotations

import heapq
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

#: Of the trials shown, the best kept whatever their age (TPE's largest good group).
BEST_KEPT = 25


class BoundedTPESampler(optuna.samplers.TPESampler):
    """``TPESampler`` (constant liar) that learns from at most ``history`` trials."""

    def __init__(self, *, seed: int, history: int) -> None:
        super().__init__(seed=seed, constant_liar=True)
        self.history = history
        self._best = _Best(min(BEST_KEPT, history))

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(self._shown(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        shown = self._shown(study)
        return super().sample_independent(shown, trial, param_name, param_distribution)

    def _shown(self, study: optuna.Study) -> _Recent:
        return _Recent(study, self.history, self._best)


class _Best:
    """The best complete trials of a study, kept up to date by looking, at each call, only at
    the trials added since the last one and those then still unfinished."""

    def __init__(self, k: int) -> None:
        self.k, self.upto, self.unfinished = k, 0, set()
        self.heap: list[tuple[float, int]] = []  # (-key, number): the k smallest keys

    def numbers(self, trials: list[FrozenTrial], sign: float) -> set[int] | None:
        """The numbers of the best ``k`` complete trials of ``trials`` (all of the study's, in
        order); None where a trial's number is not its place (then scan them all)."""
        look = [*sorted(self.unfinished), *range(self.upto, len(trials))]
        self.unfinished = set()
        for n in look:
            t = trials[n]
            if t.number != n:
                return None
            if t.state == TrialState.COMPLETE:
                key = sign * t.value
                if len(self.heap) < self.k:
                    heapq.heappush(self.heap, (-key, n))
                elif key < -self.heap[0][0]:
                    heapq.heapreplace(self.heap, (-key, n))
            elif not t.state.is_finished():
                self.unfinished.add(n)
        self.upto = len(trials)
        return {n for _, n in self.heap}


class _Recent:
    """A study as the sampler reads it, its trials cut to the best and the most recent."""

    def __init__(self, study: optuna.Study, history: int, best: _Best) -> None:
        self._study, self._history, self._best = study, history, best

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Any = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        if len(trials) <= self._history:
            return trials
        maximize = self._study.direction == optuna.study.StudyDirection.MAXIMIZE
        every = self._study._get_trials(deepcopy=False, states=None, use_cache=False)
        best = None if deepcopy else self._best.numbers(every, -1.0 if maximize else 1.0)
        if best is None:
            return recent_and_best(trials, self._history, maximize=maximize)
        tail: list[FrozenTrial] = []
        others, i = 0, len(trials)
        while i > 0 and others + len(best) < self._history:
            i -= 1
            tail.append(trials[i])
            others += trials[i].number not in best
        start = trials[i].number if tail else len(every)
        older = [] if states is not None and TrialState.COMPLETE not in states else best
        return [every[n] for n in sorted(older) if n < start] + tail[::-1]


def recent_and_best(trials: list[FrozenTrial], history: int, *, maximize: bool) -> list:
    """``history`` of ``trials``, in their order: the :data:`BEST_KEPT` complete ones with
    the best values, and the most recent of the others."""
    sign = -1.0 if maximize else 1.0
    complete = TrialState.COMPLETE
    done = ((sign * t.value, i) for i, t in enumerate(trials) if t.state == complete)
    keep = {i for _, i in heapq.nsmallest(min(BEST_KEPT, history), done)}
    i = len(trials)
    while len(keep) < history and i > 0:
        i -= 1
        keep.add(i)
    return [trials[i] for i in sorted(keep)]
