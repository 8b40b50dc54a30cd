"""Property: any malformed study file exits 2 with one line, no traceback, nothing written."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import cli

GOOD = {
    "name": "good",
    "data": {
        "name": "digits",
        "source_classes": [0, 1, 2, 3, 4],
        "target_classes": [5, 6, 7, 8, 9],
    },
    "model": {"name": "vgg11", "width": 8},
    "train": {"lr": 0.02, "batch_size": 64, "epochs": 2},
    "metrics": {"every": 1, "fewshot_shots": [1, 5]},
    "sweep": {"seeds": [0, 1], "grid": {"train.lr": [0.01, 0.1]}},
    "resources": {"cpus_per_trial": 1, "max_failures": 2},
    "smoke": {"train.epochs": 1},
}
# Every leaf of GOOD, as a path of keys (a dotted grid key stays one key).
LEAVES = [
    ("data", "name"), ("data", "source_classes"), ("data", "target_classes"),
    ("model", "name"), ("model", "width"), ("train", "lr"), ("train", "batch_size"),
    ("train", "epochs"), ("metrics", "every"), ("metrics", "fewshot_shots"),
    ("sweep", "seeds"), ("sweep", "grid", "train.lr"), ("resources", "cpus_per_trial"),
    ("resources", "max_failures"), ("smoke", "train.epochs"),
]  # fmt: skip
TABLES = [(), ("data",), ("model",), ("train",), ("metrics",), ("sweep",), ("resources",)]
# A value no leaf of GOOD accepts: every leaf is a scalar or a list of scalars.
NEVER_VALID = st.one_of(
    st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(), min_size=1),
    st.lists(st.dictionaries(st.just("x"), st.integers(), min_size=1), min_size=1, max_size=3),
)
KEY = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


def _toml(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + "}"
    return repr(value)


def dumps(doc: dict) -> str:
    """A TOML document: top-level scalars first, then one inline table per section."""
    lines = [f'"{k}" = {_toml(v)}' for k, v in doc.items() if not isinstance(v, dict)]
    lines += [f'"{k}" = {_toml(v)}' for k, v in doc.items() if isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def _node(doc: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def malformed(draw) -> str:
    """GOOD with one change no study file may have: a leaf of a type it never takes, an
    unknown key in some table, or a section replaced by a scalar."""
    doc = copy.deepcopy(GOOD)
    kind = draw(st.sampled_from(["bad-value", "unknown-key", "section-scalar"]))
    if kind == "bad-value":
        *parents, leaf = draw(st.sampled_from(LEAVES))
        _node(doc, tuple(parents))[leaf] = draw(NEVER_VALID)
    elif kind == "unknown-key":
        table = draw(st.sampled_from(TABLES))
        node = _node(doc, table)
        key = draw(KEY.filter(lambda k: k not in node and k not in ("trainable", "description")))
        if table == ("sweep",):
            key = f"x{key}"  # sweep tables hold dotted keys only under grid
        node[key] = draw(st.integers())
    else:
        section = draw(st.sampled_from([t[0] for t in TABLES if t]))
        doc[section] = draw(st.one_of(st.integers(), st.from_regex(r"[a-z ]{0,5}", fullmatch=True)))
    text = dumps(doc)
    tomllib.loads(text)  # the change is in the values, not the syntax
    return text


def _run(tmp_path: Path, monkeypatch, capsys, data: bytes) -> tuple[int, str, str, bool]:
    ran = []
    monkeypatch.setattr(cli, "execute", lambda *a, **k: ran.append(1) or 0)
    path = tmp_path / "study.toml"
    path.write_bytes(data)
    storage = tmp_path / "runs"
    code = cli.main(["run", str(path), "--storage", str(storage), "--no-report"])
    out, err = capsys.readouterr()
    assert not storage.exists(), "nothing may be written by a study that does not run"
    return code, out, err, bool(ran)


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(text=malformed())
def test_a_malformed_study_file_exits_2_with_one_line(tmp_path, monkeypatch, capsys, text):
    code, out, err, ran = _run(tmp_path, monkeypatch, capsys, text.encode())
    assert (code, ran, out) == (2, False, ""), err
    assert len(err.splitlines()) == 1 and err.startswith("gcnc: error: "), err
    assert "Traceback" not in err


@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_bytes_are_run_or_refused_in_one_line(tmp_path, monkeypatch, capsys, data):
    code, out, err, ran = _run(tmp_path, monkeypatch, capsys, data)
    if ran:  # a valid study (say, one setting of defaults): the run was reached
        assert code == 0
        return
    assert code == 2 and out == "", (code, out, err)
    assert len(err.splitlines()) == 1 and err.startswith("gcnc: error: "), err


def test_the_unchanged_document_is_valid(tmp_path, monkeypatch, capsys):
    code, _, err, ran = _run(tmp_path, monkeypatch, capsys, dumps(GOOD).encode())
    assert (code, ran) == (0, True), err


@pytest.mark.parametrize("section", ["data", "train", "sweep"])
def test_a_section_that_is_a_scalar_is_refused(tmp_path, monkeypatch, capsys, section):
    doc = {**GOOD, section: 3}
    code, _, err, _ = _run(tmp_path, monkeypatch, capsys, dumps(doc).encode())
    assert code == 2 and err.startswith(f"gcnc: error: {section}"), err
