"""``key=value`` overrides of nested configs, the values read as TOML literals."""

from __future__ import annotations

import argparse
import copy
import tomllib
from collections.abc import Iterable
from typing import Any


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable) on ``parser``, collected in ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key, e.g. train.lr=0.05 (a TOML value; repeat for more keys)",
    )


def parse_value(text: str) -> Any:
    """Read ``text`` as a TOML value (``0.1``, ``true``, ``[1, 2]``); bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config[a][b][c] = value`` for ``key = "a.b.c"``, creating tables on the way."""
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{key}: {part!r} is a value, not a table")
        node = child
    node[leaf] = value


def apply_overrides(config: dict[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with every ``key=value`` assignment applied in order."""
    out = copy.deepcopy(config)
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value")
        set_dotted(out, key.strip(), parse_value(text.strip()))
    return out
