"""What a search algorithm is: how a study's trials are chosen, up front or while it runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from studyfiles import InputError
from studyfiles.schema import check_metric

if TYPE_CHECKING:  # type hints only: the spec's models never import the algorithms
    from orchestrator.spec import StudySpec


class SearchAlgorithm(ABC):
    """One way of choosing the trials of a study.

    An algorithm gives every trial's *point* (the dotted keys a trial changes in the study's
    base config, e.g. ``{"train.lr": 0.01, "train.seed": 1}``) up front, or none and an
    Optuna sampler that proposes them while the study runs.
    """

    name: str
    #: whether the points are proposed while the study runs (the runner then snapshots
    #: its state often, so that a killed run forgets few proposals)
    proposes: bool = False

    @abstractmethod
    def points(self, spec: StudySpec) -> list[dict[str, Any]] | None:
        """Every trial's point in run order, or None where a sampler proposes them."""

    def count(self, spec: StudySpec) -> int:
        """How many trials the study runs in all."""
        return len(self.points(spec) or [])

    def check(self, spec: StudySpec) -> None:  # noqa: B027 (a hook: most need no more checks)
        """Settings that cannot work; raises :class:`~studyfiles.InputError`."""

    def points_to_check(self, spec: StudySpec) -> list[dict[str, Any]]:
        """Points whose trial configs stand for every trial's (each is validated)."""
        return self.points(spec) or []

    def sampler(self, spec: StudySpec) -> Any:
        """The Optuna sampler that proposes the points (None: they are all given)."""
        return None


class SpaceSearch(SearchAlgorithm):
    """A search over ``[search.space]`` with a metric, a mode and a budget."""

    needs_metric = False  # whether the algorithm learns from the metric (else: optional)

    def check(self, spec: StudySpec) -> None:
        search = spec.search
        assert search is not None
        if not search.space:
            raise InputError(
                "search.space", "empty", "add e.g. train.lr = {loguniform = [1e-3, 0.1]}"
            )
        if self.needs_metric:
            for name in ("metric", "mode"):
                if getattr(search, name) is None:
                    hint = (
                        'e.g. metric = "test_acc"' if name == "metric" else 'mode = "max" or "min"'
                    )
                    raise InputError(f"search.{name}", f"required for {self.name}", hint)
        if search.metric is not None:
            check_metric("search.metric", search.metric)

    def points_to_check(self, spec: StudySpec) -> list[dict[str, Any]]:
        """Each edge of each dimension on its own (the values a sampler may reach)."""
        assert spec.search is not None
        return [{k: v} for k, d in spec.search.space.items() for v in d.edge_values()]


class OptunaSearch(SpaceSearch):
    """A search whose points an Optuna sampler proposes, learning from the metric."""

    proposes = True
    needs_metric = True

    def points(self, spec: StudySpec) -> None:
        return None

    def check(self, spec: StudySpec) -> None:
        super().check(spec)
        assert spec.search is not None
        for key, dist in spec.search.space.items():
            if dist.kind == "choice" and any(isinstance(v, list | dict) for v in dist.choice or ()):
                raise InputError(
                    f"search.space.{key}",
                    "Optuna choices must be scalars",
                    "use numbers, strings or booleans",
                )

    def optuna_space(self, spec: StudySpec) -> dict[str, Any]:
        """The search space as Optuna distributions (keys stay dotted)."""
        import optuna.distributions as od

        assert spec.search is not None
        out: dict[str, Any] = {}
        for key, dist in spec.search.space.items():
            if dist.kind == "choice":
                out[key] = od.CategoricalDistribution(dist.choice or [])
                continue
            low, high = dist.bounds
            log = dist.kind.startswith("log")
            if dist.kind in ("integer", "log_integer"):
                out[key] = od.IntDistribution(int(low), int(high), log=log)
            else:
                out[key] = od.FloatDistribution(low, high, log=log)
        return out
