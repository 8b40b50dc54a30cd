"""The rule every reader and writer keeps rows by, against a pandas reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from studyfiles.tables import latest_rows


def _table(n: int, *, times: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "trial_id": pa.array(rng.choice(["a", "b", "c", "t00010"], n)),
            "epoch": pa.array(rng.integers(0, 5, n), pa.int64()),
            "written_at": pa.array(rng.integers(0, times, n).astype("datetime64[ns]")).cast(
                pa.timestamp("ns", tz="UTC")
            ),
            "row": pa.array(np.arange(n)),  # each row's place in the table
        }
    )


@pytest.mark.parametrize(("times", "seed"), [(10_000, 0), (5, 1), (1, 2)])
def test_the_latest_write_of_each_key_wins_and_of_equal_times_the_last_in_the_table(times, seed):
    table = _table(300, times=times, seed=seed)  # few distinct times: many ties
    got, dropped = latest_rows(table)
    ref = (
        table.to_pandas()
        .sort_values("written_at", kind="stable")  # equal times keep the table's order
        .drop_duplicates(["trial_id", "epoch"], keep="last")
        .sort_values(["trial_id", "epoch"])
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(got.to_pandas(), ref)
    assert dropped == table.num_rows - len(ref)


def test_sorted_rows_without_duplicates_come_back_as_they_are():
    table = pa.table(
        {
            "trial_id": ["a", "a", "b"],
            "epoch": pa.array([0, 1, 0], pa.int64()),
            "written_at": pa.array([3, 1, 2], pa.timestamp("ns", tz="UTC")),
        }
    )
    got, dropped = latest_rows(table)
    assert got.equals(table) and dropped == 0
    empty, dropped = latest_rows(table.slice(0, 0))
    assert empty.num_rows == 0 and dropped == 0
