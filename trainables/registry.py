"""A small name -> factory registry shared by datasets, models and estimators."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(LookupError):
    """A registry lookup failed; the message lists the known names."""


class Registry(Generic[T]):
    """Maps names to objects; rejects duplicates and lists known names on a failed lookup.

    An entry is an object, or where it lives (``"package.module:attr"``), imported on the
    first :meth:`get`: the built-in entries are registered that way, so that checking a
    name (study validation in the driver) imports neither torch nor the entry's module.

    An entry may also declare the keys of its ``options`` table, so that a study's unknown
    option is refused before anything runs (:meth:`option_names`).

    Args:
        kind: what the registry holds ("dataset", "model", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._options: dict[str, frozenset[str]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, options: Iterable[str] | None = None) -> None:
        """Register ``obj`` under ``name``; ``options``: the option keys it accepts, if known."""
        self._claim(name, options)
        self._items[name] = obj

    def add_lazy(self, name: str, where: str, *, options: Iterable[str] | None = None) -> None:
        """Register the object at ``where`` (``"package.module:attr"``) under ``name``;
        it is imported on the first :meth:`get` of ``name``. ``options`` as for :meth:`add`."""
        module, sep, attr = where.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"{self.kind} {name!r}: {where!r} is not 'package.module:attr'")
        self._claim(name, options)
        self._items[name] = _Lazy(module, attr)

    def option_names(self, name: str) -> frozenset[str] | None:
        """The option keys ``name`` declared when registered; None when it declared none."""
        return self._options.get(name)

    def get(self, name: str) -> T:
        try:
            item = self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None
        if isinstance(item, _Lazy):
            item = self._items[name] = getattr(importlib.import_module(item.module), item.attr)
        return item  # type: ignore[no-any-return]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _claim(self, name: str, options: Iterable[str] | None) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if options is not None:
            if isinstance(options, str):
                raise TypeError(f"{self.kind} {name!r}: options must be key names, not a str")
            self._options[name] = frozenset(options)


class _Lazy:
    """Where a lazily registered object lives."""

    __slots__ = ("attr", "module")

    def __init__(self, module: str, attr: str) -> None:
        self.module, self.attr = module, attr
