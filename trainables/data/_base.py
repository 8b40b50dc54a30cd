"""The in-memory form every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainables.data.normalization import Normalization

__all__ = ["Dataset", "Normalization"]


@dataclass
class Dataset:
    """Tensors of one dataset, already normalised, split into source and target classes.

    Images are float32 ``(N, C, H, W)``; labels are int64 ``(N,)``. Source labels are
    re-indexed to ``0..n_source-1`` (the classifier's outputs); target labels to
    ``0..n_target-1``. ``source_classes`` / ``target_classes`` hold the original class ids,
    in the order of the new indices.
    """

    name: str
    train_x: torch.Tensor  # (N_train, C, H, W), source classes only
    train_y: torch.Tensor  # (N_train,)
    test_x: torch.Tensor  # (N_test, C, H, W), source classes only
    test_y: torch.Tensor  # (N_test,)
    class_names: list[str]  # names of all original classes, indexed by original id
    source_classes: list[int]
    normalization: Normalization
    target_x: torch.Tensor | None = None  # (N_target, C, H, W) pool for few-shot / target NC
    target_y: torch.Tensor | None = None
    target_classes: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "seeded split, not the official list"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.source_classes)

    def to(self, device: torch.device | str) -> Dataset:
        """Move every tensor to ``device`` (data lives on the trial's device)."""
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()
        }
        return Dataset(**moved)
