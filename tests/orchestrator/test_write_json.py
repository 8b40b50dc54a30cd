"""``gcnc analyze --json``: the file is strict JSON, whatever numbers the analysis gives."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator import cli
from orchestrator.reporting import json_safe, write_json

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "results" / "quickstart"


def strict(text: str) -> object:
    """``text`` parsed as JSON that holds no NaN or Infinity."""

    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


def test_every_non_finite_number_is_written_as_null_at_any_depth(tmp_path, capsys):
    data = {
        "nan": math.nan,
        "rows": [{"low": -math.inf, "high": math.inf, "p": 0.5, "n": np.int64(3)}],
        "nested": {"pair": (np.float32("inf"), np.float64(2.0)), "flag": np.bool_(True)},
        "array": np.array([1.0, np.nan, -np.inf]),
        "text": "inf",
        "none": None,
    }
    out = tmp_path / "v.json"
    write_json(str(out), data)
    assert strict(out.read_text()) == {
        "nan": None,
        "rows": [{"low": None, "high": None, "p": 0.5, "n": 3}],
        "nested": {"pair": [None, 2.0], "flag": True},
        "array": [1.0, None, None],
        "text": "inf",
        "none": None,
    }
    assert json_safe(data)["rows"][0]["n"].__class__ is int
    assert "verdicts as JSON" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy, on infinite values
def test_analyze_json_of_a_study_with_infinite_values_is_written(tmp_path, capsys):
    study = shutil.copytree(QUICKSTART, tmp_path / "quickstart")
    for part in (study / "metrics").glob("*.parquet"):
        table = pq.read_table(part)
        where = table.schema.get_field_index("gc")
        infinite = pa.array(np.full(table.num_rows, np.inf))
        pq.write_table(table.set_column(where, "gc", infinite), part)
    out = tmp_path / "verdicts.json"

    assert cli.main(["analyze", str(study), "--json", str(out)]) == 0

    data = strict(out.read_text())
    assert data["verdicts"] and data["final_values"]
    assert any(v is None for row in data["final_values"] for v in row.values())
    capsys.readouterr()
