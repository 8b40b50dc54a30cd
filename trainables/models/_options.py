"""Checks shared by the model factories: the factory signature, input shapes and options."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from trainables.models._base import EmbeddingClassifier


class ModelFactory(Protocol):
    """What the registry holds: builds one model for a given input shape and class count."""

    def __call__(
        self,
        input_shape: tuple[int, int, int],
        *,
        num_classes: int,
        width: int | None,
        options: Mapping[str, Any],
    ) -> EmbeddingClassifier: ...


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """Return ``input_shape`` as ``(C, H, W)`` ints, or raise ValueError saying what is wrong."""
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(_is_int(s) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be three positive ints (C, H, W); got {input_shape!r}")
    c, h, w = (int(s) for s in shape)
    if w in (1, 3) and c > 4 and h > 4:
        raise ValueError(
            f"input_shape must be (C, H, W); got {shape}, which looks like (H, W, C): "
            f"use {(w, c, h)}"
        )
    return c, h, w


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
    if not _is_int(value) or value < 1:
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
