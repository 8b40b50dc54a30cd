"""Every study file validates, documents itself, and runs end to end in its smoke form."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fabricate  # tests/fixtures: dataset files in the real formats
import pandas as pd
import pytest

import analysis
from orchestrator import cli
from orchestrator.search import trial_count
from orchestrator.studyfile import load_spec, read_toml
from trainables.config import DataConfig
from trainables.data import preflight
from trainables.data.mnist import DEBIAN_FASHION_MNIST

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted(ROOT.glob("studies/**/*.toml"))
PAPER = {f"e{i:02d}" for i in range(1, 11)}


def test_there_is_a_quickstart_and_one_file_per_experiment_of_the_paper():
    names = {p.name for p in STUDIES}
    assert "quickstart.toml" in names
    assert {n[:3] for n in names if n.startswith("e")} == PAPER


def skip_without_system_files(path: Path) -> None:
    """Skip a study whose dataset is read from system packages this machine lacks (the
    fonts of Debian's font packages): validation itself refuses it there."""
    data = DataConfig.model_validate(read_toml(path).get("data", {}))  # load_spec would refuse
    if data.name in preflight.CHECKED_WHEN_VALIDATED:
        missing = preflight.files_missing(data)
        if missing is not None:
            pytest.skip(missing.partition("; ")[0])


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_validates_in_full_and_smoke_form(path, capsys):
    skip_without_system_files(path)
    assert cli.main(["validate", str(path)]) == 0
    full, smoke = load_spec(path), load_spec(path, smoke=True)
    assert trial_count(full) >= 2 and 1 <= trial_count(smoke) <= 4
    assert smoke.train.epochs <= 2 and smoke.resources.gpus_per_trial == 0
    assert smoke.resources.cpus_per_trial <= 1  # fits a 2-core CI machine


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_study_opens_with_what_it_shows_and_how_to_launch_it(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    text = "\n".join(header)
    assert len(header) >= 5, f"{path.name}: no header comment"
    assert f"gcnc run studies/{path.relative_to(ROOT / 'studies')}" in text
    if path.stem != "quickstart":
        assert "--address" in text and "GPU-hour" in text


def test_the_quickstart_sweeps_lr_batch_and_l2_with_three_seeds_and_transfer():
    study = load_spec(ROOT / "studies" / "quickstart.toml")
    assert {"train.lr", "train.batch_size", "train.l2"} <= set(study.sweep_params())
    assert len(study.sweep.seeds) >= 3
    assert study.data.name == "digits" and study.data.target_classes
    assert study.model.name.startswith("vgg")


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_smoke_run_end_to_end_with_the_report(path, ray_cluster, tmp_path):
    skip_without_system_files(path)
    extra = []
    data = DataConfig.model_validate(read_toml(path).get("data", {}))
    if data.name == "fashion_mnist" and not DEBIAN_FASHION_MNIST.is_dir():
        # no real Fashion-MNIST on this machine: fabricated files in the real IDX format
        fabricate.mnist(tmp_path / "data" / "FashionMNIST" / "raw", per_class=12, gz=True)
        extra = ["--set", f"data.data_root={tmp_path / 'data'}"]
    storage = tmp_path / "runs"
    assert cli.main(["run", str(path), "--smoke", "--storage", str(storage), *extra]) == 0
    (study_dir,) = [p for p in storage.iterdir() if p.is_dir()]
    info = json.loads((study_dir / "study.json").read_text())
    trials = pd.read_parquet(study_dir / "trials.parquet")
    assert (trials["status"] == "done").all() and len(trials) == trial_count(
        load_spec(path, smoke=True)
    )
    loaded = analysis.load_results(str(study_dir))
    rows = loaded.metrics
    assert not loaded.warnings
    assert len(rows) >= len(trials) * 2  # at initialisation and after the epoch
    assert rows["train_loss"].notna().all() and rows["gc"].notna().all()
    assert info["name"].endswith("-smoke")
    report = (study_dir / "report.html").read_text()
    assert "plotly" in report.lower() and info["name"] in report
    if path.stem.startswith("e04") and DEBIAN_FASHION_MNIST.is_dir():
        # the trials read Debian's real images: 60,000 of 28×28 decompressed into the cache
        # (the session's private XDG_CACHE_HOME, which the Ray workers inherit)
        cached = Path(os.environ["XDG_CACHE_HOME"]) / "gcnc" / "datasets" / "FashionMNIST"
        assert (cached / "raw" / "train-images-idx3-ubyte").stat().st_size == 16 + 60_000 * 784
