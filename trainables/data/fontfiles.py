"""The font files of the ``fonts`` dataset: found and checked without torch.

A font file is one "drawer" of every character of ``data.options.characters``, as in
Omniglot. It counts only if it draws each of them, and draws no two of them alike: a
character it lacks renders as its ``.notdef`` box (or nothing), and a homoglyph that escaped
the character list (Latin ``a`` and Greek ``α`` in an italic, say) renders twice the same.
Checked by rendering each character with Pillow's FreeType at :data:`CHECK_SIZE` and comparing
the bitmaps, so the check needs no font library beyond Pillow. A file that draws exactly
what an earlier one (in path order) draws is the same font twice (an OpenType and a TrueType
build, say) and is dropped.

Pillow is imported on first use: every ``gcnc`` command imports this module (through the
dataset registry's options), and most never look at a font.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image, ImageFont

DEFAULT_FONT_DIR = "/usr/share/fonts"
FONT_SUFFIXES = frozenset({".ttf", ".otf"})  # not .ttc collections, not Type 1 (.t1, .pfb)
CHECK_SIZE = 48  # pixels per em at which a font's characters are compared
NOT_A_CHARACTER = "\U0010fffd"  # private use: no font maps it, so it draws the .notdef glyph

# The default classes: characters of three scripts whose shapes differ. Greek and Cyrillic
# letters that look like a Latin letter, a digit or each other (Greek A, B, E, o, ν, ρ, κ,
# Cyrillic A, B, E, З ~ 3, Г ~ Γ, П ~ Π, Ф ~ Φ, ...) are left out, and so is Cyrillic's
# lower case, which mostly repeats its upper case smaller.
DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
GREEK = "ΓΔΘΛΞΠΣΦΨΩαβγδεζηθλμξπσςτφψω"
CYRILLIC = "БДЖИЙЛЦЧШЩЪЫЬЭЮЯ"
DEFAULT_CHARACTERS = DIGITS + LATIN + GREEK + CYRILLIC  # 106 classes

# Debian packages whose fonts draw every default character (bookworm: 92 MB installed, 215
# distinct fonts in 47 families). docs/datasets.md lists what each brings.
DEBIAN_PACKAGES = (
    "fonts-dejavu-core",
    "fonts-dejavu-extra",
    "fonts-liberation2",
    "fonts-freefont-ttf",
    "fonts-urw-base35",
    "fonts-croscore",
    "fonts-crosextra-carlito",
    "fonts-cmu",
    "fonts-linuxlibertine",
    "fonts-go",
    "fonts-ebgaramond",
    "fonts-open-sans",
    "fonts-roboto-unhinted",
    "fonts-vollkorn",
    "fonts-oldstandard",
    "fonts-hack",
    "fonts-firacode",
    "fonts-jetbrains-mono",
    "fonts-stix",
)
INSTALL = "apt-get install " + " ".join(DEBIAN_PACKAGES)


@dataclass(frozen=True)
class Font:
    """A font file that draws every character: where it is, and its family (the unit of the
    train/test split) and style, as its name table gives them."""

    path: Path  # absolute, as found (a link is not resolved)
    relative: str  # to the font folder, posix separators
    family: str
    style: str


@dataclass(frozen=True)
class FontSurvey:
    """The font files under ``root`` and those that draw every one of ``characters``.

    ``files``: font files found (``.ttf``/``.otf``); ``fonts``: those that draw every
    character distinctly, each once (sorted by path); ``duplicates``: files dropped because
    an earlier one draws the same.
    """

    root: Path
    characters: str
    files: int
    fonts: tuple[Font, ...]
    duplicates: int

    @property
    def families(self) -> list[str]:
        """The distinct families of :attr:`fonts`, sorted."""
        return sorted({f.family for f in self.fonts})

    def summary(self) -> str:
        """What was found, in words (``gcnc datasets``, the loader's notes)."""
        return (
            f"{len(self.fonts)} of {self.files} font files draw all {len(self.characters)} "
            f"characters, in {len(self.families)} families"
        )


def font_folder(font_dir: str) -> Path:
    """The absolute font folder of option ``font_dir`` (``~`` expanded)."""
    return Path(font_dir).expanduser().resolve()


def survey(font_dir: str, characters: str) -> FontSurvey:
    """The font files under ``font_dir`` (recursively, links followed) that draw every one of
    ``characters``. Each file's verdict is cached by its path, size and modification time."""
    root = font_folder(font_dir)
    paths = font_paths(root)
    fonts: list[Font] = []
    drawings: set[str] = set()
    duplicates = 0
    for path in paths:
        verdict = _checked(path, characters)
        if verdict is None:
            continue
        family, style, drawing = verdict
        if drawing in drawings:
            duplicates += 1
            continue
        drawings.add(drawing)
        fonts.append(Font(path, path.relative_to(root).as_posix(), family, style))
    return FontSurvey(root, characters, len(paths), tuple(fonts), duplicates)


def font_paths(root: Path) -> list[Path]:
    """The ``.ttf``/``.otf`` files under ``root``, sorted by their path relative to it."""
    if not root.is_dir():
        return []
    found = [
        Path(folder) / name
        for folder, _, names in os.walk(root, followlinks=True)
        for name in names
        if Path(name).suffix.lower() in FONT_SUFFIXES
    ]
    return sorted((p for p in found if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def need(found: FontSurvey, *, min_fonts: int) -> str | None:
    """What ``found`` lacks to make the dataset, in a few words; None: nothing."""
    if len(found.fonts) < min_fonts:
        return f"data.options.min_fonts needs {min_fonts}"
    if len(found.families) < 2:  # the test split holds out whole families
        return "the test split needs fonts of 2 families"
    return None


def shortfall(found: FontSurvey, *, min_fonts: int) -> str | None:
    """Why ``found`` cannot make the dataset, and the fix after the first ``"; "``; None when
    it can. One line, as ``gcnc validate`` prints it."""
    lacking = need(found, min_fonts=min_fonts)
    if lacking is None:
        return None
    where = found.root if found.files else f"{found.root} (no .ttf or .otf files there)"
    return (
        f"dataset 'fonts': only {len(found.fonts)} font files under {where} draw all "
        f"{len(found.characters)} characters of data.options.characters, in "
        f"{len(found.families)} families, and {lacking}; install Debian's fonts ({INSTALL}) "
        "or set data.options.font_dir to a folder of fonts that draw them"
    )


def check_characters(characters: str) -> str | None:
    """Why ``characters`` cannot be the classes (None: they can): fewer than two, a repeat,
    or a character that is no visible glyph (a space, a control or combining mark)."""
    if len(characters) < 2:
        return f"needs at least 2 characters (the classes); got {characters!r}"
    repeated = sorted({c for c in characters if characters.count(c) > 1})
    if repeated:
        return f"repeats {''.join(repeated)!r}: each character is one class"
    invisible = [c for c in characters if unicodedata.category(c)[0] in "CZM"]
    if invisible:
        names = ", ".join(f"U+{ord(c):04X}" for c in invisible[:3])
        return f"has characters that draw no glyph of their own ({names}): spaces, controls, marks"
    return None


def check_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The ``fonts`` options with each value checked (``gcnc validate``, the loader).

    Raises:
        trainables.data.preflight.DataConfigError: naming the option and what it must be.
    """
    from trainables.data.preflight import DataConfigError, int_option, non_negative  # cycle

    font_dir, characters = opts["font_dir"], opts["characters"]
    if not isinstance(font_dir, str) or not Path(font_dir).expanduser().is_absolute():
        raise DataConfigError(
            "data.options.font_dir",
            f"data.options.font_dir must be an absolute folder path (trials run in other "
            f"working folders); got {font_dir!r}",
        )
    if not isinstance(characters, str):
        raise DataConfigError(
            "data.options.characters",
            f"data.options.characters must be a string, one character a class; got {characters!r}",
        )
    problem = check_characters(characters)
    if problem is not None:
        raise DataConfigError("data.options.characters", f"data.options.characters {problem}")
    out = {
        "image_size": int_option(opts, "image_size", at_least=8),
        "variants": int_option(opts, "variants"),
        "seed": int_option(opts, "seed", at_least=0),
        "min_fonts": int_option(opts, "min_fonts", at_least=2),
    }
    floats = {k: non_negative(opts, k) for k in ("font_size", "shift", "scale", "test_fraction")}
    bounds = {
        "font_size": (floats["font_size"] > 0, "> 0 (pixels per em, a fraction of the side)"),
        "scale": (floats["scale"] < 1, "in [0, 1) (variants are scaled by 1 ± scale)"),
        "test_fraction": (0 < floats["test_fraction"] < 1, "in (0, 1) (the fonts tested)"),
    }
    for key, (ok, wanted) in bounds.items():
        if not ok:
            raise DataConfigError(
                f"data.options.{key}", f"data.options.{key} must be {wanted}; got {opts[key]!r}"
            )
    return opts | out | floats


# ---------------------------------------------------------------- checking one file

# A file's verdict by (resolved path, size, mtime, characters): (family, style, digest of its
# drawings), or None when it does not draw every character distinctly.
_verdicts: dict[tuple[str, int, int, str], tuple[str, str, str] | None] = {}


def _checked(path: Path, characters: str) -> tuple[str, str, str] | None:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, characters)
    if key not in _verdicts:
        _verdicts[key] = _check(path, characters)
    return _verdicts[key]


def _check(path: Path, characters: str) -> tuple[str, str, str] | None:
    try:
        font = open_font(path, CHECK_SIZE)
    except OSError:  # not a font FreeType reads
        return None
    notdef = _bitmap(font, NOT_A_CHARACTER)
    drawn: set[bytes] = set()
    digest = hashlib.sha256()
    for c in reversed(characters):  # the rarer scripts come last in the list: fail early
        bitmap = _bitmap(font, c)
        if bitmap is None or bitmap == notdef or bitmap in drawn:
            return None
        drawn.add(bitmap)
        digest.update(bitmap)
    family, style = font.getname()
    return family or path.stem, style or "", digest.hexdigest()


def _bitmap(font: ImageFont.FreeTypeFont, character: str) -> bytes | None:
    """The glyph's ink as bytes, with its size; None: no ink."""
    image = ink(font, character)
    return None if image is None else b"%d,%d:" % image.size + image.tobytes()


def open_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """``path`` at ``size`` pixels per em, laid out by Pillow's basic engine (the same on every
    machine: libraqm, where installed, would shape the text)."""
    from PIL import ImageFont

    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)


def ink(font: ImageFont.FreeTypeFont, character: str) -> Image.Image | None:
    """``character`` drawn by ``font`` (grayscale, anti-aliased, white on black), cropped to
    its ink; None when it leaves none."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(character)
    if right <= left or bottom <= top:
        return None
    image = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(image).text((-left, -top), character, font=font, fill=255)
    box = image.getbbox()
    return None if box is None else image.crop(box)
