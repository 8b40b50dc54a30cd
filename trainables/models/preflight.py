"""A model config checked without torch: its name's options, their values, and its width.

The factories call the same functions, so the driver refuses (``gcnc validate``) what a
trial would.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

STEMS = ("auto", "cifar", "imagenet")  # a ResNet's first layers (see models.resnet)

# Every model's options, with their defaults (``model.options``).
OPTIONS: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 2},
    "convnet": {"depth": 5, "batchnorm": True},
    "vgg11": {"pad_to": "auto"},
    "vgg13": {"pad_to": "auto"},
    "resnet18": {"stem": "auto"},
    "resnet50": {"stem": "auto"},
}


def options(model: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` over the model's defaults, each value checked.

    Raises:
        ValueError: an unknown option, or a value the model cannot take (naming both).
    """
    opts = parse_options(model, given, OPTIONS.get(model, {}))
    return {key: check_option(model, key, value) for key, value in opts.items()}


def check_option(model: str, key: str, value: Any) -> Any:
    """One option's value, checked (an unknown key is :func:`parse_options`'s to refuse)."""
    check = _CHECKS.get(key)
    return value if check is None else check(model, key, value)


def parse_options(
    model: str, options: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge ``options`` over ``defaults``; an unknown key raises ValueError listing the known."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"unknown option(s) {unknown} for model {model!r}; known: {known}")
    return {**defaults, **options}


def positive_int(model: str, key: str, value: Any) -> int:
    """``value`` if it is an int >= 1, else ValueError naming ``model`` and ``key``."""
    if not is_int(value) or value < 1:
        raise ValueError(f"model {model!r}: {key} must be a positive int; got {value!r}")
    return int(value)


def resolve_width(model: str, width: Any, default: int) -> int:
    """``width`` if given (it must be a positive int), else the model's ``default``."""
    return default if width is None else positive_int(model, "width", width)


def boolean(model: str, key: str, value: Any) -> bool:
    """``value`` if it is a bool, else ValueError naming ``model`` and ``key``."""
    if not isinstance(value, bool):
        raise ValueError(f"model {model!r}: {key} must be true or false; got {value!r}")
    return value


def choice(model: str, key: str, value: Any, allowed: Collection[str]) -> str:
    """``value`` if it is one of ``allowed``, else ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"model {model!r}: {key} must be one of {sorted(allowed)}; got {value!r}")
    return value


def _pad_to(model: str, key: str, value: Any) -> Any:
    """``"auto"``, ``None`` or a positive int (checked against the input size when built)."""
    if value == "auto" or value is None:
        return value
    return positive_int(model, key, value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS: dict[str, Callable[[str, str, Any], Any]] = {
    "depth": positive_int,
    "batchnorm": boolean,
    "stem": lambda model, key, value: choice(model, key, value, STEMS),
    "pad_to": _pad_to,
}
