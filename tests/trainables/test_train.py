"""The training loop: schema rows, reproducibility, resume equivalence, divergence, losses."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from trainables import MemoryReporter, TrialConfig, run
from trainables.data import load_dataset
from trainables.reporter import TrialInterrupted
from trainables.train import _Trial

SCHEMA_METRICS = {
    "train_loss",
    "train_acc",
    "test_acc",
    "gc",
    "gc_estimator",
    "geo_collapse",
    "nc_cdnv",
    "nc1",
    "nc2_etf",
    "nc2_equinorm",
    "nc3",
    "nc4",
    "target_nc_cdnv",
    "fewshot_acc_1shot",
    "fewshot_ci_1shot",
    "fewshot_acc_5shot",
    "fewshot_ci_5shot",
    "ncc_test_error",
    "nc_bound",
    "poincare_kappa",
    "geocol_bound",
    "fewshot_nc_bound",
    "diverged",
    "wall_time_s",
    "epoch",
    "step",
}


def tiny_config(**train) -> dict:
    """A few-second trial: 10 synthetic classes, 5 source and 5 target (5-way few-shot)."""
    return TrialConfig.from_dict(
        {
            "data": {
                "name": "synthetic",
                "options": {"n_classes": 10, "n_per_class": 24, "image_size": 8, "channels": 1},
                "source_classes": [0, 1, 2, 3, 4],
                "target_classes": [5, 6, 7, 8, 9],
            },
            "model": {"name": "convnet", "width": 8},
            "train": {"epochs": 3, "batch_size": 16, "lr": 0.05, "seed": 3, "device": "cpu"}
            | train,
            "metrics": {
                "gc_batches": 2,
                "gc_batch_size": 16,
                "nc_per_class": 10,
                "fewshot_episodes": 20,
                "fewshot_queries": 3,
            },
        }
    ).model_dump()


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def test_every_evaluation_reports_every_schema_metric():
    reporter = MemoryReporter()
    summary = run(tiny_config(), reporter)
    assert [r["epoch"] for r in reporter.rows] == [0, 1, 2, 3]
    assert summary["epochs_done"] == 3 and not summary["diverged"]
    for row in reporter.rows:
        assert set(row) >= SCHEMA_METRICS, SCHEMA_METRICS - set(row)
        numeric = {k: v for k, v in row.items() if isinstance(v, float)}
        assert all(math.isfinite(v) for v in numeric.values()), numeric
        # the bounds rescale the source CDNV: 5 source classes; 5-way, 5 shots at most
        assert row["nc_bound"] == pytest.approx(4 * 4 * row["nc_cdnv"], rel=1e-12)
        assert row["fewshot_nc_bound"] == pytest.approx(16 * 4 * 1.2 * row["nc_cdnv"], rel=1e-12)
    n_train = len(load_dataset(TrialConfig.from_dict(tiny_config()).data).train_y)
    assert reporter.rows[-1]["step"] == 3 * math.ceil(n_train / 16)
    assert reporter.rows[0]["gc_estimator"] == "exact"


def test_same_seed_gives_identical_rows_and_another_seed_does_not():
    a, b, c = MemoryReporter(), MemoryReporter(), MemoryReporter()
    run(tiny_config(), a)
    run(tiny_config(), b)
    run(tiny_config(seed=4), c)
    assert without_time(a.rows) == without_time(b.rows)
    assert without_time(a.rows)[-1]["train_loss"] != without_time(c.rows)[-1]["train_loss"]


def _roundtrip(state: dict) -> dict:
    """Serialise a checkpoint the way the orchestrator's adapter stores it."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("gc_reg_alpha", [0.0, 0.01])
def test_resumed_trial_reports_what_an_uninterrupted_one_would(gc_reg_alpha):
    config = tiny_config(epochs=4, gc_reg={"alpha": gc_reg_alpha})
    full = MemoryReporter()
    run(config, full)
    first = MemoryReporter(stop_after=2)  # killed right after the epoch-1 checkpoint
    with pytest.raises(TrialInterrupted):
        run(config, first)
    resumed = MemoryReporter(start_from=_roundtrip(first.last_checkpoint))
    run(config, resumed)
    assert without_time(first.rows + resumed.rows) == without_time(full.rows)


def test_a_nonfinite_loss_is_reported_as_diverged_not_raised():
    reporter = MemoryReporter()
    summary = run(tiny_config(lr=1e12, epochs=5), reporter)
    assert summary["diverged"]
    last = reporter.rows[-1]
    assert last["diverged"] is True
    assert summary["epochs_done"] < 5 or last.get("train_loss") is None
    # metrics after the divergence are not measured (null in the table), never 0
    assert "gc" not in last and "nc_cdnv" not in last
    # a resumed diverged trial does not train again
    again = MemoryReporter(start_from=reporter.last_checkpoint)
    assert run(tiny_config(lr=1e12, epochs=5), again)["diverged"] and again.rows == []


def test_metrics_a_study_turns_off_are_absent_not_zero():
    config = tiny_config(epochs=1)
    config["metrics"] |= {"nc": False, "fewshot": False, "gc": False}
    reporter = MemoryReporter()
    run(config, reporter)
    row = reporter.rows[-1]
    for key in ("nc_cdnv", "nc1", "gc", "geo_collapse", "target_nc_cdnv", "fewshot_acc_5shot"):
        assert key not in row
    assert "train_loss" in row and "test_acc" in row


def test_loss_adds_l2_over_two_times_squared_parameter_norm():
    cfg = TrialConfig.from_dict(tiny_config(l2=0.3))
    data = load_dataset(cfg.data)
    trial = _Trial(cfg, data, torch.device("cpu"))
    trial.model.eval()  # fixed BatchNorm statistics so both sides see the same logits
    x, y = data.train_x[:8], data.train_y[:8]
    with torch.no_grad():
        ce = F.cross_entropy(trial.model(x), y)
        sq = sum(p.double().pow(2).sum() for p in trial.model.parameters())
        got = trial.loss(x, y)
    assert got.item() == pytest.approx(ce.item() + 0.15 * sq.item(), rel=1e-5)


def test_gc_regularisation_lowers_the_measured_gc():
    plain, regular = MemoryReporter(), MemoryReporter()
    run(tiny_config(epochs=6), plain)
    run(tiny_config(epochs=6, gc_reg={"alpha": 1.0, "estimator": "exact", "options": {}}), regular)
    assert regular.rows[-1]["gc"] < 0.7 * plain.rows[-1]["gc"]


def test_the_gc_term_leaves_batchnorm_running_statistics_to_the_forward_pass():
    """With GC regularisation, BatchNorm's running statistics take one update per step,
    from the forward pass, exactly as without it (the GC term's own forward runs on the
    same batch and must not add a second update)."""
    cfg = TrialConfig.from_dict(tiny_config(gc_reg={"alpha": 1.0}))
    data = load_dataset(cfg.data)
    regular = _Trial(cfg, data, torch.device("cpu"))
    plain = _Trial(TrialConfig.from_dict(tiny_config()), data, torch.device("cpu"))
    x, y = data.train_x[:16], data.train_y[:16]
    regular.model.train()
    plain.model.train()
    regular.loss(x, y).backward()
    with torch.no_grad():
        plain.model(x)  # the one update the step should make
    bn = [m for m in regular.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn, "the test model has BatchNorm layers"
    for mine, reference in zip(regular.model.buffers(), plain.model.buffers(), strict=True):
        torch.testing.assert_close(mine, reference, rtol=0, atol=0)
    assert any(b.running_mean.abs().sum() > 0 for b in bn), "the forward pass did update them"


def test_metrics_on_cuda_are_measured_without_tf32_and_the_setting_is_restored():
    """cuDNN convolutions default to TF32 on recent GPUs; the evaluation turns it off and
    restores the user's setting (the flags are process-wide, so this runs without a GPU)."""
    from trainables.evaluate import ieee_float32

    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    with ieee_float32(torch.device("cuda")):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
    assert (conv.fp32_precision, matmul.fp32_precision) == before
    with ieee_float32(torch.device("cpu")):
        assert (conv.fp32_precision, matmul.fp32_precision) == before
