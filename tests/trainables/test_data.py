"""The dataset registry, checked on real digits and on tiny files in each real on-disk format."""

from __future__ import annotations

from pathlib import Path

import fabricate
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split
from torchvision import datasets as tv

import trainables.data.glyphs as glyphs_module
import trainables.data.mnist as mnist_module
import trainables.data.synthetic as synthetic_module
from trainables.config import DataConfig
from trainables.data import DATASETS, Dataset, Normalization, load_dataset, preflight
from trainables.data.cifar import cifar_fs_classes
from trainables.data.normalization import FIXED
from trainables.registry import UnknownNameError

MNIST_NORM = Normalization(mean=(0.1307,), std=(0.3081,))
FASHION_NORM = Normalization(mean=(0.2860,), std=(0.3530,))
CIFAR10_NORM = Normalization(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
CIFAR100_NORM = Normalization(mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762))


def raw_pixels(x: torch.Tensor, norm: Normalization, *, scale: float = 255.0) -> np.ndarray:
    """Undo ``(x / scale - mean) / std`` with the given constants: back to integer pixels."""
    mean = torch.tensor(norm.mean).view(1, -1, 1, 1)
    std = torch.tensor(norm.std).view(1, -1, 1, 1)
    pixels = (x.double() * std + mean) * scale  # (N, C, H, W)
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)  # the constants are the right ones
    return pixels.round().to(torch.uint8).numpy()


def ids_of(x: torch.Tensor, norm: Normalization, *, hwc: bool = False) -> list[int]:
    """The fabricated ids of normalised images (``hwc``: the files stored H, W, C)."""
    pixels = raw_pixels(x, norm)
    return fabricate.identity(pixels.transpose(0, 2, 3, 1) if hwc else pixels).tolist()


def unnormalised(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """``x * std + mean``: the pixels in [0, 1] before normalisation, float64."""
    mean = torch.tensor(norm.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(norm.std, dtype=torch.float64).view(1, -1, 1, 1)
    return x.double() * std + mean


def check_types(ds: Dataset) -> None:
    for x, y in ((ds.train_x, ds.train_y), (ds.test_x, ds.test_y)):
        assert x.dtype == torch.float32 and x.is_contiguous() and x.device.type == "cpu"
        assert y.dtype == torch.int64 and len(x) == len(y)
    if ds.target_x is not None:
        assert ds.target_x.dtype == torch.float32 and ds.target_y.dtype == torch.int64


# ---- registry and errors -------------------------------------------------------------------


def test_unknown_dataset_lists_known_names():
    with pytest.raises(UnknownNameError, match="unknown dataset 'imagenet'") as err:
        load_dataset(DataConfig(name="imagenet"))
    for name in ("cifar10", "cifar100", "cifar_fs", "digits", "fashion_mnist", "mini_imagenet"):
        assert name in str(err.value)


def test_registry_rejects_a_second_loader_under_a_known_name():
    with pytest.raises(ValueError, match="already registered"):
        DATASETS.add("digits", lambda config: None)


@pytest.mark.parametrize(
    ("source", "target", "match"),
    [
        ([0, 10], None, r"data\.source_classes has unknown class ids \[10\]"),
        ([0, 1], [-1], r"data\.target_classes has unknown class ids \[-1\]"),
        ([0, 1, 1], None, r"data\.source_classes repeats class ids \[1\]"),
        ([0, 1], [1, 2], r"data\.source_classes and data\.target_classes overlap: \[1\]"),
        (None, list(range(10)), r"data\.source_classes selects no class"),
    ],
)
def test_bad_class_ids_name_the_field(source, target, match):
    config = DataConfig(name="synthetic", source_classes=source, target_classes=target)
    with pytest.raises(ValueError, match=match):
        load_dataset(config)


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown data\.options.*'colour'.*known: channels"):
        load_dataset(DataConfig(name="synthetic", options={"colour": 3}))


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "cifar_fs", "mini_imagenet"])
def test_missing_files_say_where_and_how_to_fix(name, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(DataConfig(name=name, data_root=str(tmp_path)))
    message = str(err.value)
    assert f"dataset {name!r}" in message and str(tmp_path) in message
    assert "data.data_root" in message
    assert ("data.download" in message) == (name != "mini_imagenet")


def test_missing_data_root_is_named():
    with pytest.raises(FileNotFoundError, match=r"data\.data_root is not set"):
        load_dataset(DataConfig(name="cifar10"))


# ---- digits (real data) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(DataConfig())


def test_digits_is_all_1797_images_split_80_20_stratified(digits):
    check_types(digits)
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.train_x) + len(digits.test_x) == 1797
    assert len(digits.test_x) == 360 and digits.target_x is None
    per_class = np.bincount(sklearn_digits().target)
    test_counts = torch.bincount(digits.test_y, minlength=10).numpy()
    assert np.all(np.abs(test_counts - 0.2 * per_class) <= 1)


def test_digits_normalised_with_training_statistics(digits):
    x = digits.train_x  # (1437, 1, 8, 8)
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(correction=0).item() - 1) < 1e-4
    pixels = np.concatenate(
        [
            raw_pixels(digits.train_x, digits.normalization, scale=16.0),
            raw_pixels(digits.test_x, digits.normalization, scale=16.0),
        ]
    )
    assert pixels.max() == 16
    assert pixels.astype(np.int64).sum() == sklearn_digits().images.sum()


def test_digits_split_is_seeded(digits):
    again = load_dataset(DataConfig())
    other = load_dataset(DataConfig(split_seed=1))
    assert torch.equal(again.test_x, digits.test_x) and torch.equal(again.test_y, digits.test_y)
    assert not torch.equal(other.test_x, digits.test_x)


def test_digits_transfer_split_reindexes_and_pools_target_images():
    ds = load_dataset(DataConfig(source_classes=[4, 3, 2, 1, 0], target_classes=[9, 8, 7, 6, 5]))
    check_types(ds)
    counts = np.bincount(sklearn_digits().target)
    assert ds.source_classes == [4, 3, 2, 1, 0] and ds.target_classes == [9, 8, 7, 6, 5]
    assert ds.class_names[ds.source_classes[0]] == "4"
    both = torch.cat([ds.train_y, ds.test_y])
    assert torch.bincount(both).tolist() == counts[[4, 3, 2, 1, 0]].tolist()
    assert torch.bincount(ds.target_y).tolist() == counts[[9, 8, 7, 6, 5]].tolist()


def test_max_train_per_class_subsamples_the_source_train_set_seeded():
    config = DataConfig(source_classes=[0, 1, 2], target_classes=[3], max_train_per_class=7)
    ds, again = load_dataset(config), load_dataset(config)
    full = load_dataset(config.model_copy(update={"max_train_per_class": None}))
    assert torch.bincount(ds.train_y).tolist() == [7, 7, 7]
    assert torch.equal(ds.train_x, again.train_x)
    # a subset of the full training set, and the test and target sets untouched
    rows = {tuple(r) for r in full.train_x.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in ds.train_x.flatten(1).tolist())
    assert torch.equal(ds.test_x, full.test_x) and torch.equal(ds.target_x, full.target_x)


def test_max_target_per_class_subsamples_the_target_pool_seeded():
    config = DataConfig(source_classes=[0, 1, 2], target_classes=[5, 3], max_target_per_class=9)
    ds, again = load_dataset(config), load_dataset(config)
    full = load_dataset(config.model_copy(update={"max_target_per_class": None}))
    other = load_dataset(config.model_copy(update={"split_seed": 1}))
    assert torch.bincount(ds.target_y).tolist() == [9, 9]
    assert torch.equal(ds.target_x, again.target_x) and torch.equal(ds.target_y, again.target_y)
    assert not torch.equal(ds.target_x, other.target_x)
    # each kept image is an image of the full pool with the same label; the source untouched
    pool = zip(full.target_x.flatten(1).tolist(), full.target_y.tolist(), strict=True)
    labelled = {(tuple(x), y) for x, y in pool}
    kept = list(zip(ds.target_x.flatten(1).tolist(), ds.target_y.tolist(), strict=True))
    assert all((tuple(x), y) in labelled for x, y in kept)
    assert len({tuple(x) for x, _ in kept}) == 18  # no image drawn twice
    assert torch.equal(ds.train_x, full.train_x) and torch.equal(ds.test_x, full.test_x)
    # a cap above the class sizes keeps the whole pool
    big = load_dataset(config.model_copy(update={"max_target_per_class": 10_000}))
    assert torch.equal(big.target_y, full.target_y) and torch.equal(big.target_x, full.target_x)


def test_an_unset_target_cap_is_left_out_of_the_trial_config():
    """Studies that do not cap the target pool keep their trial configs and spec hashes."""
    assert "max_target_per_class" not in DataConfig().model_dump()
    assert DataConfig(max_target_per_class=5).model_dump()["max_target_per_class"] == 5
    assert DataConfig.model_validate(DataConfig(max_target_per_class=5).model_dump()) == (
        DataConfig(max_target_per_class=5)
    )


# ---- synthetic -----------------------------------------------------------------------------


def test_synthetic_is_deterministic_for_a_seed_and_honours_options():
    options = {"n_classes": 4, "n_per_class": 10, "channels": 3, "image_size": 5, "noise": 0.1}
    ds = load_dataset(DataConfig(name="synthetic", options=options))
    again = load_dataset(DataConfig(name="synthetic", options=options))
    other = load_dataset(DataConfig(name="synthetic", options=options, split_seed=1))
    check_types(ds)
    assert ds.train_x.shape == (32, 3, 5, 5) and ds.test_x.shape == (8, 3, 5, 5)
    assert torch.equal(ds.train_x, again.train_x) and not torch.equal(ds.train_x, other.train_x)
    # class-conditional: each test image is nearest to its own class's training mean
    centres = torch.stack([ds.train_x[ds.train_y == c].mean(0) for c in range(4)])  # (4, 3, 5, 5)
    nearest = torch.cdist(ds.test_x.flatten(1), centres.flatten(1)).argmin(1)
    assert torch.equal(nearest, ds.test_y)


# ---- glyphs --------------------------------------------------------------------------------


def brute_force_ink(a, b, pen: float, size: int) -> np.ndarray:
    """Per-pixel float64 loop: 1 within ``pen`` of segment ``ab``, linear to 0 one pixel out."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            p = np.array([(i + 0.5) / size, (j + 0.5) / size])
            length2 = np.dot(b - a, b - a)
            t = np.clip(np.dot(p - a, b - a) / length2, 0.0, 1.0) if length2 > 0 else 0.0
            d = np.linalg.norm(p - (a + t * (b - a)))
            out[i, j] = min(1.0, max(0.0, 1.0 - (d - pen) * size))
    return out


def test_glyph_strokes_match_a_per_pixel_reference():
    ends = torch.tensor([[[[0.2, 0.1], [0.7, 0.9]], [[0.5, 0.5], [0.5, 0.5]]]])  # (1, S=2, 2, 2)
    pen = torch.tensor([[0.06]])  # (1, 1)
    drawn = glyphs_module._draw(ends, pen, 12)[0].double().numpy()  # (12, 12)
    # two strokes (one of them a dot) overlap by the maximum
    expected = np.maximum(
        brute_force_ink([0.2, 0.1], [0.7, 0.9], 0.06, 12),
        brute_force_ink([0.5, 0.5], [0.5, 0.5], 0.06, 12),
    )
    np.testing.assert_allclose(drawn, expected, atol=1e-5)
    assert drawn.max() == 1.0 and drawn.min() == 0.0


def test_glyphs_are_fixed_by_their_seed_and_classes_are_distinct():
    options = {"n_classes": 12, "n_per_class": 10, "image_size": 12, "noise": 0.0, "shift": 0.0}
    ds = load_dataset(DataConfig(name="glyphs", options=options))
    check_types(ds)
    assert ds.train_x.shape == (96, 1, 12, 12) and ds.test_x.shape == (24, 1, 12, 12)
    again = load_dataset(DataConfig(name="glyphs", options=options, split_seed=3))
    assert torch.equal(ds.train_x, again.train_x)  # the split seed does not redraw the glyphs
    other = load_dataset(DataConfig(name="glyphs", options={**options, "seed": 1}))
    assert not torch.equal(ds.train_x, other.train_x)
    # every class is its own glyph: with no shift or noise (end points still jittered, pen
    # widths still drawn), each test image is nearest to its own class's mean
    centres = torch.stack([ds.train_x[ds.train_y == c].mean(0) for c in range(12)])
    nearest = torch.cdist(ds.test_x.flatten(1), centres.flatten(1)).argmin(1)
    assert torch.equal(nearest, ds.test_y)
    # every class is 3 distinct strokes of the vocabulary, and no two classes are the same set
    generator = torch.Generator().manual_seed(0)
    glyphs_module._alphabet(24, generator)
    classes = glyphs_module._classes(12, 24, 3, generator)
    assert len({tuple(c) for c in classes.tolist()}) == 12
    assert all(len(set(c)) == 3 for c in classes.tolist())


def test_the_transfer_studies_share_their_target_images_and_source_budget():
    base = {
        "name": "glyphs",
        "target_classes": list(range(40, 50)),
        "options": {"n_per_class": 480},
    }
    many = load_dataset(DataConfig(**base, source_classes=list(range(40)), max_train_per_class=48))
    few = load_dataset(DataConfig(**base, source_classes=list(range(5))))
    assert len(many.train_y) == len(few.train_y) == 1920
    assert torch.bincount(many.train_y).tolist() == [48] * 40
    assert torch.bincount(few.train_y).tolist() == [384] * 5
    # the same target images, each study normalising them with its own sources' constants
    assert many.normalization != few.normalization
    torch.testing.assert_close(
        unnormalised(many.target_x, many.normalization),
        unnormalised(few.target_x, few.normalization),
        rtol=0,
        atol=1e-5,
    )
    assert torch.equal(many.target_y, few.target_y)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"n_classes": 5, "vocabulary": 4, "strokes": 3}, "n_classes"),
        ({"vocabulary": 121}, "vocabulary"),
        ({"strokes": 0}, "strokes"),
        ({"noise": -0.1}, "noise"),
        ({"image_size": 2.5}, "image_size"),
    ],
)
def test_glyphs_reject_impossible_options_naming_them(options, field):
    with pytest.raises(ValueError, match=f"data.options.{field}"):
        load_dataset(DataConfig(name="glyphs", options=options))


# ---- normalisation: fitted on the source classes' training images only ---------------------


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std of ``(N, C, H, W)`` pixels, in float64."""
    pixels = images.astype(np.float64).transpose(1, 0, 2, 3).reshape(images.shape[1], -1)
    return pixels.mean(axis=1), pixels.std(axis=1)


def check_fitted_on_source(
    ds: Dataset, source_train: np.ndarray, all_train: np.ndarray, target: np.ndarray
) -> None:
    """``ds``'s constants are the source training images' statistics, not all classes'; its
    target pool (``target``: the raw images in ``[0, 1]``) is normalised with the same."""
    mean, std = channel_stats(source_train)
    np.testing.assert_allclose(ds.normalization.mean, mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ds.normalization.std, std, rtol=1e-12, atol=0)
    leaky_mean, leaky_std = channel_stats(all_train)
    assert np.all(np.abs(mean - leaky_mean) > 1e-3) and np.all(np.abs(std - leaky_std) > 1e-4)
    assert ds.normalization.fitted_on.startswith("fitted: ")
    assert "source classes' training images" in ds.normalization.fitted_on
    raw_target = unnormalised(ds.target_x, ds.normalization).numpy()
    np.testing.assert_allclose(raw_target, target, rtol=0, atol=1e-5)


def test_digits_normalisation_is_fitted_on_the_source_classes_training_images():
    source, target = [0, 8, 1, 4], [2, 3, 5, 6, 7, 9]  # bold digits: a brighter source
    ds = load_dataset(DataConfig(source_classes=source, target_classes=target, split_seed=4))
    bunch = sklearn_digits()
    train, test = train_test_split(
        np.arange(len(bunch.target)), test_size=0.2, stratify=bunch.target, random_state=4
    )
    train, test = np.sort(train), np.sort(test)
    images = bunch.images[:, None] / 16.0  # (1797, 1, 8, 8) float64, pixels in [0, 1]
    train_x, train_y = images[train], bunch.target[train]
    test_x, test_y = images[test], bunch.target[test]
    # the target pool: the target classes' train images, then their test images, in file order
    pool = np.concatenate([train_x[np.isin(train_y, target)], test_x[np.isin(test_y, target)]])
    check_fitted_on_source(ds, train_x[np.isin(train_y, source)], train_x, pool)


def drawn_images(monkeypatch, module) -> list[np.ndarray]:
    """Capture the raw images ``(K, n, C, H, W)`` a generated dataset's loader draws."""
    drawn: list[np.ndarray] = []
    real = module.generated_dataset

    def capture(name, images, config, **kwargs):
        drawn.append(images.numpy().copy())
        return real(name, images, config, **kwargs)

    monkeypatch.setattr(module, "generated_dataset", capture)
    return drawn


@pytest.mark.parametrize("name", ["synthetic", "glyphs"])
def test_generated_normalisation_is_fitted_on_the_source_classes_training_images(name, monkeypatch):
    module = synthetic_module if name == "synthetic" else glyphs_module
    drawn = drawn_images(monkeypatch, module)
    options = {"n_classes": 6, "n_per_class": 10, "image_size": 8}
    source, target = [5, 0, 3], [1, 4]
    ds = load_dataset(
        DataConfig(name=name, options=options, source_classes=source, target_classes=target)
    )
    (images,) = drawn  # (K=6, n=10, C, 8, 8), classes in id order
    n_train = 8  # 80 % of each class's 10 images
    assert len(ds.train_y) == n_train * len(source)
    shape = images.shape[2:]
    train, test = images[:, :n_train], images[:, n_train:]  # (6, 8, C, 8, 8), (6, 2, C, 8, 8)
    ids = sorted(target)  # the pool's classes, in id order: their train images, then test
    pool = np.concatenate([train[ids].reshape(-1, *shape), test[ids].reshape(-1, *shape)])
    check_fitted_on_source(ds, train[source].reshape(-1, *shape), train.reshape(-1, *shape), pool)


def test_every_dataset_says_what_its_normalisation_is_fitted_on():
    assert set(FIXED) == set(DATASETS.names()) - {"digits", "glyphs", "synthetic", "fonts"}
    for name, norm in FIXED.items():
        assert norm.fitted_on.startswith("fixed: the published"), name
    assert "target classes included" in FIXED["cifar_fs"].fitted_on
    # fitted_on is provenance, not part of the constants: equal constants compare equal
    assert FIXED["cifar_fs"] == FIXED["cifar100"] == CIFAR100_NORM


# ---- MNIST and Fashion-MNIST (IDX files) ---------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files_through_torchvision(tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    files = fabricate.mnist(raw, gz=gz)
    ds = load_dataset(DataConfig(name="mnist", data_root=str(tmp_path)))
    check_types(ds)
    assert ds.train_x.shape == (30, 1, 28, 28) and ds.test_x.shape == (30, 1, 28, 28)
    assert ds.normalization == MNIST_NORM and ds.class_names[0] == "0 - zero"
    assert np.array_equal(raw_pixels(ds.train_x, MNIST_NORM)[:, 0], files["train_images"])
    assert ds.train_y.tolist() == files["train_labels"].tolist()
    assert np.array_equal(raw_pixels(ds.test_x, MNIST_NORM)[:, 0], files["test_images"])
    if gz:  # torchvision reads only the decompressed names; they were written next to the .gz
        assert all((raw / name).is_file() for name in fabricate.MNIST_FILES.values())


def test_mnist_target_split_reindexes_labels(tmp_path):
    files = fabricate.mnist(tmp_path / "MNIST" / "raw")
    ds = load_dataset(
        DataConfig(name="mnist", data_root=str(tmp_path), source_classes=[7, 3], target_classes=[5])
    )
    train_labels = files["train_labels"]
    expected = [0 if v == 7 else 1 for v in train_labels if v in (7, 3)]
    assert ds.train_y.tolist() == expected
    assert ds.target_x.shape == (6, 1, 28, 28) and ds.target_y.tolist() == [0] * 6
    target_ids = ids_of(ds.target_x, MNIST_NORM)
    train_ids = np.flatnonzero(train_labels == 5).tolist()
    test_ids = (30 + np.flatnonzero(files["test_labels"] == 5)).tolist()
    assert target_ids == train_ids + test_ids


@pytest.fixture
def debian_fashion(tmp_path, monkeypatch) -> dict[str, np.ndarray]:
    """Debian's dataset-fashion-mnist layout: the four gzip'd IDX files in one folder."""
    system = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    files = fabricate.mnist(system, gz=True)
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST", system)
    return files


@pytest.mark.parametrize("data_root", [None, "empty"])
def test_fashion_mnist_falls_back_to_the_debian_files(tmp_path, debian_fashion, data_root):
    root = None if data_root is None else str(tmp_path / data_root)
    cache = tmp_path / "cache"
    ds = load_dataset(
        DataConfig(name="fashion_mnist", data_root=root, options={"cache_dir": str(cache)})
    )
    check_types(ds)
    assert ds.normalization == FASHION_NORM and ds.class_names[-1] == "Ankle boot"
    assert np.array_equal(
        raw_pixels(ds.train_x, FASHION_NORM)[:, 0], debian_fashion["train_images"]
    )
    assert ds.test_y.tolist() == debian_fashion["test_labels"].tolist()
    assert (cache / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert any("fashion-mnist" in note for note in ds.notes)


def test_fashion_mnist_prefers_data_root_over_the_debian_files(tmp_path, debian_fashion):
    own = fabricate.mnist(tmp_path / "root" / "FashionMNIST" / "raw", per_class=1)
    ds = load_dataset(DataConfig(name="fashion_mnist", data_root=str(tmp_path / "root")))
    assert len(ds.train_x) == 10 and ds.notes == []
    assert ds.train_y.tolist() == own["train_labels"].tolist()


def test_fashion_mnist_without_any_files_names_both_places(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match=r"fashion_mnist.*FashionMNIST/raw.*absent"):
        load_dataset(DataConfig(name="fashion_mnist", data_root=str(tmp_path)))


# ---- CIFAR-10, CIFAR-100, CIFAR-FS (python pickles) ----------------------------------------


@pytest.fixture
def cifar10_root(tmp_path, monkeypatch) -> tuple[Path, dict]:
    files = fabricate.cifar10(tmp_path)
    for attr, value in fabricate.cifar_checksums(tv.CIFAR10, tmp_path).items():
        monkeypatch.setattr(tv.CIFAR10, attr, value)  # torchvision checks MD5 sums
    return tmp_path, files


@pytest.fixture
def cifar100_root(tmp_path, monkeypatch) -> tuple[Path, dict]:
    files = fabricate.cifar100(tmp_path)
    for attr, value in fabricate.cifar_checksums(tv.CIFAR100, tmp_path).items():
        monkeypatch.setattr(tv.CIFAR100, attr, value)
    return tmp_path, files


def test_cifar10_reads_the_python_batches(cifar10_root):
    root, files = cifar10_root
    ds = load_dataset(DataConfig(name="cifar10", data_root=str(root)))
    check_types(ds)
    assert ds.train_x.shape == (100, 3, 32, 32) and ds.test_x.shape == (20, 3, 32, 32)
    assert ds.normalization == CIFAR10_NORM and ds.class_names[3] == "c10_class_3"
    assert np.array_equal(raw_pixels(ds.train_x, CIFAR10_NORM), files["train_x"])
    assert np.array_equal(raw_pixels(ds.test_x, CIFAR10_NORM), files["test_x"])
    assert ds.train_y.tolist() == files["train_y"].tolist()


def test_cifar_corrupted_files_are_reported(tmp_path):
    fabricate.cifar10(tmp_path)  # MD5 sums differ from the official ones
    with pytest.raises(RuntimeError, match=r"dataset 'cifar10'.*cifar-10-batches-py.*corrupted"):
        load_dataset(DataConfig(name="cifar10", data_root=str(tmp_path)))


def test_cifar100_uses_fine_labels_in_the_given_class_order(cifar100_root):
    root, files = cifar100_root
    config = DataConfig(name="cifar100", data_root=str(root), source_classes=[42, 7, 99])
    ds = load_dataset(config)
    check_types(ds)
    assert ds.normalization == CIFAR100_NORM and ds.target_x is None
    assert len(ds.class_names) == 100 and ds.class_names[42] == "c100_class_42"
    train_y = files["train_y"]
    keep = np.isin(train_y, [42, 7, 99])
    assert ds.train_y.tolist() == [[42, 7, 99].index(v) for v in train_y[keep]]
    assert ids_of(ds.train_x, CIFAR100_NORM) == np.flatnonzero(keep).tolist()


def test_cifar_fs_default_split_is_64_16_20_seeded_and_noted(cifar100_root):
    root, files = cifar100_root
    ds = load_dataset(DataConfig(name="cifar_fs", data_root=str(root), split_seed=3))
    check_types(ds)
    source, val, target = cifar_fs_classes(3)
    assert (len(source), len(val), len(target)) == (64, 16, 20)
    assert sorted(source + val + target) == list(range(100))
    assert ds.source_classes == source and ds.target_classes == target
    assert any("seeded split (split_seed=3)" in n and "not the official" in n for n in ds.notes)
    # source train/test: CIFAR-100 train/test images of source classes; target: both
    n_train = len(files["train_y"])
    train_ids, test_ids = ids_of(ds.train_x, CIFAR100_NORM), ids_of(ds.test_x, CIFAR100_NORM)
    target_ids = ids_of(ds.target_x, CIFAR100_NORM)
    assert train_ids == np.flatnonzero(np.isin(files["train_y"], source)).tolist()
    assert test_ids == (n_train + np.flatnonzero(np.isin(files["test_y"], source))).tolist()
    assert len(target_ids) == 20 * 3 and not set(target_ids) & set(train_ids + test_ids)
    assert sorted(torch.bincount(ds.target_y).tolist()) == [3] * 20
    assert cifar_fs_classes(3) == (source, val, target) and cifar_fs_classes(4)[0] != source


# ---- mini-ImageNet (pickle and folder layouts) ---------------------------------------------


MINI_NORM = Normalization(
    mean=(120.39586422 / 255, 115.59361427 / 255, 104.54012653 / 255),
    std=(70.68188272 / 255, 68.27635443 / 255, 72.54505529 / 255),
)


def check_mini_imagenet(ds: Dataset, by_class: dict[str, np.ndarray], *, per_class: int) -> None:
    """Source = the 4 train classes split 5/1, target = the 3 test classes whole, ids sorted."""
    names = fabricate.mini_imagenet_classes()
    expected = sorted(names["train"]) + sorted(names["val"]) + sorted(names["test"])
    assert ds.class_names == expected
    assert ds.source_classes == [0, 1, 2, 3] and ds.target_classes == [6, 7, 8]
    assert ds.input_shape == (3, 84, 84) and ds.normalization == MINI_NORM
    assert torch.bincount(ds.train_y).tolist() == [per_class - 1] * 4
    assert torch.bincount(ds.test_y).tolist() == [1] * 4
    assert torch.bincount(ds.target_y).tolist() == [per_class] * 3
    for x, y, classes in (
        (torch.cat([ds.train_x, ds.test_x]), torch.cat([ds.train_y, ds.test_y]), ds.source_classes),
        (ds.target_x, ds.target_y, ds.target_classes),
    ):
        for label, c in enumerate(classes):
            name = ds.class_names[c]
            if name in by_class:  # every image of the class, each once
                got = sorted(ids_of(x[y == label], MINI_NORM, hwc=True))
                assert got == sorted(fabricate.identity(by_class[name]).tolist())


def test_mini_imagenet_pickles(tmp_path):
    by_class = fabricate.mini_imagenet_pickles(tmp_path)
    ds = load_dataset(DataConfig(name="mini_imagenet", data_root=str(tmp_path)))
    check_types(ds)
    check_mini_imagenet(ds, by_class, per_class=6)
    assert any("hold-out" in n for n in ds.notes)


def test_mini_imagenet_folders_decode_and_resize(tmp_path):
    by_class = fabricate.mini_imagenet_folders(tmp_path)
    ds = load_dataset(DataConfig(name="mini_imagenet", data_root=str(tmp_path)))
    check_types(ds)
    check_mini_imagenet(ds, by_class, per_class=6)


def test_mini_imagenet_holdout_is_seeded_per_class(tmp_path):
    fabricate.mini_imagenet_pickles(tmp_path)
    base = DataConfig(name="mini_imagenet", data_root=str(tmp_path))
    ds, again = load_dataset(base), load_dataset(base)
    other_seed = load_dataset(base.model_copy(update={"split_seed": 5}))
    assert torch.equal(ds.test_x, again.test_x) and torch.equal(ds.train_x, again.train_x)
    assert not torch.equal(ds.test_x, other_seed.test_x)
    # a class's hold-out does not depend on which other classes are loaded
    only_three = load_dataset(base.model_copy(update={"source_classes": [3]}))
    assert only_three.target_x is None
    assert torch.equal(only_three.test_x, ds.test_x[ds.test_y == 3])
    only_target = load_dataset(base.model_copy(update={"target_classes": [8]}))
    assert only_target.source_classes == [0, 1, 2, 3, 4, 5, 6, 7]  # every other class


def test_mini_imagenet_holdout_fraction_option(tmp_path):
    fabricate.mini_imagenet_pickles(tmp_path)
    config = DataConfig(
        name="mini_imagenet", data_root=str(tmp_path), options={"holdout_fraction": 0.5}
    )
    ds = load_dataset(config)
    assert torch.bincount(ds.test_y).tolist() == [3] * 4
    with pytest.raises(ValueError, match="holdout_fraction must be in"):
        load_dataset(config.model_copy(update={"options": {"holdout_fraction": 1.0}}))


# ---- an empty source test split is refused, naming the option to change ------------------


@pytest.mark.parametrize("n_per_class", [1, 2])
def test_synthetic_data_without_test_images_is_refused_before_loading(n_per_class):
    config = DataConfig(name="synthetic", options={"n_per_class": n_per_class})
    with pytest.raises(preflight.DataConfigError, match="test split") as info:
        preflight.check(config)  # what gcnc validate runs, without torch
    assert info.value.field == "data.options.n_per_class"
    with pytest.raises(preflight.DataConfigError, match="test split") as info:
        load_dataset(config)
    assert info.value.field == "data.options.n_per_class"
    smallest = config.model_copy(update={"options": {"n_per_class": 3}})
    assert torch.bincount(load_dataset(smallest).test_y).tolist() == [1] * 10


def test_a_hold_out_leaving_no_test_image_is_refused_naming_the_option(tmp_path):
    fabricate.mini_imagenet_pickles(tmp_path)  # 6 images a class
    config = DataConfig(
        name="mini_imagenet", data_root=str(tmp_path), options={"holdout_fraction": 0.0}
    )
    with pytest.raises(preflight.DataConfigError, match="holdout_fraction must be in") as info:
        preflight.check(config)
    assert info.value.field == "data.options.holdout_fraction"
    tiny = config.model_copy(update={"options": {"holdout_fraction": 0.05}})
    preflight.check(tiny)  # positive: only the loader knows it rounds to no image a class
    with pytest.raises(preflight.DataConfigError, match="no source test images") as info:
        load_dataset(tiny)
    assert info.value.field == "data.options.holdout_fraction"
