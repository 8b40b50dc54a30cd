"""The trainables a study may name (``trainable = "gcnc"``), each a ``module:function``.

The product has one, ``gcnc`` (:func:`trainables.run`). Others are registered by
``GCNC_TRAINABLES``, a comma-separated list of ``name=module:function`` read when a study
is checked (e.g. ``GCNC_TRAINABLES="mine=mypackage.train:run"``); a trial imports the
function it was given, so its module must be importable on every node.
"""

from __future__ import annotations

import os

from studyfiles import InputError

BUILT_IN: dict[str, str] = {"gcnc": "trainables:run"}
ENV = "GCNC_TRAINABLES"


def trainables() -> dict[str, str]:
    """Every trainable a study may name: the built-in ones and those of ``GCNC_TRAINABLES``.

    Raises:
        InputError: ``GCNC_TRAINABLES`` is malformed or redefines a built-in name.
    """
    out = dict(BUILT_IN)
    for item in filter(None, (part.strip() for part in os.environ.get(ENV, "").split(","))):
        name, _, target = item.partition("=")
        module, _, function = target.partition(":")
        if not name or not module or not function:
            raise InputError(
                ENV, f"{item!r} is not name=module:function", "e.g. mine=pkg.train:run"
            )
        if name in BUILT_IN:
            raise InputError(ENV, f"{name!r} is built in", "register it under another name")
        out[name.strip()] = target.strip()
    return out


def resolve(name: str) -> str:
    """The ``module:function`` of the trainable ``name``.

    Raises:
        InputError: no such trainable.
    """
    known = trainables()
    if name not in known:
        more = f" (more through {ENV})"
        raise InputError(
            "trainable", f"unknown trainable {name!r}", f"known: {', '.join(sorted(known))}{more}"
        )
    return known[name]
