"""A trial's point (the dotted keys it changes) applied to the study's base config."""

from __future__ import annotations

import copy
from typing import Any

from trainables.config import TrialConfig
from trainables.overrides import get_dotted, has_dotted, set_dotted


def trial_config(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``point`` applied, validated and normalised (``1`` becomes ``1.0``...).

    Raises:
        ValueError: a key that runs into a value instead of a table.
        pydantic.ValidationError: a bad value for the trial config.
    """
    config = copy.deepcopy(base)
    for key, value in point.items():
        set_dotted(config, key, copy.deepcopy(value))
    return TrialConfig.from_dict(config).model_dump(mode="json")


def in_base(base: dict[str, Any], key: str, value: Any) -> bool:
    """Whether ``base`` already holds ``value`` at the dotted ``key`` (``True`` is not ``1``)."""
    if not has_dotted(base, key):
        return False
    held = get_dotted(base, key)
    return held == value and isinstance(held, bool) == isinstance(value, bool)


def freeze(value: Any) -> Any:
    """``value`` made hashable: lists as tuples, dicts as sorted item tuples."""
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value
