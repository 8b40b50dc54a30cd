"""Benchmark of the metric library (trainables.metrics), printed side by side in one run.

    python benchmarks/bench_metrics.py --quick   # CPU, under 3 minutes on 2 cores
    python benchmarks/bench_metrics.py           # batch 32, more draws: several minutes on CPU
    python benchmarks/bench_metrics.py --gpu     # also the CUDA section, when CUDA is present
    python benchmarks/bench_metrics.py --only layers --threads 1   # section 5 alone

Sections:
1. exact GC, vectorised (one forward, batched VJPs) vs two other vectorised forms (``torch.func``
   ``vmap(vjp)``; the batch replicated once per output direction, one forward and backward
   per chunk) and two autograd loops: per sample and output (B·p backward passes of one
   sample) and per output (p passes over the batch); with the arithmetic rate of each (the
   FLOPs of the p Jacobian rows per sample, counted once) against the device's matrix-product
   rate, a practical bound on any vectorised form;
2. every GC estimator's cost (time, and Jacobian products per sample: VJPs, or JVPs for
   ``mask(mode=cols)``, each costing about two VJPs) and its relative error against exact GC
   at p = 512 (the root mean square over seeded draws of the batch GC);
3. 600 five-way five-shot episodes;
4. one training epoch of the quickstart study (``studies/quickstart.toml``: digits, the
   scaled-down VGG-11) against one full evaluation of every metric at its defaults, and the
   same evaluation with GC by the projection estimator;
5. per-layer measures (``metrics.layers``): an evaluation of every layer against one of the
   last layer alone (the metrics row) and one training epoch, on the quickstart's trial
   config and on ResNet-18 (width 64, p = 512) at 32×32 on synthetic data; with and
   without GC, whose backward passes are each layer's own (the forward passes are shared);
6. (``--gpu``) a VGG-13 epoch on CIFAR-shaped random data and the metric pass after it.

``--only`` runs the sections named (``exact``, ``estimators``, ``fewshot``, ``quickstart``,
``layers``, ``gpu``).

Each section is a function ``(args, device) -> list[dict]`` listed in ``SECTIONS``; add a
section by writing one more such function. Times are the minimum over repeats (the machine
may be shared), in milliseconds unless the column says otherwise. On a busy machine
``--threads 1`` gives steadier numbers: two threads on two shared cores wait for each other
at every kernel, which slows the loops of many small kernels most.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from trainables.metrics import (
    ClassStats,
    cdnv_from_stats,
    fewshot_ncc,
    gc_estimator_label,
    gc_per_sample,
    sample_episodes,
)
from trainables.metrics.estimators import Linearization

Row = dict[str, Any]


def timed(
    fn: Callable[[], Any], *, repeats: int = 1, device: torch.device, warmup: bool = False
) -> tuple[float, Any]:
    """Minimum wall time in ms over ``repeats`` calls, and the last result."""
    if warmup:
        fn()
    best, result = math.inf, None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) * 1e3)
    return best, result


def vgg(config: list[int | str], *, in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """VGG with BatchNorm, global average pooling, embedding = last conv width, linear head."""
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.BatchNorm2d(int(item))]
            layers.append(nn.ReLU(inplace=True))
            in_channels = int(item)
    features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return nn.Sequential(features, nn.Linear(in_channels, num_classes))


VGG13 = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def small_vgg(width: int) -> nn.Module:
    """A VGG-like net for CPU timing: three conv-BN-ReLU-pool stages, then a 512-wide conv."""
    return vgg([width, "M", 2 * width, "M", 4 * width, "M", 512])


def embedding_net(args: argparse.Namespace, device: torch.device) -> nn.Module:
    """The p = 512 embedding (features of a small VGG-like net), eval mode, with trained-like
    BatchNorm statistics from a few train-mode passes over random data."""
    torch.manual_seed(0)
    net = small_vgg(args.width).to(device)
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(64, 3, 32, 32, device=device))
    return net[0].eval()


def naive_per_sample_gc(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """B·p backward passes of one sample each: the textbook loop."""
    values = []
    for b in range(len(x)):
        xb = x[b : b + 1].clone().requires_grad_(True)
        out = fn(xb)[0]
        total = sum(
            torch.autograd.grad(out[k], xb, retain_graph=True)[0].double().square().sum()
            for k in range(len(out))
        )
        values.append(total)
    return torch.stack(values)


def per_output_loop_gc(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """p backward passes over the whole batch (the sum-over-batch trick, not vectorised)."""
    xb = x.clone().requires_grad_(True)
    out = fn(xb)
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for k in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, k].sum(), xb, retain_graph=True)
        total = total + g.double().square().flatten(1).sum(dim=1)
    return total


def mlp_embedding(device: torch.device) -> nn.Module:
    """A p = 512 MLP embedding of flattened 3×32×32 inputs, 3072-1024-512 with ReLU."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 1024), nn.ReLU(), nn.Linear(1024, 512)).to(
        device
    )


def func_vmap_gc(fn: nn.Module, x: Tensor, *, chunk_size: int = 32) -> Tensor:
    """``torch.func``: one forward, ``vmap`` of the VJP over chunks of output directions,
    which folds each chunk into the batch of every kernel. ``torch.func`` differentiates at
    its own level, so no graph to the parameters is kept (``no_grad``)."""
    with torch.no_grad():
        return _func_vmap_gc(fn, x, chunk_size=chunk_size)


def _func_vmap_gc(fn: nn.Module, x: Tensor, *, chunk_size: int) -> Tensor:
    y, vjp_fn = torch.func.vjp(fn, x)
    eye = torch.eye(y.shape[1], dtype=y.dtype, device=y.device)
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for rows in eye.split(chunk_size):
        (g,) = torch.func.vmap(vjp_fn)(rows[:, None, :].expand(-1, len(x), -1))  # (K, B, ...)
        total = total + g.flatten(2).square().sum(dim=(0, 2), dtype=torch.float64)
    return total


def replicated_batch_gc(fn: nn.Module, x: Tensor, *, chunk_size: int = 32) -> Tensor:
    """The batch repeated once per output direction of a chunk (eval mode: samples are
    independent), one forward and one backward of ``Σ_k out_k[:, k]`` per chunk."""
    with torch.no_grad():
        p = fn(x[:1]).shape[1]
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    for start in range(0, p, chunk_size):
        k = min(chunk_size, p - start)
        xr = x.repeat(k, *([1] * (x.dim() - 1))).requires_grad_(True)  # (K·B, ...)
        out = fn(xr).view(k, len(x), p)[:, :, start : start + k]  # (K, B, K)
        (g,) = torch.autograd.grad(out.diagonal(dim1=0, dim2=2).sum(), xr)
        total = total + g.view(k, len(x), -1).square().sum(dim=(0, 2), dtype=torch.float64)
    return total


def row_gflop(fn: nn.Module, x: Tensor) -> float:
    """GFLOP of the p Jacobian rows of one sample: one single-sample VJP's count, times p."""
    xb = x[:1].clone().requires_grad_(True)
    out = fn(xb)
    with FlopCounterMode(display=False) as counter:
        torch.autograd.grad(out[0, 0], xb)
    return counter.get_total_flops() * out.shape[1] / 1e9


def matmul_gflops(device: torch.device, *, n: int = 1024, repeats: int = 5) -> float:
    """The float32 matrix-product rate of the device (an upper bound for the conv kernels)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    ms, _ = timed(lambda: a @ b, repeats=repeats, device=device, warmup=True)
    return 2 * n**3 / (ms / 1e3) / 1e9


def exact_vs_loops(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Section 1: exact GC per sample, vectorised vs other vectorised forms and autograd loops
    (same values), on the VGG-like and the MLP embedding."""
    nets = {"VGG-like": embedding_net(args, device), "MLP": mlp_embedding(device)}
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    few = x[: args.loop_samples]
    methods: dict[str, tuple[Callable[[nn.Module, Tensor], Tensor], Tensor]] = {
        "vectorised (exact)": (gc_per_sample, x),
        "torch.func vmap(vjp)": (func_vmap_gc, x),
        "replicated batch": (replicated_batch_gc, x),
        "per-output loop": (per_output_loop_gc, x),
        "per-sample-output loop": (naive_per_sample_gc, few),
    }
    rows = []
    for net_name, fn in nets.items():
        gflop = row_gflop(fn, x)
        runs = {}
        for name, (method, inputs) in methods.items():
            ms, values = timed(
                lambda fn=fn, method=method, inputs=inputs: method(fn, inputs),
                repeats=args.repeats,
                device=device,
            )
            runs[name] = (ms / len(inputs), values)
        base_ms, ref = runs["vectorised (exact)"]
        for name, (ms, values) in runs.items():
            rows.append(
                {
                    "net": net_name,
                    "method": name,
                    "ms/sample": ms,
                    "x slower than vectorised": ms / base_ms,
                    "GFLOP/s": gflop / (ms / 1e3),
                    "max rel diff": float(
                        ((values - ref[: len(values)]) / ref[: len(values)]).abs().max()
                    ),
                }
            )
    rows.append(
        {
            "net": "-",
            "method": "float32 matmul 1024³ (device bound)",
            "ms/sample": math.nan,
            "x slower than vectorised": math.nan,
            "GFLOP/s": matmul_gflops(device),
            "max rel diff": math.nan,
        }
    )
    return rows


ESTIMATOR_CASES: list[tuple[str, dict[str, Any]]] = [
    ("batch", {"size": 0}),  # size filled in as batch / 8
    ("output_sample", {}),
    ("mask", {"mode": "entries"}),
    ("mask", {"mode": "rows", "q": 0.125}),
    ("mask", {"mode": "cols", "q": 0.02}),
    ("projection", {}),
    ("projection", {"probes": 64}),
    ("projection", {"probes": 64, "dist": "gaussian"}),
    ("projection", {"probes": 64, "dist": "rademacher"}),
    ("projection", {"probes": 8}),
]


@contextlib.contextmanager
def counting_products() -> Iterator[list[int]]:
    """Count Jacobian products (one per sample and direction) of every VJP/JVP pass inside:
    a cost measure that, unlike time, does not depend on what else the machine runs."""
    count = [0]
    vjp, jvp = Linearization.vjp, Linearization.jvp

    def counted(product: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def wrapper(self: Linearization, directions: Tensor) -> Tensor:
            count[0] += directions.shape[0] * directions.shape[1]
            return product(self, directions)

        return wrapper

    Linearization.vjp, Linearization.jvp = counted(vjp), counted(jvp)
    try:
        yield count
    finally:
        Linearization.vjp, Linearization.jvp = vjp, jvp


def estimators(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Section 2: cost and error of each estimator vs exact GC on the p = 512 embedding."""
    fn = embedding_net(args, device)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    exact_ms, exact = timed(
        lambda: float(gc_per_sample(fn, x).mean()), repeats=args.repeats, device=device
    )
    rows = [
        {
            "estimator": "exact",
            "ms": exact_ms,
            "time vs exact": 1.0,
            "products/sample": 512.0,
            "rms rel err": 0.0,
        }
    ]
    for name, options in ESTIMATOR_CASES:
        if name == "batch":
            options = {"size": max(1, args.batch // 8)}
        gen = torch.Generator(device=device).manual_seed(0)

        def draw(
            name: str = name, options: dict[str, Any] = options, gen: torch.Generator = gen
        ) -> float:
            return float(gc_per_sample(fn, x, estimator=name, generator=gen, **options).mean())

        with counting_products() as count:
            draws = [timed(draw, device=device) for _ in range(args.estimator_draws)]
        best = min(ms for ms, _ in draws)
        rms = math.sqrt(sum((est / exact - 1) ** 2 for _, est in draws) / len(draws))
        rows.append(
            {
                "estimator": gc_estimator_label(name, options),
                "ms": best,
                "time vs exact": best / exact_ms,
                "products/sample": count[0] / (len(draws) * args.batch),
                "rms rel err": rms,
            }
        )
    return rows


def fewshot(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Section 3: 600 five-way five-shot episodes, 15 queries, 20 classes x 600, p = 512."""
    torch.manual_seed(0)
    labels = torch.arange(20).repeat_interleave(600)
    emb = (torch.randn(len(labels), 512) + 0.3 * torch.randn(20, 512)[labels]).to(device)
    kw = {"ways": 5, "shots": 5, "queries": 15, "episodes": 600, "seed": 0}
    sample_ms, _ = timed(
        lambda: sample_episodes(labels, **kw), repeats=args.repeats, device=device, warmup=True
    )
    total_ms, (acc, ci) = timed(
        lambda: fewshot_ncc(emb, labels, **kw), repeats=args.repeats, device=device, warmup=True
    )
    return [
        {"step": "sample_episodes", "ms": sample_ms, "result": ""},
        {"step": "fewshot_ncc (incl. sampling)", "ms": total_ms, "result": f"{acc:.3f} ± {ci:.3f}"},
    ]


def gpu_epoch_and_metrics(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Section 4: one VGG-13 training epoch on CIFAR-shaped random data, and a metric pass
    (SPEC 4 defaults: exact GC on 4 batches of 128, NC on 200 per class, 600 episodes)."""
    if device.type != "cuda":
        return [{"step": "skipped", "detail": "CUDA not available"}]
    return epoch_and_metrics(args, device)


def epoch_and_metrics(
    args: argparse.Namespace, device: torch.device, *, config: list[int | str] = VGG13
) -> list[Row]:
    """The body of section 4 on any device; a smaller ``config`` and ``args`` make a smoke run."""
    torch.manual_seed(0)
    n, classes, p = args.epoch_samples, 10, [c for c in config if c != "M"][-1]
    data = torch.randn(n, 3, 32, 32, device=device)
    labels = torch.randint(0, classes, (n,), device=device)
    model = vgg(config, num_classes=classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def epoch() -> None:
        model.train()
        for idx in torch.randperm(n, device=device).split(256):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(data[idx]), labels[idx]).backward()
            opt.step()

    def metric_pass() -> None:
        model.eval()
        embed = model[0]
        for batch in data[: args.gc_samples].split(128):
            gc_per_sample(embed, batch, chunk_size=args.gpu_chunk)
        stats = ClassStats.empty(classes, p, device=device)
        with torch.no_grad():
            for batch, y in zip(data[:2000].split(500), labels[:2000].split(500), strict=True):
                stats.update(embed(batch), y)
            emb = torch.cat([embed(b) for b in data[:12000].split(1000)])
        cdnv_from_stats(stats)
        fewshot_ncc(emb, labels[: len(emb)].cpu(), episodes=600)

    epoch_ms, _ = timed(epoch, device=device)
    metric_ms, _ = timed(metric_pass, device=device)
    gc_batches = math.ceil(args.gc_samples / 128)
    return [
        {"step": f"train epoch ({n} samples, batch 256)", "s": epoch_ms / 1e3},
        {
            "step": f"metric pass (exact GC {gc_batches}x128, NC 2000, 600 episodes)",
            "s": metric_ms / 1e3,
        },
    ]


def quickstart_epoch_vs_evaluation(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Section 4: the real training loop and evaluation of the quickstart's trial config."""
    from pathlib import Path

    from orchestrator.studyfile import load_spec
    from trainables.config import TrialConfig
    from trainables.data import load_dataset
    from trainables.train import _Trial

    path = Path(__file__).resolve().parents[1] / "studies" / "quickstart.toml"
    base = load_spec(path).base_config()
    base["train"]["device"] = device.type
    rows = []
    projection = {"gc_estimator": "projection", "gc_options": {"probes": 8, "dist": "sphere"}}
    for gc in ({}, projection):
        cfg = TrialConfig.from_dict(base | {"metrics": base["metrics"] | gc})
        trial = _Trial(cfg, load_dataset(cfg.data).to(device), device)
        trial.train_epoch()  # warm-up
        epoch_ms, _ = timed(trial.train_epoch, repeats=args.repeats, device=device)
        eval_ms, _ = timed(trial.evaluate, repeats=args.repeats, device=device)
        rows.append(
            {
                "GC estimator": gc_estimator_label(
                    cfg.metrics.gc_estimator, cfg.metrics.gc_options
                ),
                "epoch s": epoch_ms / 1e3,
                "full evaluation s": eval_ms / 1e3,
                "evaluation / epoch": eval_ms / epoch_ms,
                "evaluation / epoch at metrics.every": eval_ms / epoch_ms / cfg.metrics.every,
            }
        )
    return rows


def layer_configs(device: torch.device) -> list[tuple[str, dict[str, Any]]]:
    """The trial configs of section 5: the quickstart's (its metrics as the study sets
    them: exact GC on 256 images, 600 + 600 episodes) and ResNet-18 at 32×32 on synthetic
    data (5 source classes of 80 training images, 5 target classes; GC by 16 projection
    probes on 40 images, as a study with p = 512 would measure it)."""
    from pathlib import Path

    from orchestrator.studyfile import load_spec

    path = Path(__file__).resolve().parents[1] / "studies" / "quickstart.toml"
    quickstart = load_spec(path).base_config()
    quickstart["train"]["device"] = device.type
    resnet = {
        "data": {
            "name": "synthetic",
            "options": {"n_classes": 10, "n_per_class": 100, "image_size": 32, "channels": 3},
            "source_classes": [0, 1, 2, 3, 4],
            "target_classes": [5, 6, 7, 8, 9],
        },
        "model": {"name": "resnet18"},
        "train": {"lr": 0.01, "batch_size": 128, "device": device.type},
        "metrics": {
            "gc_estimator": "projection",
            "gc_options": {"probes": 16, "dist": "sphere"},
            "gc_batches": 1,
            "gc_batch_size": 40,
            "gc_min_per_class": 8,
            "nc_per_class": 50,
        },
    }
    return [("quickstart (VGG-11 w8, digits)", quickstart), ("ResNet-18 32x32", resnet)]


def layers_vs_last(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Section 5: the real evaluation with ``metrics.layers = "all"`` against ``"last"``
    (the same trial, the same state) and against one training epoch."""
    return [layer_row(label, config, args, device) for label, config in layer_configs(device)]


def layer_row(
    label: str, config: dict[str, Any], args: argparse.Namespace, device: torch.device
) -> Row:
    from trainables.config import TrialConfig
    from trainables.data import load_dataset
    from trainables.evaluate import evaluate
    from trainables.train import _Trial

    cfg = TrialConfig.from_dict(config)
    trial = _Trial(cfg, load_dataset(cfg.data).to(device), device)
    trial.train_epoch()  # warm-up; BatchNorm statistics of a net in training
    epoch_ms, _ = timed(trial.train_epoch, repeats=args.repeats, device=device)
    ms = {}
    for gc in (True, False):
        for layers in ("last", "all"):
            metrics = cfg.metrics.model_copy(update={"layers": layers, "gc": gc})
            ms[gc, layers], _ = timed(
                lambda m=metrics: evaluate(trial.model, trial.data, trial.plan, m, epoch=1),
                repeats=args.repeats,
                device=device,
            )
    added = ms[True, "all"] - ms[True, "last"]
    return {
        "model": label,
        "layers": len(trial.model.layer_names()),
        "GC estimator": gc_estimator_label(cfg.metrics.gc_estimator, cfg.metrics.gc_options),
        "epoch s": epoch_ms / 1e3,
        "last-layer eval s": ms[True, "last"] / 1e3,
        "all-layer eval s": ms[True, "all"] / 1e3,
        "all / last": ms[True, "all"] / ms[True, "last"],
        "all / last without GC": ms[False, "all"] / ms[False, "last"],
        "GC share of last": 1 - ms[False, "last"] / ms[True, "last"],
        "last / epoch": ms[True, "last"] / epoch_ms,
        "all / epoch": ms[True, "all"] / epoch_ms,
        "added / epoch at metrics.every": added / epoch_ms / cfg.metrics.every,
    }


SECTIONS: list[tuple[str, str, Callable[[argparse.Namespace, torch.device], list[Row]]]] = [
    ("exact", "exact GC: vectorised vs other forms and autograd loops (p = 512)", exact_vs_loops),
    ("estimators", "GC estimators vs exact (p = 512 VGG-like embedding)", estimators),
    ("fewshot", "few-shot: 600 episodes, 5-way 5-shot 15 queries", fewshot),
    (
        "quickstart",
        "quickstart: one training epoch vs one full metric evaluation",
        quickstart_epoch_vs_evaluation,
    ),
    (
        "layers",
        "per-layer measures: an all-layer evaluation vs a last-layer one and an epoch",
        layers_vs_last,
    ),
    ("gpu", "GPU: VGG-13 epoch and metric pass", gpu_epoch_and_metrics),
]


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n## {title}")
    keys = list(rows[0])
    cells = [[f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 3 min on 2 cores")
    parser.add_argument("--gpu", action="store_true", help="run on CUDA and add section 4")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[key for key, _, _ in SECTIONS],
        help="run only these sections (gpu needs --gpu too)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.width = 16
    args.batch = 8 if quick else 32
    args.loop_samples = 1 if quick else 2
    args.repeats = 2
    args.estimator_draws = 2 if quick else 5
    args.epoch_samples = 50_000
    args.gc_samples = 512  # SPEC 4: GC on 4 batches of 128
    args.gpu_chunk = 32
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.gpu and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    print(
        f"device: {device} | torch {torch.__version__} | threads {torch.get_num_threads()}"
        f" | quick={args.quick} | batch {args.batch}"
    )
    for key, title, section in SECTIONS:
        if (key == "gpu" and not args.gpu) or (args.only and key not in args.only):
            continue
        start = time.perf_counter()
        print_table(title, section(args, device))
        print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
