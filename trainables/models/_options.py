"""What the model factories share: their signature and the check of an input shape (their
options: :mod:`trainables.models.preflight`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from trainables.models._base import EmbeddingClassifier
from trainables.models.preflight import is_int


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
    if shape is None or len(shape) != 3 or not all(is_int(s) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be three positive ints (C, H, W); got {input_shape!r}")
    c, h, w = (int(s) for s in shape)
    if w in (1, 3) and c > 4 and h > 4:
        raise ValueError(
            f"input_shape must be (C, H, W); got {shape}, which looks like (H, W, C): "
            f"use {(w, c, h)}"
        )
    return c, h, w
