"""Write a synthetic study directory laid out as the orchestrator's metrics sink writes it.

The curves follow the paper's claims (SPEC 1, 4) with a tunable sign and strength:
GC, geometric collapse and NC fall with a larger learning rate, a smaller batch, a stronger
L2 and a stronger GC regulariser; target NC follows source GC and few-shot accuracy moves
the other way. Seeds add multiplicative noise.

The files are written by the sink's own code (:mod:`orchestrator.sink`,
:mod:`orchestrator.parts`), so the layout is the one docs/schema.md describes: finished
trials merged into part files every ``merge_every`` trials, the last few still in their
``compacted.parquet``, and running trials' rows in ``rolled.parquet`` plus per-epoch files.
It also holds what a real run leaves behind: a merge that stopped before removing its inputs
(the same rows twice), restarted trials whose first attempt's superseded rows (older
``written_at``) stay in ``rolled.parquet`` beside the replay's newer per-epoch files, a
compaction of such a trial that stopped before removing its other files, a diverged trial,
and null columns for everything the study did not measure.

Superseded rows carry ``STALE`` values, so a reader that keeps one of them is easy to catch.

With ``layers`` it also writes a layers table (docs/schema.md), one row per (trial,
evaluation, layer): each inner layer's quantities follow the trends scaled by its own
``layer_effects`` entry (drawn from a generator of their own, so the metrics are the same
with or without layers), the last layer's are the metrics row's (it is the embedding).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.parts import PART_ROWS, merge_finished
from orchestrator.sink import ROLL_EVERY, RowContext, TableSink, TrialSink
from studyfiles import StudyDir
from studyfiles.storage import Storage
from studyfiles.tables import to_bytes

STALE = 1.0e6
HYPER_KEYS = ("train.lr", "train.batch_size", "train.l2", "train.gc_reg.alpha", "train.seed")
PROBES_KEY = "metrics.gc.probes"
_T0 = np.datetime64("2025-01-01T00:00:00", "ns")

_FLOAT_METRICS = [
    *("train_loss", "train_acc", "test_acc", "gc", "gc_exact", "gc_logits", "geo_collapse"),
    *("nc_cdnv", "nc1", "nc2_etf", "nc2_equinorm", "nc3", "nc4", "target_nc_cdnv"),
    *("ncc_test_error", "nc_bound", "poincare_kappa", "geocol_bound", "fewshot_nc_bound"),
]


@dataclass(frozen=True)
class SyntheticSpec:
    """What to write. ``effect`` scales the paper's trends: 1 as claimed, -1 reversed, 0 none."""

    name: str = "synthetic"
    lrs: tuple[float, ...] = (0.005, 0.02, 0.1)
    batch_sizes: tuple[int, ...] = (256,)
    l2s: tuple[float, ...] = (0.0,)
    alphas: tuple[float, ...] = (0.0,)
    seeds: tuple[int, ...] = (0, 1, 2)
    probes: tuple[int, ...] = ()  # non-empty: a robustness study (estimates and exact GC)
    epochs: int = 10
    effect: float = 1.0
    noise: float = 0.05
    transfer: bool = True
    shots: tuple[int, ...] = (1, 5)
    bound: bool = False
    running: int = 1  # trials still running (half their epochs): rolled and per-epoch files
    restarted: int = 1  # running trials restarted from a checkpoint after a roll-up
    leftovers: int = 1  # the last finished trials: restarted, and their compaction stopped
    stopped_merge: bool = True  # the last merge stopped before removing its inputs
    diverged: int = 0  # trials at the highest lr whose loss goes non-finite midway
    merge_every: int = 3  # the driver merges finished trials once this many wait
    roll_every: int = ROLL_EVERY  # a running trial rolls its per-epoch files up this often
    part_rows: int = PART_ROWS
    replayed: int = 2  # epochs before its stop that a restarted trial replays
    rng_seed: int = 0
    extra_spec: dict = field(default_factory=dict)
    # A search instead of the sweep: the ``[search]`` table study.json holds (its space keys
    # are the study's sweep_params). The trials are still the grid's points, as a searcher
    # over choices may propose them.
    search: dict | None = None
    stopped: dict[int, int] = field(default_factory=dict)  # trial index -> epoch the
    # scheduler stopped it at: its rows end there and trials.parquet says "stopped"
    # One-at-a-time sweeps around this config (e.g. {"train.lr": 0.02, "train.batch_size":
    # 64, "train.l2": 0.0}): each swept key takes its values with the others at the centre,
    # as studies/quickstart.toml does; None: the full product of lrs × batch sizes × ...
    centre: dict | None = None
    # Replaces the trends above: ``curves(spec, configs)`` returns every metric of
    # :func:`metric_schema` as a (trials, epochs + 1) array (benchmarks/bench_verdicts.py).
    curves: Callable[[SyntheticSpec, list[dict]], dict[str, np.ndarray]] | None = None
    # The measured layers' names, from the input (empty: no layers table); the last is the
    # embedding, unless ``layer_embedding`` is False (a list of inner layers only).
    layers: tuple[str, ...] = ()
    layer_embedding: bool = True
    # The trends' scale at each inner layer, as ``effect`` (default: ``effect`` at each).
    layer_effects: tuple[float, ...] = ()
    # trial index -> the last epoch with layer rows (-1: none): layer rows that stop short
    layers_until: dict[int, int] = field(default_factory=dict)

    def swept(self) -> dict[str, tuple]:
        """The study's grid: every hyperparameter with more than one value, plus the seed."""
        grid = {
            "train.lr": self.lrs,
            "train.batch_size": self.batch_sizes,
            "train.l2": self.l2s,
            "train.gc_reg.alpha": self.alphas,
        }
        if self.probes:
            grid[PROBES_KEY] = self.probes
        out = {k: v for k, v in grid.items() if len(v) > 1}
        out["train.seed"] = self.seeds
        return out


def write_synthetic_study(path: str | os.PathLike, spec: SyntheticSpec | None = None) -> str:
    """Write the study directory at ``path`` and return its absolute path."""
    spec = spec or SyntheticSpec()
    root = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.join(root, "metrics"), exist_ok=True)
    configs = _trial_configs(spec)
    rows = _metric_rows(spec, configs)
    meta = _study_json(spec)
    with open(os.path.join(root, "study.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
    _write_metrics(root, spec, rows, meta, configs)
    if spec.layers:
        _write_layers(root, spec, rows, meta, configs)
    return root


#: The search study's test_acc at epoch 0 per trial; it rises by 0.02 an epoch.
SEARCH_TEST_ACC = (0.10, 0.14, 0.12, 0.21, 0.22, 0.26, 0.05, 0.40, 0.44, 0.95, 0.30, 0.90)


def search_spec(**changes) -> SyntheticSpec:
    """A TPE search with ASHA over ``train.lr`` and ``train.seed`` whose ``test_acc`` is
    known: trial ``i`` (4 lrs × 3 seeds, lr outermost; at most 12 trials) has
    ``SEARCH_TEST_ACC[i] + 0.02 * epoch`` over 8 epochs. t00003 and t00006 were stopped at
    epochs 4 and 2, t00009 diverged at epoch 4 (its metrics null there), t00011 is still
    running at epoch 3."""
    lrs = (0.01, 0.02, 0.05, 0.1)

    def curves(spec: SyntheticSpec, configs: list[dict]) -> dict[str, np.ndarray]:
        start = np.array(SEARCH_TEST_ACC[: len(configs)])[:, None]
        acc = start + 0.02 * np.arange(spec.epochs + 1)[None, :]
        return _curves(spec, configs) | {"test_acc": acc}

    search = {
        "algorithm": "tpe",
        "metric": "test_acc",
        "mode": "max",
        "budget": 12,
        "seed": 0,
        "space": {"train.lr": {"choice": list(lrs)}, "train.seed": {"choice": [0, 1, 2]}},
    }
    scheduler = {"type": "asha", "metric": None, "mode": None, "grace_period": 2}
    base = {
        "name": "lr-search",
        "lrs": lrs,
        "seeds": (0, 1, 2),
        "epochs": 8,
        "diverged": 1,
        "transfer": False,
        "shots": (),
        "curves": curves,
        "stopped": {3: 4, 6: 2},
        "search": search,
        "extra_spec": {"scheduler": scheduler},
    }
    return SyntheticSpec(**(base | changes))


def metric_schema(spec: SyntheticSpec) -> pa.Schema:
    """The metrics table's Arrow schema for this study (docs/schema.md)."""
    fields = [
        ("study", pa.string()),
        ("trial_id", pa.string()),
        ("epoch", pa.int64()),
        ("step", pa.int64()),
        ("written_at", pa.timestamp("ns", tz="UTC")),
        ("spec_hash", pa.string()),
        ("code_version", pa.string()),
        *_hyper_fields(spec),
        *[(m, pa.float64()) for m in _FLOAT_METRICS[:5]],
        ("gc_estimator", pa.string()),
        *[(m, pa.float64()) for m in _FLOAT_METRICS[5:]],
    ]
    for k in spec.shots:
        fields += [(f"fewshot_acc_{k}shot", pa.float64()), (f"fewshot_ci_{k}shot", pa.float64())]
    fields += [("diverged", pa.bool_()), ("wall_time_s", pa.float64())]
    return pa.schema(fields)


def _hyper_fields(spec: SyntheticSpec) -> list[tuple[str, pa.DataType]]:
    fields = [
        ("train.lr", pa.float64()),
        ("train.batch_size", pa.int64()),
        ("train.l2", pa.float64()),
        ("train.gc_reg.alpha", pa.float64()),
        ("train.seed", pa.int64()),
    ]
    return fields + ([(PROBES_KEY, pa.int64())] if spec.probes else [])


def _settings(spec: SyntheticSpec) -> list[tuple]:
    """(lr, batch size, l2, alpha) of each setting: the full grid, or one-at-a-time sweeps."""
    axes = (spec.lrs, spec.batch_sizes, spec.l2s, spec.alphas)
    if spec.centre is None:
        return list(itertools.product(*axes))
    centre = tuple(spec.centre.get(k, a[0]) for k, a in zip(HYPER_KEYS[:4], axes, strict=True))
    out = [centre]
    for j, axis in enumerate(axes):
        out += [(*centre[:j], v, *centre[j + 1 :]) for v in axis]
    return list(dict.fromkeys(out))


def _trial_configs(spec: SyntheticSpec) -> list[dict]:
    probes = spec.probes or (0,)
    grid = ((*s, p, seed) for s in _settings(spec) for p in probes for seed in spec.seeds)
    configs = []
    for i, (lr, bs, l2, alpha, p, seed) in enumerate(grid):
        cfg = {"trial_id": f"t{i:05d}", "train.lr": lr, "train.batch_size": bs, "train.l2": l2}
        cfg.update({"train.gc_reg.alpha": alpha, "train.seed": seed})
        if spec.probes:
            cfg[PROBES_KEY] = p
        configs.append(cfg)
    return configs


def _curves(spec: SyntheticSpec, configs: list[dict]) -> dict[str, np.ndarray]:
    """Every metric as a (trials, epochs + 1) array."""
    rng = np.random.default_rng(spec.rng_seed)
    col = {k: np.array([c[k] for c in configs], dtype=float)[:, None] for k in HYPER_KEYS}
    e = np.arange(spec.epochs + 1, dtype=float)[None, :]
    shape = (len(configs), spec.epochs + 1)
    speed = (col["train.lr"] / 0.01) * (256.0 / col["train.batch_size"])
    trial_noise = rng.normal(0.0, spec.noise, (len(configs), 1))
    wiggle = np.exp(trial_noise + rng.normal(0.0, spec.noise / 4, shape))
    progress = 1.0 - np.exp(-e / 3.0)
    log_s = (
        -0.4 * np.log(col["train.lr"] / 0.01)
        + 0.3 * np.log(col["train.batch_size"] / 256.0)
        - 0.4 * np.log1p(col["train.l2"] * 1e3)
        - 0.3 * np.log1p(col["train.gc_reg.alpha"] * 1e6)
    )
    s = np.exp(spec.effect * log_s * progress) * wiggle
    loss = 2.3 * np.exp(-0.3 * speed**0.7 * e) * wiggle + 1e-3
    out = {"train_loss": loss, "train_acc": 1.0 - 0.9 * np.sqrt(np.minimum(loss / 2.3, 1.0))}
    out["test_acc"] = 0.85 * out["train_acc"]

    def own(arr: np.ndarray) -> np.ndarray:  # each quantity gets its own seed noise
        return arr * np.exp(rng.normal(0.0, spec.noise, (len(configs), 1)))

    out["gc"] = own(20.0 * (1.0 + 0.5 * progress) * s)
    out["geo_collapse"] = own(0.4 * np.exp(-0.5 * progress) * s)
    out["nc_cdnv"] = own(0.1 * np.exp(-progress) * s)
    for name, scale in (("nc1", 2.0), ("nc2_etf", 0.5), ("nc2_equinorm", 0.2), ("nc3", 0.8)):
        out[name] = own(scale * np.exp(-progress) * s)
    out["nc4"] = own(0.3 * np.exp(-2.0 * progress) * s)
    out["gc_logits"] = np.full(shape, np.nan)
    return out | _optional_curves(spec, configs, out, rng)


def _optional_curves(spec, configs, out, rng) -> dict[str, np.ndarray]:
    shape = out["gc"].shape
    nan = np.full(shape, np.nan)
    extra = {"gc_exact": nan, "target_nc_cdnv": nan, "ncc_test_error": nan, "nc_bound": nan}
    extra |= {"poincare_kappa": nan, "geocol_bound": nan, "fewshot_nc_bound": nan}
    if spec.probes:
        probes = np.array([c[PROBES_KEY] for c in configs], dtype=float)[:, None]
        extra["gc_exact"] = out["gc"]
        out["gc"] = out["gc"] * (1.0 + rng.normal(0.0, 1.0, shape) / np.sqrt(probes))
    if spec.transfer:
        target = 2.0 * np.sqrt(out["nc_cdnv"] / 0.1) * np.exp(rng.normal(0.0, spec.noise, shape))
        extra["target_nc_cdnv"] = target
        for k in spec.shots:
            acc = 0.55 + 0.06 * np.log(k) - 0.15 * np.log(target / 2.0)
            extra[f"fewshot_acc_{k}shot"] = np.clip(acc, 0.0, 1.0)
            extra[f"fewshot_ci_{k}shot"] = np.full(shape, 0.01)
    else:
        for k in spec.shots:
            extra[f"fewshot_acc_{k}shot"] = extra[f"fewshot_ci_{k}shot"] = nan
    if spec.bound:
        extra["ncc_test_error"] = 0.5 * np.sqrt(out["train_loss"] / 2.3) + 0.1
        extra["nc_bound"] = 1.5 * extra["ncc_test_error"] + 0.05
    return extra


def _diverged_trials(spec: SyntheticSpec, configs: list[dict]) -> set[int]:
    top = [i for i, c in enumerate(configs) if c["train.lr"] == max(spec.lrs)]
    return set(top[: spec.diverged])


def _metric_rows(spec: SyntheticSpec, configs: list[dict]) -> dict[str, np.ndarray]:
    """Flat columns over (trial, epoch), with diverged trials cut short and nulled."""
    curves = (spec.curves or _curves)(spec, configs)
    n_t, n_e = len(configs), spec.epochs + 1
    keep = np.ones((n_t, n_e), dtype=bool)
    diverged = np.zeros((n_t, n_e), dtype=bool)
    stop = spec.epochs // 2
    for i in _diverged_trials(spec, configs):
        keep[i, stop + 1 :] = False
        diverged[i, stop] = True
        for arr in curves.values():
            arr[i, stop] = np.nan
    for i, last in spec.stopped.items():
        keep[i, last + 1 :] = False
    epoch = np.broadcast_to(np.arange(n_e), (n_t, n_e))
    batch = np.array([c["train.batch_size"] for c in configs])[:, None]
    rows = {name: arr[keep] for name, arr in curves.items()}
    rows["trial"] = np.broadcast_to(np.arange(n_t)[:, None], (n_t, n_e))[keep]
    rows["epoch"] = epoch[keep]
    rows["step"] = (epoch * -(-50_000 // batch))[keep]
    rows["diverged"] = diverged[keep]
    rows["wall_time_s"] = (epoch * 12.5 + 0.1)[keep]
    rows["written_at"] = _T0 + (rows["trial"] * 1000 + rows["epoch"] * 10).astype("m8[s]")
    return rows


def _study_json(spec: SyntheticSpec) -> dict:
    body = {
        "train": {
            "lr": (spec.centre or {}).get("train.lr", spec.lrs[0]),
            "batch_size": (spec.centre or {}).get("train.batch_size", spec.batch_sizes[0]),
            "epochs": spec.epochs,
        },
        **({"search": spec.search} if spec.search else {"sweep": _sweep_json(spec)}),
        **({"metrics": {"layers": list(spec.layers)}} if spec.layers else {}),
        **spec.extra_spec,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {
        "name": spec.name,
        "spec": body,
        "spec_hash": hashlib.sha256(canonical.encode()).hexdigest()[:16],
        "sweep_params": list(spec.search["space"] if spec.search else spec.swept()),
        "seed_param": "train.seed",
        "code_version": "gcnc 0.1.0 (synthetic)",
        "packages": {"python": "3.11", "pyarrow": pa.__version__},
        "created_at": "2025-01-01T00:00:00Z",
    }


def _sweep_json(spec: SyntheticSpec) -> dict:
    grid = {k: list(v) for k, v in spec.swept().items()}
    if spec.centre is None:
        return {"grid": grid}
    seeds = grid.pop("train.seed")
    return {"centre": dict(spec.centre), "grids": [{k: v} for k, v in grid.items()], "seeds": seeds}


def _metrics_table(spec, rows, meta, configs, sel: np.ndarray) -> pa.Table:
    schema = metric_schema(spec)
    n = int(sel.sum()) if sel.dtype == bool else len(sel)
    trial = rows["trial"][sel]
    cols = {
        "study": [spec.name] * n,
        "trial_id": [configs[t]["trial_id"] for t in trial],
        "spec_hash": [meta["spec_hash"]] * n,
        "code_version": [meta["code_version"]] * n,
        "gc_estimator": _estimator_labels(spec, configs, trial),
    }
    for key in [f.name for f in schema if f.name in configs[0]]:
        cols[key] = [configs[t][key] for t in trial]
    for name in schema.names:
        if name not in cols:
            cols[name] = rows[name][sel]
    arrays = [_array(cols[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _array(values, typ: pa.DataType) -> pa.Array:
    if pa.types.is_floating(typ):
        values = np.asarray(values, dtype=float)
        return pa.array(values, type=typ, mask=np.isnan(values))
    if pa.types.is_timestamp(typ):
        return pa.array(np.asarray(values).astype("M8[ns]")).cast(typ)
    return pa.array(values, type=typ)


def _estimator_labels(spec, configs, trial) -> list[str]:
    if not spec.probes:
        return ["exact"] * len(trial)
    return [f"projection(dist=sphere,probes={configs[t][PROBES_KEY]})" for t in trial]


def _write_metrics(root, spec, rows, meta, configs) -> None:
    """Every trial's rows through the sink, in the order a run would write them."""
    sdir = StudyDir(Storage.open(root))
    ctx = _row_context(spec, meta)
    n_t = len(configs)
    running = list(range(n_t - spec.running, n_t))
    restarted = set(running[: spec.restarted])
    finished = list(range(n_t - spec.running))
    late = finished[len(finished) - spec.leftovers :] if spec.leftovers else []
    normal = [t for t in finished if t not in late]
    last_merge = len(normal) - len(normal) % spec.merge_every
    table = _metrics_table(spec, rows, meta, configs, np.ones(len(rows["trial"]), dtype=bool))
    bounds = np.searchsorted(rows["trial"], np.arange(n_t + 1))
    parts = [table.slice(bounds[t], bounds[t + 1] - bounds[t]) for t in range(n_t)]
    for t in running:  # half-way through
        parts[t] = parts[t].slice(0, max(1, parts[t].num_rows // 2))

    merge = functools.partial(
        merge_finished, sdir, min_trials=spec.merge_every, part_rows=spec.part_rows
    )
    for done, t in enumerate(normal, start=1):  # compacted, merged every merge_every trials
        sdir.storage.write_bytes(sdir.compacted_file(configs[t]["trial_id"]), to_bytes(parts[t]))
        if done % spec.merge_every == 0:
            if spec.stopped_merge and done == last_merge:
                _stopped(sdir, merge)
            else:
                merge()
    for t in late:  # restarted, then their compaction stopped before removing other files
        _stopped(sdir, _restarted(sdir, ctx, spec, configs[t], parts[t]).compact)
    for t in running:
        if t in restarted:
            _restarted(sdir, ctx, spec, configs[t], parts[t])
            continue
        sink = _sink(sdir, ctx, spec, configs[t])
        for e in range(parts[t].num_rows):
            sink.write_row(parts[t].slice(e, 1))
    trial_rows = [
        _trial_row(spec, cfg, parts[t], _status(spec, t, running), t in restarted or t in late)
        for t, cfg in enumerate(configs)
    ]
    _write_trials(root, spec, trial_rows)


def _status(spec: SyntheticSpec, t: int, running: list[int]) -> str:
    if t in running:
        return "running"
    return "stopped" if t in spec.stopped else "done"


def _row_context(spec: SyntheticSpec, meta: dict) -> RowContext:
    kinds = {pa.float64(): "double", pa.int64(): "int64"}
    params = {name: kinds[typ] for name, typ in _hyper_fields(spec)}
    return RowContext(spec.name, meta["spec_hash"], meta["code_version"], params, spec.shots)


def _sink(sdir: StudyDir, ctx: RowContext, spec: SyntheticSpec, cfg: dict) -> TrialSink:
    params = {k: v for k, v in cfg.items() if k != "trial_id"}
    return TrialSink(sdir, ctx, cfg["trial_id"], params, roll_every=spec.roll_every)


def _restarted(sdir, ctx, spec: SyntheticSpec, cfg: dict, part: pa.Table) -> TrialSink:
    """A trial stopped right after a roll-up and restarted ``replayed`` epochs back.

    The first attempt's rows of the replayed epochs are ``STALE`` and older; they stay in
    ``rolled.parquet`` beside the replay's per-epoch files while the replay is too short to
    be rolled up in turn. Returns the second attempt's sink.
    """
    n, k = part.num_rows, spec.roll_every
    stopped_at = (n // k) * k or n
    checkpoint = max(0, stopped_at - spec.replayed)
    first = _sink(sdir, ctx, spec, cfg)
    for e in range(stopped_at):
        row = part.slice(e, 1)
        first.write_row(_stale(row, seconds=-500) if e >= checkpoint else row)
    second = _sink(sdir, ctx, spec, cfg)
    for e in range(checkpoint, n):
        second.write_row(part.slice(e, 1))
    return second


def _stopped(sdir: StudyDir, step: Callable[[], object]) -> None:
    """Run ``step`` as if stopped right after its writes: the files it removed come back."""
    storage = sdir.storage
    before = {path: storage.read_bytes(path) for path in storage.files(sdir.metrics)}
    step()
    after = set(storage.files(sdir.metrics))
    for path, data in before.items():
        if path not in after:
            storage.write_bytes(path, data)


def _stale(part: pa.Table, *, seconds: int) -> pa.Table:
    """The same keys written earlier, with values no reader may keep."""
    cols = {name: part.column(name) for name in part.schema.names}
    for name in ("gc", "geo_collapse", "nc_cdnv", "train_loss"):
        cols[name] = pa.array([STALE] * part.num_rows, type=pa.float64())
    shifted = np.asarray(part.column("written_at").to_numpy()) + np.timedelta64(seconds, "s")
    cols["written_at"] = _array(shifted, part.schema.field("written_at").type)
    return pa.Table.from_pydict(cols, schema=part.schema)


def _trial_row(spec, cfg, part: pa.Table, status: str, restarted: bool) -> dict:
    diverged = bool(pa.compute.any(part.column("diverged")).as_py())
    nested: dict = {}
    for key, value in cfg.items():
        if key != "trial_id":
            _set_dotted(nested, key, value)
    row = {k: v for k, v in cfg.items() if k != "trial_id"}
    row.update(
        study=spec.name,
        trial_id=cfg["trial_id"],
        status=status,
        diverged=diverged,
        attempts=2 if restarted else 1,
        error=None,
        config=json.dumps(nested, sort_keys=True),
        epochs_done=int(pa.compute.max(part.column("epoch")).as_py()),
        updated_at=np.datetime64("2025-01-02T00:00:00", "ns"),
    )
    return row


def _set_dotted(tree: dict, key: str, value) -> None:
    *parents, leaf = key.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _write_trials(root: str, spec: SyntheticSpec, trial_rows: list[dict]) -> None:
    fields = [
        ("study", pa.string()),
        ("trial_id", pa.string()),
        ("status", pa.string()),
        ("diverged", pa.bool_()),
        ("attempts", pa.int64()),
        ("error", pa.string()),
        ("config", pa.string()),
        *_hyper_fields(spec),
        ("epochs_done", pa.int64()),
        ("updated_at", pa.timestamp("ns", tz="UTC")),
    ]
    schema = pa.schema(fields)
    arrays = [_array([r[f.name] for r in trial_rows], f.type) for f in schema]
    pq.write_table(
        pa.Table.from_arrays(arrays, schema=schema), os.path.join(root, "trials.parquet")
    )


#: The layers table's quantities (docs/schema.md), few-shot columns after target NC.
LAYER_QUANTITIES = ("gc", "geo_collapse", "nc_cdnv", "nc1", "target_nc_cdnv", "ncc_test_error")


def layer_schema(spec: SyntheticSpec) -> pa.Schema:
    """The layers table's Arrow schema for this study (docs/schema.md)."""
    fields = [
        ("study", pa.string()),
        ("trial_id", pa.string()),
        ("epoch", pa.int64()),
        ("layer", pa.int64()),
        ("layer_name", pa.string()),
        ("step", pa.int64()),
        ("written_at", pa.timestamp("ns", tz="UTC")),
        ("spec_hash", pa.string()),
        ("code_version", pa.string()),
        *_hyper_fields(spec),
        ("layer_dim", pa.int64()),
        ("gc", pa.float64()),
        ("gc_estimator", pa.string()),
        *[(q, pa.float64()) for q in LAYER_QUANTITIES[1:5]],
    ]
    for k in spec.shots:
        fields += [(f"fewshot_acc_{k}shot", pa.float64()), (f"fewshot_ci_{k}shot", pa.float64())]
    return pa.schema([*fields, ("ncc_test_error", pa.float64())])


def _layer_curves(spec: SyntheticSpec, configs: list[dict]) -> list[dict[str, np.ndarray]]:
    """Each inner layer's quantities as (trials, epochs + 1) arrays: the trends scaled by
    the layer's effect, GC rising and NC falling with depth, each with its seed noise."""
    rng = np.random.default_rng([spec.rng_seed, 1])  # the metrics' generator stays as it was
    col = {k: np.array([c[k] for c in configs], dtype=float)[:, None] for k in HYPER_KEYS}
    shape = (len(configs), spec.epochs + 1)
    progress = 1.0 - np.exp(-np.arange(spec.epochs + 1, dtype=float)[None, :] / 3.0)
    log_s = (
        -0.4 * np.log(col["train.lr"] / 0.01)
        + 0.3 * np.log(col["train.batch_size"] / 256.0)
        - 0.4 * np.log1p(col["train.l2"] * 1e3)
        - 0.3 * np.log1p(col["train.gc_reg.alpha"] * 1e6)
    )
    n_inner = len(spec.layers) - (1 if spec.layer_embedding else 0)
    effects = spec.layer_effects or (spec.effect,) * n_inner

    def own(arr: np.ndarray) -> np.ndarray:
        noise = rng.normal(0.0, spec.noise, (len(configs), 1)) + rng.normal(
            0, spec.noise / 4, shape
        )
        return arr * np.exp(noise)

    out = []
    for k, effect in enumerate(effects):
        d = (k + 1) / len(spec.layers)  # depth, in (0, 1]
        s = np.exp(effect * log_s * progress)
        q = {"gc": own(5.0 * (1.0 + 3.0 * d) * (1.0 + 0.5 * progress) * s)}
        q["geo_collapse"] = own(0.8 * (1.0 - 0.5 * d) * np.exp(-0.3 * progress) * s)
        q["nc_cdnv"] = own(0.5 * (1.0 - 0.6 * d) * np.exp(-0.5 * progress) * s)
        q["nc1"] = own(4.0 * (1.0 - 0.5 * d) * np.exp(-0.5 * progress) * s)
        nan = np.full(shape, np.nan)
        q["target_nc_cdnv"] = own(3.0 * (1.0 - 0.3 * d) * np.ones(shape)) if spec.transfer else nan
        for shots in spec.shots:
            acc = 0.3 + 0.2 * d + 0.05 * np.log(shots) + rng.normal(0, 0.01, shape)
            q[f"fewshot_acc_{shots}shot"] = np.clip(acc, 0.0, 1.0) if spec.transfer else nan
            q[f"fewshot_ci_{shots}shot"] = np.full(shape, 0.01) if spec.transfer else nan
        q["ncc_test_error"] = own(0.6 - 0.3 * d + 0.0 * progress) if spec.bound else nan
        out.append(q)
    return out


def _layer_rows(spec: SyntheticSpec, rows: dict, meta: dict, configs: list[dict]) -> pa.Table:
    """Every layer row, by trial, epoch and layer: one per measured layer at each evaluation
    the metrics rows have before any divergence (and within ``layers_until``)."""
    inner = _layer_curves(spec, configs)
    schema = layer_schema(spec)
    cols: dict[str, list] = {name: [] for name in schema.names}
    estimators = _estimator_labels(spec, configs, rows["trial"])
    for i, (t, e) in enumerate(zip(rows["trial"], rows["epoch"], strict=True)):
        if rows["diverged"][i] or e > spec.layers_until.get(int(t), spec.epochs):
            continue
        for k, name in enumerate(spec.layers, start=1):
            own = inner[k - 1] if k <= len(inner) else None  # None: the embedding
            cols["study"].append(spec.name)
            cols["trial_id"].append(configs[t]["trial_id"])
            cols["layer"].append(k)
            cols["layer_name"].append(name)
            cols["layer_dim"].append(8 * 2 ** min(k, 3))
            cols["gc_estimator"].append(estimators[i])
            cols["spec_hash"].append(meta["spec_hash"])
            cols["code_version"].append(meta["code_version"])
            cols["written_at"].append(rows["written_at"][i] - np.timedelta64(1, "s"))
            for key in ("epoch", "step"):
                cols[key].append(rows[key][i])
            for key, _ in _hyper_fields(spec):
                cols[key].append(configs[t][key])
            for q in schema.names[schema.names.index("gc") :]:
                if q != "gc_estimator":
                    cols[q].append(rows[q][i] if own is None else own[q][t, e])
    arrays = [_array(cols[f.name], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_layers(root, spec: SyntheticSpec, rows, meta, configs) -> None:
    """The layers table: finished trials compacted and merged (the last one left
    compacted), running trials' first half of epochs in their folders, as the sink leaves
    them."""
    sdir = StudyDir(Storage.open(root))
    table = _layer_rows(spec, rows, meta, configs)
    ids = table.column("trial_id").to_pylist()
    n_t = len(configs)
    running = set(range(n_t - spec.running, n_t))
    finished = [t for t in range(n_t) if t not in running]
    for t in [*finished[:-1], *running, *finished[-1:]]:
        tid = configs[t]["trial_id"]
        mine = table.filter(pa.array([i == tid for i in ids]))
        if mine.num_rows == 0:
            continue
        if t in running:
            n_epochs = int((rows["trial"] == t).sum())
            epochs = mine.column("epoch").to_numpy()
            sink = TableSink(sdir, tid, table="layers", roll_every=spec.roll_every)
            for e in sorted(set(epochs[epochs < max(1, n_epochs // 2)])):
                sink.write_row(mine.filter(pa.array(epochs == e)))
            continue
        sdir.storage.write_bytes(sdir.compacted_file(tid, table="layers"), to_bytes(mine))
        if t == finished[-2 if len(finished) > 1 else -1]:
            merge_finished(sdir, min_trials=1, part_rows=spec.part_rows, table="layers")
