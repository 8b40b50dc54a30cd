"""The ``fonts`` dataset on this machine's DejaVu fonts: classes, images, determinism, which
font files count, the family split, provenance, and what preflight refuses."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import trainables.data.fonts as fonts_module
from orchestrator.cli import main
from trainables.config import DataConfig
from trainables.data import describe, fingerprint, fontfiles, load_dataset, preflight

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
# Debian's fonts-dejavu-core: three families (DejaVu Sans, DejaVu Serif, DejaVu Sans Mono).
CORE = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
        "DejaVuSansMono.ttf")  # fmt: skip
CHARACTERS = "AXxIWБДψ"  # Latin, Cyrillic, Greek: every DejaVu font draws them
# fontconfig's charsets (fc-list ':charset=0x5d0'), read independently of the check under
# test: Hebrew alef is in DejaVu Sans, not in DejaVu Serif or DejaVu Sans Mono.
ONLY_SANS = "א"


@pytest.fixture
def dejavu() -> dict[str, Path]:
    paths = {name: DEJAVU / name for name in CORE}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        pytest.skip(f"no usable fonts: {', '.join(missing)} not in {DEJAVU} (fonts-dejavu-core)")
    return paths


def font_dir(tmp_path: Path, dejavu: dict[str, Path], *names: str) -> str:
    """A folder of links to the DejaVu files ``names`` (all of them by default)."""
    folder = tmp_path / "fonts"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names or CORE:
        (folder / name).symlink_to(dejavu[name])
    return str(folder)


def config(folder: str, **fields) -> DataConfig:
    options = {"font_dir": folder, "characters": CHARACTERS, "image_size": 16, "min_fonts": 2}
    return DataConfig(name="fonts", options=options | fields.pop("options", {}), **fields)


def pixels(x: torch.Tensor, ds) -> np.ndarray:
    """Normalised images back to pixels in [0, 1]: ``(N, H, W)``."""
    mean, std = ds.normalization.mean[0], ds.normalization.std[0]
    return (x[:, 0].double() * std + mean).numpy()


def test_a_class_is_a_character_and_each_font_draws_one_image_of_each(tmp_path, dejavu):
    ds = load_dataset(config(font_dir(tmp_path, dejavu), target_classes=[6, 7]))
    assert ds.class_names == list(CHARACTERS) and ds.input_shape == (1, 16, 16)
    assert ds.source_classes == [0, 1, 2, 3, 4, 5] and ds.target_classes == [6, 7]
    train, test = torch.bincount(ds.train_y), torch.bincount(ds.test_y)
    assert train.tolist() == [int(train[0])] * 6 and test.tolist() == [int(test[0])] * 6
    assert int(train[0]) + int(test[0]) == len(CORE)  # each font is in one split
    assert torch.bincount(ds.target_y).tolist() == [len(CORE)] * 2  # the pool: every font
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    assert abs(float(ds.train_x.mean())) < 1e-5  # fitted on the source training images


def test_the_images_are_ink_centred_at_the_fonts_own_size(tmp_path, dejavu):
    folder = font_dir(tmp_path, dejavu, "DejaVuSans.ttf", "DejaVuSerif.ttf")
    ds = load_dataset(config(folder, source_classes=list(range(8))))
    images = np.concatenate([pixels(ds.train_x, ds), pixels(ds.test_x, ds)])  # (16, 16, 16)
    labels = torch.cat([ds.train_y, ds.test_y]).numpy()
    assert images.min() >= -1e-6 and images.max() <= 1 + 1e-6
    rows, cols = np.arange(16) + 0.5, np.arange(16) + 0.5
    for image in images:
        ink = image.sum()
        assert ink > 1.0  # every image shows its character
        centre = (rows @ image.sum(1) / ink, cols @ image.sum(0) / ink)
        assert np.allclose(centre, 8.0, atol=1.5)  # centred on its ink (Б's bowl pulls it)

    def height(character: str) -> float:
        return np.mean(
            [(im.max(1) > 0.5).sum() for im in images[labels == CHARACTERS.index(character)]]
        )

    def width(character: str) -> float:
        return np.mean(
            [(im.max(0) > 0.5).sum() for im in images[labels == CHARACTERS.index(character)]]
        )

    assert height("x") < height("X")  # not scaled to fill the image: case stays visible
    assert width("I") < width("W")


def test_two_loads_are_bit_identical_and_the_seed_moves_only_the_variants(tmp_path, dejavu):
    folder = font_dir(tmp_path, dejavu)
    cfg = config(folder, target_classes=[7], options={"variants": 3})
    first = load_dataset(cfg)
    fonts_module._render.cache_clear()  # drawn again, not served from the cache
    second = load_dataset(cfg)
    for key in ("train_x", "train_y", "test_x", "test_y", "target_x", "target_y"):
        assert torch.equal(getattr(first, key), getattr(second, key)), key
    found = fontfiles.survey(folder, CHARACTERS)
    opts = preflight.options(cfg)
    drawn = fonts_module.render(found.fonts, opts)  # (F, K, V, 1, S, S)
    plain = fonts_module.render(found.fonts, opts | {"variants": 1})
    reseeded = fonts_module.render(found.fonts, opts | {"seed": 1})
    assert np.array_equal(drawn[:, :, :1], plain)  # variant 0: the font's own drawing
    assert np.array_equal(reseeded[:, :, 0], drawn[:, :, 0])
    assert not np.array_equal(reseeded[:, :, 1:], drawn[:, :, 1:])
    assert not np.array_equal(drawn[:, :, 1], drawn[:, :, 0])  # shifted and scaled


def test_the_test_split_holds_out_whole_font_families(tmp_path, dejavu):
    folder = font_dir(tmp_path, dejavu)
    found = fontfiles.survey(folder, CHARACTERS)
    assert found.families == ["DejaVu Sans", "DejaVu Sans Mono", "DejaVu Serif"]
    for seed in range(4):
        held_out = fonts_module.held_out_families(found.fonts, fraction=0.2, seed=seed)
        assert len(held_out) == 1  # 1 font wanted: the first family in the seeded order
        ds = load_dataset(config(folder, split_seed=seed))
        assert f"held out (data.split_seed={seed}): {held_out[0]}" in ds.notes[1]
        n_test = sum(f.family == held_out[0] for f in found.fonts)
        assert torch.bincount(ds.test_y).tolist() == [n_test] * len(CHARACTERS)


def test_families_are_held_out_until_the_fraction_is_reached_never_all():
    fonts = tuple(
        fontfiles.Font(Path(f"/f/{family}{i}.ttf"), f"{family}{i}.ttf", family, "")
        for family, n in (("a", 1), ("b", 2), ("c", 3), ("d", 4))
        for i in range(n)
    )
    choices = set()
    for seed in range(20):
        held_out = fonts_module.held_out_families(fonts, fraction=0.3, seed=seed)
        assert held_out == fonts_module.held_out_families(fonts, fraction=0.3, seed=seed)
        n_test = sum(f.family in held_out for f in fonts)
        assert n_test >= 3 and n_test - 4 < 3  # reached, by at most one family too many
        choices.add(tuple(held_out))
        assert fonts_module.held_out_families(fonts, fraction=0.99, seed=seed) != [
            "a",
            "b",
            "c",
            "d",
        ]
    assert len(choices) > 2  # the seed chooses


def test_a_font_counts_only_if_it_draws_every_character(tmp_path, dejavu):
    folder = font_dir(tmp_path, dejavu)
    with_alef = fontfiles.survey(folder, CHARACTERS + ONLY_SANS)
    assert [f.relative for f in with_alef.fonts] == ["DejaVuSans-Bold.ttf", "DejaVuSans.ttf"]
    assert with_alef.files == len(CORE)
    assert fontfiles.survey(folder, "AB中").fonts == ()  # DejaVu has no CJK ideographs


def test_a_font_that_draws_two_characters_alike_does_not_count(tmp_path, dejavu):
    folder = font_dir(tmp_path, dejavu)
    assert len(fontfiles.survey(folder, "AB\u03a9").fonts) == len(CORE)
    assert fontfiles.survey(folder, "AB\u03a9\u2126").fonts == ()  # Greek Omega, Ohm sign


def test_the_same_font_twice_counts_once(tmp_path, dejavu):
    folder = Path(font_dir(tmp_path, dejavu, "DejaVuSans.ttf", "DejaVuSerif.ttf"))
    shutil.copy(dejavu["DejaVuSerif.ttf"], folder / "copy-of-serif.ttf")
    found = fontfiles.survey(str(folder), CHARACTERS)
    assert [f.relative for f in found.fonts] == ["DejaVuSans.ttf", "DejaVuSerif.ttf"]
    assert found.duplicates == 1 and found.files == 3


def test_provenance_names_every_font_file_and_changes_with_the_font_set(tmp_path, dejavu):
    small = font_dir(tmp_path / "a", dejavu, "DejaVuSans.ttf", "DejaVuSerif.ttf")
    large = font_dir(
        tmp_path / "b", dejavu, "DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"
    )

    def files(folder: str) -> dict:
        found = fingerprint.data_files(config(folder))
        return fingerprint.files_record(found, fingerprint.hash_all(found.paths()))

    a, b = files(small), files(large)
    assert a["root"] == str(Path(small).resolve()) and a["present"]
    assert [f["path"] for f in a["files"]] == ["DejaVuSans.ttf", "DejaVuSerif.ttf"]
    assert [f["path"] for f in b["files"]] == [
        "DejaVuSans.ttf",
        "DejaVuSansMono.ttf",
        "DejaVuSerif.ttf",
    ]
    sans = dejavu["DejaVuSans.ttf"]
    assert a["files"][0]["size"] == sans.stat().st_size
    assert a["files"][0]["sha256"] == fingerprint.sha256_file(sans).sha256
    (record,) = describe.dataset_records([config(large).model_dump()])
    assert record["problem"] is None and record["files"]["files"] == b["files"]
    assert record["notes"][0].startswith("3 of 3 font files draw all 8 characters, in 3 families")
    assert record["generator"]["options"]["characters"] == CHARACTERS
    assert record["generator"]["seed_key"] == "data.options.seed"
    assert (
        record["generator"]["package"].startswith("Pillow ")
        and "FreeType" in record["generator"]["package"]
    )
    assert record["normalization"]["fitted_on"].startswith("fitted")


@pytest.mark.parametrize(
    ("options", "field", "says"),
    [
        ({"image_size": 4}, "image_size", "an int >= 8"),
        ({"variants": 0}, "variants", "a positive int"),
        ({"min_fonts": 1}, "min_fonts", "an int >= 2"),
        ({"font_size": 0}, "font_size", "> 0"),
        ({"scale": 1.0}, "scale", "in [0, 1)"),
        ({"test_fraction": 1}, "test_fraction", "in (0, 1)"),
        ({"shift": -0.1}, "shift", "a number >= 0"),
        ({"characters": "ABA"}, "characters", "repeats 'A'"),
        ({"characters": "A"}, "characters", "at least 2 characters"),
        ({"characters": "A B"}, "characters", "U+0020"),
        ({"characters": 12}, "characters", "must be a string"),
        ({"font_dir": "fonts"}, "font_dir", "an absolute folder path"),
        ({"size": 16}, "size", "unknown data.options ['size']"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options, field, says):
    with pytest.raises(preflight.DataConfigError) as refused:
        preflight.check(DataConfig(name="fonts", options=options))
    assert refused.value.field == f"data.options.{field}"
    assert says in str(refused.value)


def test_too_few_fonts_is_refused_in_one_line_naming_the_packages(tmp_path, dejavu):
    folder = font_dir(tmp_path, dejavu, "DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
    with pytest.raises(preflight.DataConfigError) as refused:
        preflight.check(config(folder))  # one family: nothing to hold out as a test split
    message = str(refused.value)
    assert refused.value.field == "data.options.font_dir" and "\n" not in message
    assert "only 2 font files" in message and "needs fonts of 2 families" in message
    assert f"apt-get install {' '.join(fontfiles.DEBIAN_PACKAGES)}" in message
    with pytest.raises(FileNotFoundError, match="apt-get install fonts-dejavu-core"):
        load_dataset(config(folder))
    many = config(folder, options={"min_fonts": 20})
    assert "and data.options.min_fonts needs 20;" in preflight.files_missing(many)


def test_validate_refuses_a_study_on_a_machine_without_the_fonts(tmp_path, capsys):
    empty = tmp_path / "no-fonts"
    empty.mkdir()
    study = tmp_path / "study.toml"
    study.write_text(
        f'name = "f"\n[data]\nname = "fonts"\noptions = {{ font_dir = "{empty}" }}\n'
        '[model]\nname = "mlp"\n[train]\nepochs = 1\n'
    )
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("gcnc: error: data.options.font_dir: dataset 'fonts': only 0 font files")
    assert f"{empty} (no .ttf or .otf files there)" in err and "apt-get install fonts-" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-fonts", "study.toml"]


def test_the_default_characters_are_106_distinct_classes():
    characters = fontfiles.DEFAULT_CHARACTERS
    assert len(characters) == 106 and fontfiles.check_characters(characters) is None
    cfg = DataConfig(name="fonts")
    assert preflight.n_classes("fonts", preflight.options(cfg)) == 106


def test_ci_and_the_docs_install_the_packages_the_error_names():
    root = Path(__file__).resolve().parents[2]
    ci = set(re.findall(r"\bfonts-[a-z0-9-]+", (root / ".ci" / "run").read_text()))
    docs = (root / "docs" / "datasets.md").read_text()
    install = docs[docs.index("apt-get install --no-install-recommends fonts-") :]
    install = install[: install.index("```")]
    assert ci == set(fontfiles.DEBIAN_PACKAGES)
    assert set(re.findall(r"\bfonts-[a-z0-9-]+", install)) == ci
