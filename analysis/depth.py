"""A study's layers table (docs/schema.md, "The layers table") read beside its metrics,
and its trials compared across depth.

A study with ``metrics.layers = "all"`` (or a list of layers) measures, at each
evaluation, the output of each of those layers as its metrics row measures the embedding.
:func:`read_layers` reads that table (through :attr:`StudyResults.layers`), joined to the
trials as the metrics rows are. :func:`compared` lines each finished trial's layer values
up at the final epoch and at matched training progress exactly as the analysis lines up
its metrics: the layer values join the metrics rows on ``(trial_id, epoch)``, so the final
row, the matched level and each trial's crossing of it are the metrics' own.
:func:`values` summarises them per swept value and layer (the depth figures' data), and
:func:`verdicts_by_layer` sets the verdicts of the claims across depth side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import aggregate
from analysis.load import ResultsError, StudyResults, study_dir
from analysis.options import Options
from analysis.text import fmt, interval, listed
from studyfiles import schema
from studyfiles.layout import LAYERS_TABLE
from studyfiles.tables import read_table

#: The quantities whose claims are tested at each layer: the sweep figure's (SPEC §4 E1–E5,
#: E10: GC, geometric collapse and NC lower with each mechanism).
CLAIMED = ("gc", "geo_collapse", "nc_cdnv")
#: The per-layer quantities shown, in this order (the few-shot accuracies after target NC).
QUANTITIES = ("gc", "geo_collapse", "nc_cdnv", "nc1", "target_nc_cdnv", "ncc_test_error")
_TRIAL_COLUMNS = ("trial_id", "epoch", "reached", "diverged", "trial_status")


@dataclass(frozen=True)
class Layer:
    """A measured layer: its depth (1 for the first from the input), its model's name, and
    whether it is the embedding (its values are the metrics rows')."""

    index: int
    name: str
    embedding: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} (embedding)" if self.embedding else self.name


@dataclass
class LayerTable:
    """A study's layers table.

    Attributes:
        rows: one row per ``(trial_id, epoch, layer)``, sorted so, ``trial_id`` as text,
            with ``trial_status`` and the swept keys of the trial's metrics rows.
        layers: the measured layers, from the input.
    """

    rows: pd.DataFrame
    layers: list[Layer]
    _cache: dict = field(default_factory=dict, repr=False)

    def measured(self, column: str) -> bool:
        """Whether any layer row holds a value for ``column``."""
        return column in self.rows and bool(self.rows[column].notna().any())

    def quantities(self) -> list[str]:
        """The per-layer quantities measured, in :data:`QUANTITIES`' order."""
        shots = schema.fewshot_columns(self.rows.columns)
        at = QUANTITIES.index("target_nc_cdnv") + 1
        ordered = [*QUANTITIES[:at], *shots, *QUANTITIES[at:]]
        return [q for q in ordered if self.measured(q)]

    def inner(self) -> list[Layer]:
        """The measured layers but the embedding (whose claims are the metrics table's)."""
        return [layer for layer in self.layers if not layer.embedding]

    def embedding(self) -> Layer | None:
        return next((layer for layer in self.layers if layer.embedding), None)


def column(quantity: str, layer: int) -> str:
    """The name of ``quantity`` at ``layer`` beside the metrics: ``nc_cdnv@2``."""
    return f"{quantity}@{layer}"


def read_layers(study: StudyResults) -> LayerTable | None:
    """The layers table of ``study``'s directory, or None where it has none.

    Layer rows of a trial without metrics rows are left out, and trials whose layer rows
    stop short of their metrics rows are named (a warning each, in ``study.warnings``).

    Raises:
        ResultsError: a layers file that cannot be read, where ``study.refuse_unreadable``
            (else a warning).
    """
    if not study.path:
        return None
    table, bad = read_table(study_dir(study.path), LAYERS_TABLE)
    if bad:
        files = "; ".join(f"{path} ({why})" for path, why in sorted(bad.items()))
        if study.refuse_unreadable:
            raise ResultsError(
                f"unreadable layers files: {files}: gcnc resume runs their trials again, or "
                "--allow-missing analyses the rest"
            )
        study.warnings.append(f"unreadable layers files skipped: {files}")
    if table is None:
        return None
    rows = _joined(table.to_pandas(), study)
    if rows.empty:
        return None
    _note_short(rows, study)
    return LayerTable(rows, _layers(rows, study.metrics))


def _joined(rows: pd.DataFrame, study: StudyResults) -> pd.DataFrame:
    """``rows`` with their trial's status and swept keys from its metrics rows; rows of
    trials without metrics rows left out, named."""
    rows["trial_id"] = rows["trial_id"].astype(str)
    first = study.metrics.drop_duplicates("trial_id")
    keys = [c for c in first if c == "trial_status" or ("." in c and c not in rows)]
    info = first[["trial_id", *keys]].assign(trial_id=first["trial_id"].astype(str))
    orphans = sorted(set(rows["trial_id"]) - set(info["trial_id"]))
    if orphans:
        study.warnings.append(
            f"layers table: {len(orphans)} trials have layer rows but no metrics rows "
            f"({listed(orphans)}): left out"
        )
    rows = rows.merge(info, on="trial_id", how="inner")
    expected = study.meta.get("spec_hash")
    if expected is not None and "spec_hash" in rows:
        other = rows["spec_hash"].notna() & (rows["spec_hash"] != expected)
        if other.any():
            hashes = ", ".join(sorted(rows.loc[other, "spec_hash"].unique()))
            study.warnings.append(
                f"{int(other.sum())} layer rows carry another spec hash ({hashes})"
            )
    return rows.sort_values(["trial_id", "epoch", "layer"], kind="stable").reset_index(drop=True)


def _layers(rows: pd.DataFrame, metrics: pd.DataFrame) -> list[Layer]:
    """The layers of ``rows``, from the input; the embedding is the one whose values are
    the metrics rows' (docs/schema.md: its row holds them), on every row they share."""
    names = rows.groupby("layer", sort=True)["layer_name"].first()
    shared = [q for q in _comparable(rows.columns) if q in rows and q in metrics]
    theirs = metrics[["trial_id", "epoch", *shared]]
    theirs = theirs.assign(trial_id=theirs["trial_id"].astype(str))
    both = rows[["trial_id", "epoch", "layer", *shared]].merge(
        theirs, on=["trial_id", "epoch"], suffixes=("", "@metrics")
    )
    same = np.ones(len(both), dtype=bool)
    finite = np.zeros(len(both), dtype=bool)
    for q in shared:
        a = both[q].to_numpy(dtype=float, na_value=np.nan)
        b = both[f"{q}@metrics"].to_numpy(dtype=float, na_value=np.nan)
        same &= (a == b) | (np.isnan(a) & np.isnan(b))
        finite |= np.isfinite(a)
    per_layer = pd.DataFrame({"layer": both["layer"], "same": same, "finite": finite})
    match = per_layer.groupby("layer")[["same", "finite"]].agg({"same": "all", "finite": "any"})
    embedding = match.index[match["same"] & match["finite"]]
    last = int(embedding.max()) if len(embedding) else None
    return [Layer(int(k), str(name), int(k) == last) for k, name in names.items()]


def _comparable(columns) -> list[str]:
    return [*QUANTITIES, *(c for c in columns if schema.FEWSHOT.match(c))]


def _note_short(rows: pd.DataFrame, study: StudyResults) -> None:
    """Name the trials whose layer rows do not reach their last evaluation (before any
    divergence): the comparisons across depth go without them where rows are missing."""
    kept = study.metrics
    if "diverged" in kept:  # a divergence's evaluation has no layer rows
        kept = kept[~kept["diverged"].fillna(False).astype(bool)]
    last = kept.groupby(kept["trial_id"].astype(str), observed=True)["epoch"].max()
    reach = rows.groupby("trial_id")["epoch"].max().reindex(last.index)
    short = last.index[reach.isna() | (reach < last)]
    if len(short) == 0:
        return
    described = [
        f"{t}: none" if pd.isna(reach[t]) else f"{t}: to epoch {int(reach[t])} of {int(last[t])}"
        for t in short
    ]
    study.warnings.append(
        f"layers table: {len(short)} of {len(last)} trials lack layer rows of their last "
        f"evaluations (their layer rows: {listed(described)}): the comparisons across depth "
        "go without their values where the rows are missing"
    )


@dataclass(frozen=True)
class AtDepth:
    """Finished trials' layer values at one comparison point: ``kind`` ``final`` or
    ``matched`` (at the progress ``level``); ``frame`` one row per (trial, layer) with the
    trial's swept keys, ``layer``, ``layer_name`` and each quantity under its own name."""

    kind: str
    level: float | None
    frame: pd.DataFrame

    def layer(self, index: int) -> pd.DataFrame:
        return self.frame[self.frame["layer"] == index]


def compared(study: StudyResults, *, options: Options) -> dict[str, AtDepth]:
    """Each finished trial's layer values at its final evaluation and, where the study
    measured ``options.progress_by``, at the matched progress level: as
    :func:`analysis.aggregate.final_rows` and :func:`~analysis.aggregate.matched_progress`
    read the metrics (both on the metrics rows with the layer values beside them)."""
    table = study.layers
    if table is None:
        return {}
    by, quantile = options.progress_by, options.progress_quantile
    key = ("compared", by, quantile)
    if key not in table._cache:
        qs = table.quantities()
        wide = dataclasses.replace(study, metrics=_beside_metrics(study, table, qs))
        cols = [column(q, layer.index) for layer in table.layers for q in qs]
        out = {"final": AtDepth("final", None, _long(aggregate.final_rows(wide), table, qs))}
        if study.measured(by):
            matched, level = aggregate.matched_progress(wide, cols, by=by, quantile=quantile)
            out["matched"] = AtDepth("matched", level, _long(matched, table, qs))
        table._cache[key] = out
    return table._cache[key]


def _beside_metrics(study: StudyResults, table: LayerTable, qs: list[str]) -> pd.DataFrame:
    """The metrics rows with each quantity of each layer as a column (:func:`column`)."""
    values = table.rows.set_index(["trial_id", "epoch", "layer"])[qs].unstack("layer")
    metrics = study.metrics
    key = pd.MultiIndex.from_arrays(
        [metrics["trial_id"].astype(str).to_numpy(), metrics["epoch"].to_numpy()]
    )
    aligned = values.reindex(key)
    extra = {column(q, int(k)): aligned[(q, k)].to_numpy(dtype=float) for q, k in aligned.columns}
    return pd.concat([metrics, pd.DataFrame(extra, index=metrics.index)], axis=1)


def _long(frame: pd.DataFrame, table: LayerTable, qs: list[str]) -> pd.DataFrame:
    """One row per (trial of ``frame``, layer), each quantity under its own name."""
    base = frame[[c for c in frame if c in _TRIAL_COLUMNS or "." in c]]
    base = base.assign(trial_id=base["trial_id"].astype(str))
    parts = [
        base.assign(
            layer=layer.index,
            layer_name=layer.name,
            **{q: frame[column(q, layer.index)].to_numpy(dtype=float) for q in qs},
        )
        for layer in table.layers
    ]
    return pd.concat(parts, ignore_index=True)


VALUE_COLUMNS = ["at", "level", "param", "value", "layer", "layer_name", "metric", "n", "mean",
                 "std", "ci_low", "ci_high", "log", "slice"]  # fmt: skip


def values(study: StudyResults, *, options: Options) -> pd.DataFrame:
    """Centre, spread and interval across seeds of each layer quantity, per comparison
    (``final``, ``matched``), swept key, value and layer, as the final values' table
    computes them (:func:`analysis.aggregate.summarize`: the geometric mean of a positive
    quantity); each key on its one-at-a-time slice, or pooled over a grid (``slice``)."""
    table = study.layers
    if table is None:
        return pd.DataFrame(columns=VALUE_COLUMNS)
    key = ("values", options.progress_by, options.progress_quantile, options.confidence)
    if key not in table._cache:
        parts = [
            _summarised(study, point, param, table.quantities(), options)
            for point in compared(study, options=options).values()
            for param in study.hyper_params or [None]
        ]
        out = pd.concat(parts, ignore_index=True)
        names = {layer.index: layer.name for layer in table.layers}
        out["layer_name"] = out["layer"].map(names)
        table._cache[key] = out[VALUE_COLUMNS]
    return table._cache[key]


def _summarised(study, point: AtDepth, param, qs, options: Options) -> pd.DataFrame:
    sub, note = point.frame, ""
    if param is not None:
        others = [p for p in study.hyper_params if p != param]
        sub, note = aggregate.sweep_slice(sub, param, others)
    keyed = sub.assign(param=param or "all trials", value=sub[param] if param else "")
    stats = aggregate.summarize(
        keyed, ["param", "value", "layer"], qs, confidence=options.confidence
    )
    return stats.assign(at=point.kind, level=point.level, slice=note)


def values_display(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`values` as ``centre [CI] (n)``, one row per comparison, swept value and layer."""
    if frame.empty:
        return pd.DataFrame()
    text = [
        f"{interval(m, lo, hi)} ({n})"
        for m, lo, hi, n in zip(
            frame["mean"], frame["ci_low"], frame["ci_high"], frame["n"], strict=True
        )
    ]
    wide = frame.assign(text=text).pivot_table(
        index=["at", "param", "value", "layer", "layer_name"], columns="metric", values="text",
        aggfunc="first", sort=False,
    )  # fmt: skip
    order = list(dict.fromkeys(frame["metric"]))
    wide = wide[order].rename(columns=schema.label).reset_index().drop(columns="layer")
    wide["param"] = wide["param"].map(lambda p: schema.label(p) if p != "all trials" else p)
    wide["value"] = wide["value"].map(fmt)
    return wide.rename(columns={"layer_name": "layer"})


def verdicts_by_layer(main: pd.DataFrame, table: LayerTable | None) -> pd.DataFrame:
    """The claims across depth side by side: one row per claim and comparison of ``main``
    (the verdict rows of the planned family), one column per measured layer (the
    embedding's the claim's own verdict, from the metrics), each cell the verdict with the
    percent change between the extreme swept values."""
    if table is None or main.empty or "layer" not in main:
        return pd.DataFrame()
    layered = main[main["layer"].notna()]
    if layered.empty:
        return pd.DataFrame()
    embedding = table.embedding()
    last = embedding.label if embedding is not None else "embedding"
    columns = [layer.name for layer in table.inner()] + [last]
    rows: dict[tuple[str, str], dict] = {}
    for r in layered.itertuples():
        base = r.claim.removesuffix(f" at {r.layer_name}")
        row = rows.setdefault((base, r.at), {"claim": base, "at": r.at})
        row[r.layer_name] = _short(r)
    for r in main[main["layer"].isna()].itertuples():
        if (r.claim, r.at) in rows:
            rows[(r.claim, r.at)][last] = _short(r)
    out = pd.DataFrame(list(rows.values()))
    return out.reindex(columns=["claim", "at", *columns]).fillna("")


def _short(row) -> str:
    """A verdict with its effect: ``reproduced (-57 %)``."""
    change = row.change_pct
    if isinstance(change, float) and np.isfinite(change):
        return f"{row.verdict} ({fmt(change, 2)} %)"
    return str(row.verdict)
