"""Seeded stroke glyphs: an offline many-class dataset whose classes share their parts.

Few-shot transfer needs many source classes whose features carry over to the unseen ones
(the paper pre-trains on 64 classes). No such dataset ships offline, so ``glyphs`` draws
one, in the spirit of Omniglot: an alphabet of ``vocabulary`` line segments between points
of a 4x4 lattice, and each class a distinct set of ``strokes`` of them. An image of a class
is its strokes with each end point jittered, the whole glyph shifted, drawn with a random
pen width and anti-aliased, plus Gaussian pixel noise. Classes share strokes, so features
learnt on some classes describe the others.
"""

from __future__ import annotations

import torch

from trainables.config import DataConfig
from trainables.data import preflight
from trainables.data._base import Dataset
from trainables.data._split import generated_dataset

TEST_FRACTION = 0.2
LATTICE = preflight.GLYPH_LATTICE  # anchor points per side, over [MARGIN, 1 - MARGIN]
MARGIN = 0.15
PEN = (0.035, 0.07)  # half-width of a stroke, uniform in this range (image width = 1)


def load_glyphs(config: DataConfig) -> Dataset:
    """``n_classes`` glyph classes of ``n_per_class`` images ``(1, image_size, image_size)``.

    Everything is drawn from ``options.seed`` (the alphabet, the classes and the images), so
    the dataset does not change with ``config.split_seed``; the first 80 % of each class's
    images are the training split, the rest the test split. Pixels lie in [0, 1] and are
    normalised with the statistics of the source classes' training split (the target pool
    gets the same constants). By default every class is a source class; studies set
    ``data.source_classes`` / ``data.target_classes``.
    Options (defaults): n_classes (50), n_per_class (60), image_size (16), strokes (3),
    vocabulary (24), jitter (0.04) and shift (0.06) in image widths, noise (0.1), seed (0).
    """
    opts = preflight.options(config)  # every value checked
    n_classes, n_per_class, size = opts["n_classes"], opts["n_per_class"], opts["image_size"]
    strokes, vocabulary = opts["strokes"], opts["vocabulary"]
    jitter, shift, noise = opts["jitter"], opts["shift"], opts["noise"]
    generator = torch.Generator().manual_seed(opts["seed"])

    alphabet = _alphabet(vocabulary, generator)  # (V, 2, 2) segment end points
    classes = _classes(n_classes, vocabulary, strokes, generator)  # (K, S) stroke ids
    ends = alphabet[classes].unsqueeze(1).expand(-1, n_per_class, -1, -1, -1)  # (K, n, S, 2, 2)
    ends = ends + jitter * torch.randn(ends.shape, generator=generator)
    offset = shift * torch.randn((n_classes, n_per_class, 1, 1, 2), generator=generator)
    pen = torch.empty((n_classes, n_per_class, 1), dtype=torch.float32)
    pen.uniform_(*PEN, generator=generator)  # (K, n, 1)
    images = _draw(ends + offset, pen, size)  # (K, n, H, W) in [0, 1]
    images = images + noise * torch.randn(images.shape, generator=generator)
    images = images.clamp(0.0, 1.0).unsqueeze(2)  # (K, n, 1, H, W)
    n_train = n_per_class - max(1, round(TEST_FRACTION * n_per_class))  # >= 1 test image
    return generated_dataset("glyphs", images, config, n_train=n_train, class_prefix="glyph")


def _alphabet(vocabulary: int, generator: torch.Generator) -> torch.Tensor:
    """``vocabulary`` distinct segments between lattice points, ``(V, 2 ends, 2 coords)``."""
    axis = torch.linspace(MARGIN, 1.0 - MARGIN, LATTICE)
    points = torch.cartesian_prod(axis, axis)  # (L*L, 2)
    pairs = torch.combinations(torch.arange(len(points)), r=2)  # (L*L choose 2, 2)
    chosen = pairs[torch.randperm(len(pairs), generator=generator)[:vocabulary]]  # (V, 2)
    return points[chosen]  # (V, 2, 2)


def _classes(
    n_classes: int, vocabulary: int, strokes: int, generator: torch.Generator
) -> torch.Tensor:
    """``n_classes`` distinct sets of ``strokes`` stroke ids, ``(K, S)``, each set sorted."""
    seen: set[tuple[int, ...]] = set()
    classes: list[tuple[int, ...]] = []
    while len(classes) < n_classes:
        ids = tuple(sorted(torch.randperm(vocabulary, generator=generator)[:strokes].tolist()))
        if ids not in seen:
            seen.add(ids)
            classes.append(ids)
    return torch.tensor(classes, dtype=torch.int64)


def _draw(ends: torch.Tensor, pen: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased strokes: ``ends (..., S, 2, 2)`` and ``pen (..., 1)`` to ``(..., H, W)``.

    A pixel's ink is 1 within ``pen`` of a segment, falling linearly to 0 over one pixel;
    overlapping strokes take the maximum.
    """
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # (H,)
    grid = torch.cartesian_prod(centres, centres)  # (H*W, 2), (row, col) in image widths
    a, b = ends[..., 0, :].unsqueeze(-2), ends[..., 1, :].unsqueeze(-2)  # (..., S, 1, 2)
    ab = b - a
    t = ((grid - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)  # (..., S, H*W)
    nearest = a + t.clamp(0.0, 1.0).unsqueeze(-1) * ab  # (..., S, H*W, 2)
    distance = (grid - nearest).norm(dim=-1)  # (..., S, H*W)
    ink = (1.0 - (distance - pen.unsqueeze(-1)) * size).clamp(0.0, 1.0)  # (..., S, H*W)
    return ink.amax(dim=-2).unflatten(-1, (size, size))  # (..., H, W)
