"""What only a GPU can check: the CUDA path of the metrics, of a trial, and of a study that
packs two trials on one GPU. Skipped where CUDA is not available. On a machine with a GPU:

    python -m pytest -q tests/trainables/test_on_gpu.py

With ``GCNC_TEST_DEVICE=cpu`` set, the same checks run on the CPU, except the packed study
(a dry run of this file on a machine without a GPU).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_metrics_gc import brute_force_gc  # the float64 reference of the CPU tests

from trainables import MemoryReporter, TrialConfig, run
from trainables.config import ModelConfig
from trainables.evaluate import ieee_float32
from trainables.metrics import gc_per_sample
from trainables.models import build_model

DEVICE = torch.device(os.environ.get("GCNC_TEST_DEVICE", "cuda"))
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
)


def test_exact_gc_of_a_vgg_on_the_device_matches_a_float64_reference():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="vgg11", width=4), input_shape=(3, 32, 32), num_classes=10)
    model.eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    reference = brute_force_gc(copy.deepcopy(model).double().embed, x.double())
    on_device = model.to(DEVICE)
    with ieee_float32(DEVICE):
        got = gc_per_sample(on_device.embed, x.to(DEVICE), chunk_size=8)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.cpu(), reference, rtol=1e-4, atol=0)


def trial_config(device: torch.device, **train) -> dict:
    """Two epochs of a small VGG-11 on CIFAR-shaped synthetic data, 5 source / 5 target."""
    return TrialConfig.from_dict(
        {
            "data": {
                "name": "synthetic",
                "options": {"n_classes": 10, "n_per_class": 20, "channels": 3, "image_size": 32},
                "source_classes": [0, 1, 2, 3, 4],
                "target_classes": [5, 6, 7, 8, 9],
            },
            "model": {"name": "vgg11", "width": 4},
            "train": {"epochs": 2, "batch_size": 16, "lr": 0.02, "seed": 5, "device": str(device)}
            | train,
            "metrics": {
                "gc_batches": 1,
                "gc_batch_size": 16,
                "nc_per_class": 10,
                "fewshot_shots": [1, 5],
                "fewshot_episodes": 20,
            },
        }
    ).model_dump(mode="json")


def test_a_trial_on_the_device_measures_at_init_what_the_cpu_measures():
    """Same seed, same initial weights: the first evaluation agrees across devices."""
    cpu, dev = MemoryReporter(), MemoryReporter()
    run(trial_config(torch.device("cpu"), epochs=0), cpu)
    run(trial_config(DEVICE, epochs=0), dev)
    for key in ("train_loss", "gc", "geo_collapse", "nc_cdnv", "target_nc_cdnv"):
        assert dev.rows[0][key] == pytest.approx(cpu.rows[0][key], rel=1e-4), key
    for key in ("train_acc", "fewshot_acc_5shot"):
        assert dev.rows[0][key] == pytest.approx(cpu.rows[0][key], abs=0.02), key


def test_a_trial_trains_on_the_device_with_bf16_and_channels_last():
    reporter = MemoryReporter()
    summary = run(trial_config(DEVICE, bf16=True, channels_last=True), reporter)
    assert not summary["diverged"] and [r["epoch"] for r in reporter.rows] == [0, 1, 2]
    last = reporter.rows[-1]
    assert last["train_loss"] < reporter.rows[0]["train_loss"]
    for key in ("gc", "geo_collapse", "nc_cdnv", "fewshot_acc_5shot", "test_acc"):
        assert key in last and last[key] == last[key], key  # present and not NaN


def test_a_trial_resumed_on_the_device_reports_what_an_uninterrupted_one_would():
    config = trial_config(DEVICE, epochs=3, deterministic=True)
    whole = MemoryReporter()
    run(config, whole)
    first = MemoryReporter()
    run(trial_config(DEVICE, epochs=1, deterministic=True), first)
    resumed = MemoryReporter(start_from=first.last_checkpoint)
    run(config, resumed)
    assert [r["epoch"] for r in resumed.rows] == [2, 3]
    for mine, reference in zip(resumed.rows, whole.rows[2:], strict=True):
        for key in ("train_loss", "gc", "nc_cdnv", "test_acc"):
            assert mine[key] == pytest.approx(reference[key], rel=1e-4), key


@pytest.mark.skipif(DEVICE.type != "cuda", reason="packs trials on a real GPU")
def test_a_study_packs_two_trials_on_one_gpu(tmp_path):
    """The E3 smoke study on the GPU, two seeds at half a GPU each, through ``gcnc run``."""
    storage = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run",
         str(ROOT / "studies" / "paper" / "e03_mnist_vgg11.toml"), "--smoke",
         "--set", "train.device=cuda", "--set", "resources.gpus_per_trial=0.5",
         "--set", "sweep.seeds=[0, 1]", "--storage", str(storage), "--no-report"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    study = next(storage.iterdir())
    trials = pd.read_parquet(study / "trials.parquet")
    assert len(trials) >= 2 and (trials["status"] == "done").all()
