"""Bad input as one line: ``<field>: <problem> (<fix>)``.

Every check of a study file, an override or a study directory raises :class:`InputError`;
the CLI prints it as ``gcnc: error: <field>: <problem> (<fix>)`` and exits 2.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from studyfiles import InputError

_FIXES: dict[str, str] = {
    "missing": "add it",
    "greater_than": "use a value > {gt}",
    "greater_than_equal": "use a value >= {ge}",
    "less_than": "use a value < {lt}",
    "less_than_equal": "use a value <= {le}",
    "literal_error": "use one of {expected}",
    "float_parsing": "write a number, e.g. 0.01",
    "float_type": "write a number, e.g. 0.01",
    "int_parsing": "write a whole number, e.g. 64",
    "int_type": "write a whole number, e.g. 64",
    "int_from_float": "write a whole number, e.g. 64",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": 'write a quoted string, e.g. "digits"',
    "list_type": "write a list, e.g. [1, 2]",
    "tuple_type": "write a list of two numbers, e.g. [0.001, 0.1]",
    "too_short": "give more items",
    "too_long": "give fewer items",
    "dict_type": "write a table, e.g. [section] or {{key = value}}",
    "model_type": "write a table, e.g. [section] or {{key = value}}",
    "model_attributes_type": "write a table, e.g. [section] or {{key = value}}",
    "string_pattern_mismatch": "use letters, digits, '_', '.' and '-'",
    "string_too_long": "use a shorter string",
    "value_error": "change one of the values it names",
}


def from_validation(
    err: ValidationError, *, model: type[BaseModel] | None = None, prefix: str = ""
) -> InputError:
    """The first error of ``err`` as a :class:`InputError` whose field is ``prefix + loc``."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    field = ".".join([prefix, *(str(p) for p in loc)] if prefix else [str(p) for p in loc])
    kind, ctx = first["type"], first.get("ctx") or {}
    if kind == "gcnc":
        return InputError(field or "study", ctx["problem"], ctx.get("fix", ""))
    if kind == "extra_forbidden":
        known = known_keys(model, loc[:-1]) if model is not None else []
        fix = "remove it or fix its spelling" + (f"; known: {', '.join(known)}" if known else "")
        return InputError(field, "unknown key", fix)
    problem = _problem(first["msg"], kind, first.get("input"))
    fix = _FIXES.get(kind, "check the value").format(**{k: ctx.get(k, "") for k in _CTX_KEYS})
    return InputError(field or "study", problem, fix)


_CTX_KEYS = ("gt", "ge", "lt", "le", "expected")


def _problem(msg: str, kind: str, value: Any) -> str:
    msg = msg.removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    if kind == "missing" or value is None or isinstance(value, dict):
        return msg
    shown = repr(value)
    return f"{msg}, got {shown if len(shown) < 60 else shown[:57] + '...'}"


def known_keys(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) pydantic model reached by ``path`` from ``model``."""
    cls: Any = model
    parts = list(path)
    while parts:
        part = parts.pop(0)
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return []
        info = cls.model_fields.get(part) if isinstance(part, str) else None
        if info is None:
            return []
        cls, skip = _inner_model(info.annotation)
        if skip and parts:
            parts.pop(0)  # the key of a dict[str, Model]
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return list(cls.model_fields)
    return []


def _inner_model(annotation: Any) -> tuple[Any, bool]:
    """The model inside ``M``, ``M | None`` or ``dict[str, M]``; and whether it was a dict."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner, is_dict = _inner_model(arg)
            if inner is not None:
                return inner, is_dict
        return None, False
    if origin is dict:
        return typing.get_args(annotation)[1], True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False
