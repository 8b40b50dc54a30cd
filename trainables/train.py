"""The training loop of one trial: ``run(config, reporter) -> summary``.

Plain SGD on tensors resident on the trial's device (no DataLoader in the hot loop), the
loss ``CE + l2/2·||θ||² + α·GC(f, batch)`` (SPEC 2.6, 4), an evaluation every
``metrics.every`` epochs, and a checkpoint with every evaluation. A trial always starts
from the reporter's checkpoint when there is one: resuming is the normal path, and a
resumed trial reports exactly what an uninterrupted one would (same RNG streams).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from trainables import metrics as M
from trainables.config import TrainConfig, TrialConfig
from trainables.data import Dataset, load_dataset
from trainables.evaluate import LAYERS, NonFiniteError, evaluate, make_plan, measured_layers
from trainables.models import EmbeddingClassifier, build_model
from trainables.reporter import Reporter

CHECKPOINT_VERSION = 1


def run(config: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Train one trial, reporting metrics and a checkpoint at every evaluation.

    Args:
        config: a nested dict parsed by :class:`TrialConfig` (unknown keys are errors).
        reporter: receives each evaluation's row and checkpoint; ``restore()`` gives the
            checkpoint to resume from.

    Returns:
        A summary: epochs done, steps, whether the loss diverged, and the last row.
    """
    cfg = TrialConfig.from_dict(config)
    device = pick_device(cfg.train.device)
    data = load_dataset(cfg.data).to(device)
    trial = _Trial(cfg, data, device)
    state = reporter.restore()
    if state is not None:
        trial.load(state)
    elif cfg.metrics.at_init:
        reporter.report(trial.evaluate(), checkpoint=trial.state())
    while trial.epoch < cfg.train.epochs and not trial.diverged:
        trial.train_epoch()
        if (
            trial.diverged
            or trial.epoch % cfg.metrics.every == 0
            or trial.epoch == cfg.train.epochs
        ):
            reporter.report(trial.evaluate(), checkpoint=trial.state())
    return {
        "epochs_done": trial.epoch,
        "steps": trial.step,
        "diverged": trial.diverged,
        "last": trial.last_row,
    }


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; a missing CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device = {name!r} but CUDA is not available here")
    return device


@contextlib.contextmanager
def _running_stats_kept(model: torch.nn.Module) -> Iterator[None]:
    """Restore the running statistics of every BatchNorm layer of ``model`` on exit."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)]
    saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in layers]
    try:
        yield
    finally:
        # Through ``.data``: the forward passes recorded these buffers in the graph, and a
        # visible in-place write would fail the backward pass's version check. Training-mode
        # BatchNorm's backward does not read them.
        for layer, buffers in zip(layers, saved, strict=True):
            for name, value in buffers.items():
                getattr(layer, name).data.copy_(value)


class _Trial:
    """The mutable state of one trial: model, optimizer, RNG streams, counters."""

    def __init__(self, cfg: TrialConfig, data: Dataset, device: torch.device) -> None:
        self.cfg, self.data, self.device = cfg, data, device
        tc = cfg.train
        if tc.deterministic and device.type == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        torch.manual_seed(tc.seed)  # model init
        self.model: EmbeddingClassifier = build_model(
            cfg.model, input_shape=data.input_shape, num_classes=data.num_classes
        ).to(device)
        if tc.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=tc.lr, momentum=tc.momentum)
        self.scheduler = make_scheduler(self.optimizer, tc)
        self.rng = torch.Generator().manual_seed(tc.seed + 1)  # batch order and GC-reg probes
        self.plan = make_plan(data, cfg.metrics)
        measured_layers(self.model, cfg.metrics)  # a layer the model lacks fails here, at once
        self.epoch, self.step, self.diverged = 0, 0, False
        self.elapsed_before = 0.0  # wall time of earlier attempts
        self.started = time.perf_counter()
        self.last_row: dict[str, Any] | None = None

    def train_epoch(self) -> None:
        """One pass over the source training set in a seeded random order."""
        tc, x, y = self.cfg.train, self.data.train_x, self.data.train_y
        self.model.train()
        order = torch.randperm(len(y), generator=self.rng).to(self.device)
        for start in range(0, len(y), tc.batch_size):
            idx = order[start : start + tc.batch_size]
            if len(idx) < 2 and len(y) > 1:
                continue  # a single-sample batch breaks BatchNorm; it recurs every epoch
            loss = self.loss(x[idx], y[idx])
            if not torch.isfinite(loss):
                self.diverged = True
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
        self.scheduler.step()
        self.epoch += 1

    def loss(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """``CE + l2/2·||θ||² + α·GC(f, batch)``; the GC term by double backprop."""
        tc = self.cfg.train
        if tc.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        use_bf16 = tc.bf16 and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = self.model(xb)  # (B, C)
        loss = F.cross_entropy(logits.float(), yb)
        if tc.l2 > 0:
            loss = loss + 0.5 * tc.l2 * sum(p.pow(2).sum() for p in self.model.parameters())
        if tc.gc_reg.alpha > 0:
            # The GC term runs the embedding on the same batch again; BatchNorm normalises it
            # with the batch's statistics, but its running statistics take one update per
            # step (the forward above), as without the term.
            with _running_stats_kept(self.model):
                gc = M.gc_per_sample(
                    self.model.embed,
                    xb,
                    estimator=tc.gc_reg.estimator,
                    create_graph=True,
                    generator=self.rng,
                    **tc.gc_reg.options,
                )
            loss = loss + tc.gc_reg.alpha * gc.mean()
        return loss

    def evaluate(self) -> dict[str, Any]:
        """The schema row for the current epoch; metrics are null after a divergence. Where
        the study measures layers, the row holds their rows under ``"layers"``."""
        row: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "diverged": self.diverged}
        if not self.diverged:
            try:
                row |= evaluate(
                    self.model, self.data, self.plan, self.cfg.metrics, epoch=self.epoch
                )
            except NonFiniteError:
                self.diverged = row["diverged"] = True
        row["wall_time_s"] = self.elapsed_before + time.perf_counter() - self.started
        self.last_row = {k: v for k, v in row.items() if k != LAYERS}
        return row

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this evaluation left off."""
        return {
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "step": self.step,
            "diverged": self.diverged,
            "wall_time_s": self.elapsed_before + time.perf_counter() - self.started,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "last_row": self.last_row,
        }

    def load(self, state: dict[str, Any]) -> None:
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"checkpoint version {state.get('version')!r} is not "
                f"{CHECKPOINT_VERSION}; start the trial afresh"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.diverged = state["diverged"]
        self.elapsed_before = state["wall_time_s"]
        self.last_row = state.get("last_row")


def make_scheduler(
    optimizer: torch.optim.Optimizer, tc: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Constant (the default, SPEC 4), cosine over ``epochs``, or step decay; stepped per epoch."""
    if tc.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(tc.epochs, 1))
    if tc.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=tc.lr_step_epochs, gamma=tc.lr_step_gamma
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
