"""Characters drawn by real font files: an offline many-class dataset of real images.

Few-shot transfer needs many source classes (the paper pre-trains on 64); ``glyphs`` draws
them, this dataset reads them, in the spirit of Omniglot: each class is a character (106 by
default: digits, Latin, and the Greek and Cyrillic letters that look like neither), and each
font file on the machine that draws every character is one "drawer" of all of them
(:mod:`trainables.data.fontfiles` finds and checks them). Debian's font packages give
215 such fonts in 47 families.

An image is the character's ink at ``font_size`` pixels per em (a fraction of the image
side), centred on its ink, drawn anti-aliased at :data:`OVERSAMPLE` times the image size and
box-filtered down. A glyph wider or taller than :data:`MAX_EXTENT` of the image is shrunk to
fit. Each font gives ``variants`` images of a character: the plain one, then copies scaled by
up to ``scale`` and shifted by up to ``shift`` image widths, drawn from ``seed``. Rendering is
deterministic on one machine; FreeType's rasteriser (its version goes into ``study.json``)
may differ by a grey level elsewhere.

The source test split holds out whole font families (seeded by ``data.split_seed``): the
training split never sees a test font or any of its family's weights and styles, so test
accuracy measures recognising the characters in a typeface never seen. The target pool holds
every font of the target classes.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainables.config import DataConfig
from trainables.data import fontfiles, preflight
from trainables.data._base import Dataset
from trainables.data._split import Pools, build_dataset

if TYPE_CHECKING:
    from PIL import ImageFont

OVERSAMPLE = 4  # drawn at this many times the image size, then box-filtered down
MAX_EXTENT = 0.9  # a glyph spans at most this fraction of the image side (else shrunk)


def load_fonts(config: DataConfig) -> Dataset:
    """Each of ``characters`` drawn by every font file under ``font_dir`` that draws them all,
    as ``(N, 1, image_size, image_size)`` images; class ``k`` is ``characters[k]``.

    The source test split is the fonts of a seeded choice of families, about
    ``test_fraction`` of the fonts (``data.split_seed``); the training split is the other
    fonts. Normalised with the statistics of the source classes' training split (the target
    pool gets the same constants). By default every class is a source class.
    Options (defaults): font_dir (/usr/share/fonts), characters (106), image_size (28),
    font_size (0.7), variants (1), shift (0.06), scale (0.1), seed (0), min_fonts (20),
    test_fraction (0.2).

    Raises:
        FileNotFoundError: when fewer than ``min_fonts`` fonts (or one family) draw them all;
            the message names the Debian packages to install.
    """
    opts = preflight.options(config)  # every value checked
    found = fontfiles.survey(opts["font_dir"], opts["characters"])
    problem = fontfiles.shortfall(found, min_fonts=opts["min_fonts"])
    if problem is not None:
        raise FileNotFoundError(problem)
    fraction, seed = opts["test_fraction"], config.split_seed
    held_out = held_out_families(found.fonts, fraction=fraction, seed=seed)
    test = np.array([f.family in held_out for f in found.fonts])  # (F,)
    images = render(found.fonts, opts)  # (F, K, V, 1, S, S) uint8, read-only
    train_x, train_y = _by_class(images[~test])  # fancy indexing copies
    test_x, test_y = _by_class(images[test])
    pools = Pools(train_x, train_y, test_x, test_y, class_names=list(opts["characters"]))
    notes = [
        f"{found.summary()}, under {found.root}",
        f"source test split: the {int(test.sum())} fonts of {len(held_out)} families held out "
        f"(data.split_seed={config.split_seed}): {', '.join(held_out)}",
    ]
    return build_dataset("fonts", pools, config, notes=notes)


def _by_class(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F, K, V, C, H, W)`` images to ``(K * F * V, C, H, W)``, class by class, and labels."""
    n_fonts, n_classes, n_variants, *shape = images.shape
    by_class = torch.from_numpy(images).transpose(0, 1).reshape(-1, *shape)  # (K*F*V, C, H, W)
    labels = torch.arange(n_classes).repeat_interleave(n_fonts * n_variants)  # (K * F * V,)
    return by_class, labels


def held_out_families(
    fonts: tuple[fontfiles.Font, ...], *, fraction: float, seed: int
) -> list[str]:
    """The families whose fonts form the test split, sorted: families in a seeded order,
    taken until they hold ``round(fraction * len(fonts))`` fonts (at least one family, and
    never every family)."""
    families = sorted({f.family for f in fonts})
    sizes = {name: sum(f.family == name for f in fonts) for name in families}
    wanted = max(1, round(fraction * len(fonts)))
    order = torch.randperm(len(families), generator=torch.Generator().manual_seed(seed))
    chosen: list[str] = []
    for i in order.tolist():
        if sum(sizes[c] for c in chosen) >= wanted or len(chosen) == len(families) - 1:
            break
        chosen.append(families[i])
    return sorted(chosen)


def render(fonts: tuple[fontfiles.Font, ...], opts: dict[str, Any]) -> np.ndarray:
    """Every font's images of every character, ``(F, K, V, 1, S, S)`` uint8 (white ink on
    black). Variant 0 is the plain drawing; the others are scaled by a factor uniform in
    ``1 ± scale`` and shifted by up to ``shift`` image widths on each axis, drawn from
    ``seed`` font by font, character by character. The last result is kept (read-only): the
    trials of a study that one process runs in turn render it once."""
    keys = ("characters", "image_size", "font_size", "variants", "shift", "scale", "seed")
    return _render(fonts, tuple(opts[k] for k in keys))


@functools.lru_cache(maxsize=1)
def _render(fonts: tuple[fontfiles.Font, ...], args: tuple[Any, ...]) -> np.ndarray:
    characters, size, font_size, variants, shift, scale, seed = args
    generator = torch.Generator().manual_seed(seed)
    jitter = torch.rand((len(fonts), len(characters), variants, 3), generator=generator)
    jitter = (2 * jitter - 1).double().numpy()  # (F, K, V, 3) in [-1, 1]: scale, dx, dy
    out = np.zeros((len(fonts), len(characters), variants, 1, size, size), dtype=np.uint8)
    for f, font in enumerate(fonts):
        plain = fontfiles.open_font(font.path, _pixels(font_size, size))
        for k, character in enumerate(characters):
            out[f, k, 0, 0] = draw(plain, character, size=size)
            for v in range(1, variants):
                grow, dx, dy = jitter[f, k, v]
                scaled = fontfiles.open_font(
                    font.path, _pixels(font_size * (1 + scale * grow), size)
                )
                out[f, k, v, 0] = draw(
                    scaled, character, size=size, offset=(shift * dx, shift * dy)
                )
    out.flags.writeable = False
    return out


def _pixels(em: float, size: int) -> int:
    """Pixels per em of the oversampled drawing, for ``em`` image sides per em."""
    return max(1, round(em * size * OVERSAMPLE))


def draw(
    font: ImageFont.FreeTypeFont,
    character: str,
    *,
    size: int,
    offset: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """One image ``(size, size)`` uint8: ``character`` drawn by ``font`` (opened at
    :data:`OVERSAMPLE` times the pixels per em wanted), its ink centred then moved by
    ``offset`` image sides (x, y), box-filtered down."""
    from PIL import Image

    big = size * OVERSAMPLE
    glyph = fontfiles.ink(font, character)
    canvas = Image.new("L", (big, big))
    if glyph is not None:
        limit = MAX_EXTENT * big
        if max(glyph.size) > limit:  # too big for the image: shrink to fit, keeping its shape
            ratio = limit / max(glyph.size)
            shrunk = (max(1, round(glyph.width * ratio)), max(1, round(glyph.height * ratio)))
            glyph = glyph.resize(shrunk, Image.Resampling.BOX)
        x = round((big - glyph.width) / 2 + offset[0] * big)
        y = round((big - glyph.height) / 2 + offset[1] * big)
        canvas.paste(glyph, (x, y))
    return np.asarray(canvas.reduce(OVERSAMPLE))
