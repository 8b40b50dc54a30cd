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


_MISSING = object()


def get_dotted(config: dict[str, Any], key: str, default: Any = None) -> Any:
    """``config[a][b][c]`` for ``key = "a.b.c"``, or ``default`` where the path does not exist."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def has_dotted(config: dict[str, Any], key: str) -> bool:
    """Whether the dotted ``key`` leads to a value in ``config``."""
    return get_dotted(config, key, _MISSING) is not _MISSING


def split_assignment(item: str) -> tuple[str, str]:
    """``"a.b = 0.1"`` -> ``("a.b", "0.1")``.

    Raises:
        ValueError: ``item`` is not of the form key=value.
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{item!r} is not of the form key=value")
    return key.strip(), text.strip()


def apply_overrides(config: dict[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with every ``key=value`` assignment applied in order."""
    out = copy.deepcopy(config)
    for item in assignments:
        key, text = split_assignment(item)
        set_dotted(out, key, parse_value(text))
    return out
