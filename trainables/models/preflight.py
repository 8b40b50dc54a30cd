"""A model config checked without torch: its name's options, their values, and its width.

The factories call the same functions, so the driver refuses (``gcnc validate``) what a
trial would.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
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


# Every model's measurable layers (``metrics.layers``), as its ``blocks()`` names them.
_LAYERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "mlp": lambda opts: [f"fc{i + 1}" for i in range(opts["depth"])],
    "convnet": lambda opts: [f"conv{i + 1}" for i in range(opts["depth"])],
    "vgg11": lambda opts: [f"block{i + 1}" for i in range(5)],
    "vgg13": lambda opts: [f"block{i + 1}" for i in range(5)],
    "resnet18": lambda opts: [f"layer{i + 1}" for i in range(4)],
    "resnet50": lambda opts: [f"layer{i + 1}" for i in range(4)],
}


def layer_names(model: str, given: Mapping[str, Any]) -> list[str] | None:
    """The measurable layers of ``model`` with options ``given``, from the input to the
    embedding (the last); None for a model registered outside gcnc (its trial checks).

    Raises:
        ValueError: an option the model cannot take (as :func:`options`).
    """
    names = _LAYERS.get(model)
    return None if names is None else names(options(model, given))


def select_layers(names: Sequence[str], selection: str | Sequence[str]) -> list[int]:
    """The 1-based indices into ``names`` (a model's layers) of the layers ``selection``
    (``metrics.layers``) asks for, from the input: ``"last"`` (the embedding), ``"all"``,
    or a list of names.

    Raises:
        ValueError: a name the model does not have, naming the model's layers.
    """
    if selection == "last":
        return [len(names)]
    if selection == "all":
        return list(range(1, len(names) + 1))
    unknown = [name for name in selection if name not in names]
    if unknown:
        raise ValueError(f"the model has no layer {unknown[0]!r}; its layers: {', '.join(names)}")
    return sorted(names.index(name) + 1 for name in selection)


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
