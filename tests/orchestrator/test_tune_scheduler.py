"""The next trial Tune starts is chosen among live trials only, in Tune's own order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from ray.tune.experiment import Trial

from orchestrator.cluster import tuner


@dataclass(eq=False)
class FakeTrial:
    trial_id: str
    status: str


class Controller:
    """Live trials only: asking for every trial of the experiment fails the test."""

    def __init__(self, live: list[FakeTrial]) -> None:
        self.live = set(live)

    def get_live_trials(self) -> set[FakeTrial]:
        return self.live

    def get_trials(self) -> list[FakeTrial]:
        raise AssertionError("looked through every trial")


@pytest.mark.parametrize("scheduler", [tuner._FIFO(), tuner._ASHA(metric="m", mode="min")])
def test_the_earliest_pending_trial_then_the_earliest_paused_one(scheduler):
    t = {n: FakeTrial(f"ab12c_{n:05d}", s) for n, s in [
        (3, Trial.PENDING), (11, Trial.PENDING), (2, Trial.RUNNING), (1, Trial.PAUSED),
        (12, Trial.PAUSED)]}  # fmt: skip
    assert scheduler.choose_trial_to_run(Controller(list(t.values()))) is t[3]
    assert scheduler.choose_trial_to_run(Controller([t[2], t[12], t[1]])) is t[1]
    assert scheduler.choose_trial_to_run(Controller([t[2]])) is None
    # counters past five digits keep their order (numbers, not text)
    late = [FakeTrial("ab12c_100000", Trial.PENDING), FakeTrial("ab12c_99999", Trial.PENDING)]
    assert scheduler.choose_trial_to_run(Controller(late)) is late[1]
