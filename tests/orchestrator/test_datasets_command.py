"""``gcnc datasets``: one line per registered dataset, its classes, its image shape, and
whether its files are on this machine, found where its loader looks (and without torch)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import fabricate  # tests/fixtures: dataset files in the real formats
import pytest
from gcnc_testkit import fresh_python

from orchestrator.cli import main
from trainables.config import DataConfig
from trainables.data import DATASETS, preflight

# What docs/datasets.md says of each dataset, at its default options.
DOCUMENTED = {
    "digits": ("10 classes", "1×8×8"),
    "mnist": ("10 classes", "1×28×28"),
    "fashion_mnist": ("10 classes", "1×28×28"),
    "cifar10": ("10 classes", "3×32×32"),
    "cifar100": ("100 classes", "3×32×32"),
    "cifar_fs": ("100 classes", "3×32×32"),
    "mini_imagenet": ("100 classes", "3×84×84 (image_size)"),
    "glyphs": ("50 classes (n_classes)", "1×16×16 (image_size)"),
    "fonts": ("106 classes (characters)", "1×28×28 (image_size)"),
    "synthetic": ("10 classes (n_classes)", "1×8×8 (channels, image_size)"),
}


@pytest.fixture
def no_system_files(tmp_path, monkeypatch) -> Path:
    """Debian's Fashion-MNIST folder moved to an empty place, so this machine's copy (if
    any) does not count."""
    folder = tmp_path / "no-debian"
    monkeypatch.setattr(preflight, "DEBIAN_FASHION_MNIST", folder)
    return folder


def _lines(capsys, *args: str) -> dict[str, list[str]]:
    """``gcnc datasets ARGS``' cells (split at runs of 2+ spaces), by dataset name."""
    assert main(["datasets", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [re.split(r" {2,}", line) for line in lines]
    names = [c[0] for c in cells]
    assert len(set(names)) == len(names), f"a dataset listed twice: {names}"
    return {c[0]: c[1:] for c in cells}


def _json(capsys, *args: str) -> dict[str, dict]:
    assert main(["datasets", "--json", *args]) == 0
    return {e["name"]: e for e in json.loads(capsys.readouterr().out)}


def test_every_registered_dataset_is_listed_once_with_its_classes_and_shape(capsys, tmp_path):
    cells = _lines(capsys, "--data-root", str(tmp_path))
    assert sorted(cells) == DATASETS.names()
    for name, (classes, shape) in DOCUMENTED.items():
        assert cells[name][:2] == [classes, shape], name
    for name, (_, _, files, _) in cells.items():  # a dataset added later declares them too
        assert files in ("present", "missing", "generated"), f"{name}: {files}"


def test_the_lines_are_aligned_in_columns(capsys, tmp_path):
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = {m.start() for line in lines if (m := re.search(r"present|missing|generated", line))}
    assert len(starts) == 1, lines


def test_fabricated_files_are_present_and_the_others_missing(capsys, tmp_path, no_system_files):
    root = (tmp_path / "data").resolve()
    fabricate.cifar10(root)
    fabricate.mnist(root / "MNIST" / "raw", gz=True)
    fabricate.mini_imagenet_pickles(root, per_class=1, size=8)
    entries = _json(capsys, "--data-root", str(root))
    expected = {
        "cifar10": ("present", [root / "cifar-10-batches-py"]),
        "mnist": ("present", [root / "MNIST" / "raw"]),
        "mini_imagenet": ("present", [root]),
        "cifar100": ("missing", [root / "cifar-100-python"]),
        "cifar_fs": ("missing", [root / "cifar-100-python"]),
        "fashion_mnist": ("missing", [root / "FashionMNIST" / "raw", no_system_files]),
        "glyphs": ("generated", []),
        "synthetic": ("generated", []),
    }
    for name, (files, where) in expected.items():
        assert (entries[name]["files"], entries[name]["where"]) == (files, list(map(str, where)))
    for name in preflight.NEEDS_FILES:  # as `gcnc run`'s check sees them, and the loaders
        refused = preflight.files_missing(DataConfig(name=name, data_root=str(root)))
        assert (refused is None) == (entries[name]["files"] == "present"), name
    line = _lines(capsys, "--data-root", str(root))["cifar100"]
    assert line[2:] == ["missing", f"(looked in {root / 'cifar-100-python'})"]


def test_debian_fashion_mnist_files_count_without_a_data_root(capsys, no_system_files):
    fabricate.mnist(no_system_files, gz=True)
    assert _lines(capsys)["fashion_mnist"][2:] == ["present", f"(found in {no_system_files})"]


def test_fonts_are_counted_in_their_font_folder_and_missing_says_how_many(
    capsys, tmp_path, monkeypatch
):
    dejavu = Path("/usr/share/fonts/truetype/dejavu")
    names = ("DejaVuSans.ttf", "DejaVuSerif.ttf")  # Debian's fonts-dejavu-core
    if not all((dejavu / n).is_file() for n in names):
        pytest.skip(f"no usable fonts: {', '.join(names)} not in {dejavu}")
    folder = tmp_path / "fonts"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(dejavu / name)
    defaults = preflight.OPTIONS["fonts"]  # where the listing looks: the default options
    monkeypatch.setitem(defaults, "font_dir", str(folder))
    monkeypatch.setitem(defaults, "min_fonts", 2)
    found = "2 of 2 font files draw all 106 characters, in 2 families"
    assert _lines(capsys)["fonts"][2:] == ["present", f"(found in {folder}: {found})"]
    monkeypatch.setitem(defaults, "min_fonts", 3)
    needed = f"{found}; data.options.min_fonts needs 3"
    assert _lines(capsys)["fonts"][2:] == ["missing", f"(looked in {folder}: {needed})"]
    monkeypatch.setitem(defaults, "font_dir", str(tmp_path / "none"))
    entry = _json(capsys)["fonts"]
    assert (entry["files"], entry["where"]) == ("missing", [str(tmp_path / "none")])
    assert entry["found"].startswith("0 of 0 font files draw all 106 characters")


def test_without_a_data_root_nothing_is_looked_for_but_bundled_digits(capsys, no_system_files):
    entries = _json(capsys)
    assert entries["cifar10"]["files"] == "missing" and entries["cifar10"]["where"] == []
    assert entries["digits"]["files"] == "present"  # scikit-learn's bundled file
    assert entries["digits"]["where"][0].endswith("digits.csv.gz")
    assert _lines(capsys)["mnist"][2:] == ["missing", "(no data root set)"]


def test_the_command_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from orchestrator.cli import main\n"
        f"rc = main(['datasets', '--data-root', {str(tmp_path)!r}])\n"
        "assert 'torch' not in sys.modules, 'gcnc datasets imported torch'\n"
        "sys.exit(rc)\n"
    )
    done = fresh_python(code)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(DATASETS.names())
