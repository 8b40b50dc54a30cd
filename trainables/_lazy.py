"""Lazy re-exports for package ``__init__`` modules (PEP 562).

The packages of :mod:`trainables` re-export classes and functions whose modules import
torch. Importing a package for its name registry (study validation in the driver) must not
pay for torch, so each package names where its exports live and imports one on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: attribute ``name`` is imported from the
    submodule ``where[name]`` (relative to ``package``) on first access."""

    def __getattr__(name: str) -> Any:
        try:
            module = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
