"""Reading a study file: TOML, its ``[smoke]`` table, ``--set`` overrides, then the checks.

Loading applies ``[smoke]`` (with ``smoke=True``) and then ``--set key=value`` overrides
to the document, validates it (:class:`~orchestrator.spec.StudySpec`), and checks every
trial's resolved config (:mod:`orchestrator.checks`), so bad input fails before anything
is written.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.checks import check_spec
from orchestrator.errors import from_validation
from orchestrator.spec import DIST_KINDS, StudySpec
from studyfiles import InputError
from trainables.overrides import parse_value, set_dotted, split_assignment

MAX_STUDY_FILE_BYTES = 2**20  # a study file is a few KB; anything this big is something else


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document at ``path``.

    Raises:
        InputError: the file cannot be read, is too large for a study file, is not UTF-8
            text, is not TOML, or holds no setting at all.
    """
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_STUDY_FILE_BYTES + 1)
    except OSError as err:
        raise InputError(where, f"cannot read it: {err.strerror}", "check the path") from None
    if len(data) > MAX_STUDY_FILE_BYTES:
        raise InputError(
            where,
            f"larger than {MAX_STUDY_FILE_BYTES // 2**20} MiB: not a study file",
            "give the study's TOML file, a few KB of text",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            where,
            f"not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start})",
            "save it as UTF-8",
        ) from None
    if "\x00" in text:
        raise InputError(where, "holds NUL bytes: not a text file", "give the study's TOML file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(where, f"invalid TOML: {err}", "fix the syntax there") from None
    if not doc:
        raise InputError(
            where, "holds no setting", "give at least a [train] table or a [sweep]; see studies/"
        )
    return doc


def load_spec(path: str | Path, *, overrides: Sequence[str] = (), smoke: bool = False) -> StudySpec:
    """Read, override, validate and check the study file at ``path``.

    Args:
        path: a TOML study file; its stem is the study's name unless it sets ``name``.
        overrides: ``key=value`` assignments into the document (values read as TOML).
        smoke: apply the file's ``[smoke]`` table first and add ``-smoke`` to the name.

    Raises:
        InputError: the first problem found, naming its field.
    """
    doc = read_toml(path)
    doc.setdefault("name", Path(path).stem)
    return build_spec(doc, overrides=overrides, smoke=smoke)


def build_spec(
    doc: dict[str, Any], *, overrides: Sequence[str] = (), smoke: bool = False
) -> StudySpec:
    """Validate a study document (already parsed) with its smoke table and overrides."""
    work = copy.deepcopy(doc)
    _canonical_tables(work)
    if smoke:
        _apply_smoke(work)
    for item in overrides:
        _apply_override(work, item)
    _canonical_tables(work)
    try:
        study = StudySpec.model_validate(work)
    except ValidationError as err:
        raise from_validation(err, model=StudySpec) from None
    check_spec(study)
    if not smoke and study.smoke:
        try:  # a bad [smoke] table fails now, not when the smoke run starts
            build_spec(doc, overrides=overrides, smoke=True)
        except InputError as err:
            raise _smoke_error(err, study.smoke) from None
    return study


def _smoke_error(err: InputError, table: dict[str, Any]) -> InputError:
    """``err`` of the smoke form, naming the ``[smoke]`` key that caused it when one did."""
    keys = [k for k, _ in flatten(table, leaf=lambda v: not isinstance(v, dict) or not v)]
    f = err.field
    if any(f == k or f.startswith(f"{k}.") or k.startswith(f"{f}.") for k in keys):
        return InputError(f"smoke.{f}", err.problem, err.fix)
    return InputError(f, f"{err.problem} with [smoke] applied", err.fix)


def _apply_smoke(doc: dict[str, Any]) -> None:
    table = doc.get("smoke", {})
    if not isinstance(table, dict):
        raise InputError("smoke", "is not a table", "write [smoke] with key = value lines")
    for key, value in flatten(table, leaf=lambda v: not isinstance(v, dict) or not v):
        _set(doc, key, copy.deepcopy(value), field=f"smoke.{key}")
    if isinstance(doc.get("name"), str):
        doc["name"] = f"{doc['name']}-smoke"


def _apply_override(doc: dict[str, Any], item: str) -> None:
    try:
        key, text = split_assignment(item)
    except ValueError:
        raise InputError(
            "--set", f"{item!r} is not key=value", "write e.g. --set train.lr=0.1"
        ) from None
    _set(doc, key, parse_value(text), field=key)


def _set(doc: dict[str, Any], key: str, value: Any, *, field: str) -> None:
    try:
        set_dotted(doc, key, value)
    except ValueError as err:
        raise InputError(field, str(err).split(": ", 1)[-1], "set a key inside it") from None


def _canonical_tables(doc: dict[str, Any]) -> None:
    """Flatten ``sweep.grid`` and ``search.space`` to dotted keys (later keys win)."""
    sweep, search = doc.get("sweep"), doc.get("search")
    if isinstance(sweep, dict) and isinstance(sweep.get("grid"), dict):
        sweep["grid"] = _flat_grid(sweep["grid"])
    if isinstance(sweep, dict) and isinstance(sweep.get("grids"), list):
        sweep["grids"] = [_flat_grid(g) if isinstance(g, dict) else g for g in sweep["grids"]]
    if isinstance(search, dict) and isinstance(search.get("space"), dict):
        search["space"] = dict(flatten(search["space"], leaf=_is_distribution))


def _flat_grid(grid: dict[str, Any]) -> dict[str, Any]:
    return dict(flatten(grid, leaf=lambda v: not isinstance(v, dict)))


def _is_distribution(value: Any) -> bool:
    return not isinstance(value, dict) or not value or set(value) <= set(DIST_KINDS)


def flatten(tree: dict[str, Any], *, leaf: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``(dotted key, value)`` pairs of a nested dict, stopping where ``leaf(value)``."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if leaf(value):
            yield dotted, value
        else:
            yield from flatten(value, leaf=leaf, prefix=f"{dotted}.")
