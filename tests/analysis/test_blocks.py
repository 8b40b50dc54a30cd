"""Rows held as blocks of whole trials: whatever rows are replaced, in whatever blocks, the
blocks read whole are the frame built directly from every trial's rows now (sorted by trial
then epoch, text as categoricals of the values present, integers as integers where no row
lacks one), and what each block knows of itself (each trial's last epoch) follows."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import analysis.blocks
from analysis.blocks import Blocks

SCHEMA = pa.schema(
    [
        ("trial_id", pa.dictionary(pa.int32(), pa.string())),
        ("epoch", pa.int64()),
        ("label", pa.dictionary(pa.int32(), pa.string())),
        ("count", pa.int64()),
        ("gc", pa.float64()),
    ]
)


def trial_rows(rng: random.Random, trial: str, missing: float = 0.2) -> list[dict]:
    """A trial's rows: a few epochs, a label, a count missing at the rate ``missing``."""
    return [
        {
            "trial_id": trial,
            "epoch": epoch,
            "label": rng.choice(["a", "b", "c", None]),
            "count": None if rng.random() < missing else rng.randrange(100),
            "gc": rng.random(),
        }
        for epoch in sorted(rng.sample(range(50), rng.randrange(1, 6)))
    ]


def reference(rows: dict[str, list[dict]]) -> pd.DataFrame:
    """The frame built directly: every row, sorted, typed as Arrow converts them."""
    records = [r for trial in sorted(rows) for r in rows[trial]]
    frame = pd.DataFrame.from_records(
        records or None, columns=["trial_id", "epoch", "label", "count", "gc"]
    )
    frame = frame.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)
    for name in ("trial_id", "label"):
        present = sorted(v for v in frame[name].unique() if v is not None and v == v)
        frame[name] = pd.Categorical(frame[name], categories=pd.Index(present, dtype="str"))
    has_null = frame["count"].isna().any()
    frame["count"] = frame["count"].astype("float64" if has_null else "int64")
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["gc"] = frame["gc"].astype("float64")
    return frame


def as_frame(rows: dict[str, list[dict]]) -> pd.DataFrame:
    """Rows as the loader gives them (through Arrow), for the blocks to hold."""
    records = [r for trial in sorted(rows) for r in rows[trial]]
    table = pa.Table.from_pylist(records, schema=SCHEMA) if records else SCHEMA.empty_table()
    return analysis.blocks.sorted_categories(table.to_pandas())


def assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_categorical=True, check_dtype=True)


@pytest.mark.parametrize("seed", range(8))
def test_replacing_any_trials_rows_in_any_blocks_reads_as_the_frame_built_directly(
    seed, monkeypatch
):
    rng = random.Random(seed)
    monkeypatch.setattr(analysis.blocks, "BLOCK_ROWS", rng.choice([1, 4, 9, 1000]))
    missing = [0.2, 0.01][seed % 2]  # at 1 %, nulls come and go: the counts' type with them
    ids = [f"t{i:03d}" for i in range(0, 60, 3)]
    rows = {t: trial_rows(rng, t, missing) for t in ids}
    blocks = Blocks.of(as_frame(rows), SCHEMA)
    assert_frames_equal(blocks.frame(), reference(rows))
    for step in range(25):
        changed = rng.sample(sorted({*rows, *(f"t{i:03d}" for i in range(61))}), rng.randint(1, 4))
        for trial in changed:  # new rows, no rows left, or a trial new before/among/after
            rows[trial] = [] if rng.random() < 0.25 else trial_rows(rng, trial, missing)
        new = as_frame({t: rows[t] for t in changed})
        blocks = blocks.replaced(new, set(changed))
        rows = {t: r for t, r in rows.items() if r}
        if step % 3 == 0 or step == 24:  # several replacements read whole at once
            frame = blocks.frame()
            assert_frames_equal(frame, reference(rows))
            reached = {t: r[-1]["epoch"] for t, r in rows.items()}
            assert blocks.reached().to_dict() == reached
            if rng.random() < 0.5:
                blocks.rebase(frame.assign(extra=1))  # pointed at the frame read whole
                assert_frames_equal(blocks.frame(), reference(rows))
        assert all(len(b.frame) for b in blocks.parts)
        assert all(len(b.frame) <= max(2 * analysis.blocks.BLOCK_ROWS, 5) for b in blocks.parts)


def test_a_frame_is_cut_where_trials_begin_and_the_cuts_are_views(monkeypatch):
    monkeypatch.setattr(analysis.blocks, "BLOCK_ROWS", 4)
    rows = {f"t{i}": [{"trial_id": f"t{i}", "epoch": e, "label": "a", "count": 1, "gc": 0.5}
                      for e in range(3)] for i in range(5)}  # fmt: skip
    frame = as_frame(rows)
    blocks = Blocks.of(frame, SCHEMA)
    held = [set(b.frame["trial_id"].astype(str)) for b in blocks.parts]
    assert len(held) > 1 and sum(len(h) for h in held) == len(set().union(*held)) == 5
    for block in blocks.parts:
        assert len(block.frame) == 3 * len(set(block.frame["trial_id"]))  # whole trials
        assert np.shares_memory(block.frame["gc"].to_numpy(), frame["gc"].to_numpy())


def test_rebasing_onto_other_rows_is_refused():
    rows = {"t0": [{"trial_id": "t0", "epoch": 0, "label": "a", "count": 1, "gc": 0.5}]}
    blocks = Blocks.of(as_frame(rows), SCHEMA)
    with pytest.raises(ValueError, match="rebase onto 2 rows"):
        blocks.rebase(pd.concat([blocks.frame()] * 2, ignore_index=True))
