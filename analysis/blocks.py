"""A study's metrics rows held as blocks of whole trials, so that new rows of a few trials
replace one block and not the whole frame.

A :class:`Blocks` is the study's deduplicated rows, sorted by trial then epoch, cut at
trial boundaries into frames of about :data:`BLOCK_ROWS` rows each. Read whole
(:meth:`Blocks.frame`), they are one frame as :func:`analysis.load.load_results` gives it:
the blocks concatenated, each text column's categories the values present, sorted. What the
study's warnings need of every row (each trial's last epoch, the values a column holds) is
kept per block (:class:`Block`), so a study made from blocks of which one changed looks at
that block's rows only.

:meth:`Blocks.replaced` is a live refresh's step: the new rows of some trials (every row
they have now) put in place of their old ones, in the blocks holding those trials; a block
grown past twice :data:`BLOCK_ROWS` is cut in two. Blocks are not changed after they are
made, except that :meth:`Blocks.rebase` points them at the frame they were read into (the
same rows), so that a process holds one copy of the rows, not two.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
from collections.abc import Callable, Iterable
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa

BLOCK_ROWS = 16_384  # rows per block, about; a refresh copies one block (~4 MB at 60 columns)


class Block:
    """Rows of whole trials, sorted by trial then epoch (never empty), with what is known of
    them kept as it is asked for."""

    def __init__(self, frame: pd.DataFrame, known: dict | None = None) -> None:
        self.frame = frame
        self._known: dict = {} if known is None else known

    @cached_property
    def first(self) -> str:
        """The block's first trial."""
        return str(self.frame["trial_id"].iloc[0])

    def kept(self, key: tuple, make: Callable[[pd.DataFrame], object]) -> object:
        """``make(frame)``, made once per block and ``key``."""
        if key not in self._known:
            self._known[key] = make(self.frame)
        return self._known[key]

    def reached(self) -> pd.Series:
        """Each trial's last epoch: the epoch of its last row."""
        return self.kept(("reached",), last_epochs)


class Blocks:
    """A study's metrics rows, one frame when read whole (:meth:`frame`).

    Args:
        parts: the blocks, in trial order.
        empty: the frame's columns and types, with no rows (the frame of no blocks).
        schema: the Arrow schema the rows were read with (integer and boolean columns are
            given back their own type where no block holds a null in them).
    """

    def __init__(
        self,
        parts: Iterable[Block],
        empty: pd.DataFrame,
        schema: pa.Schema,
        *,
        whole: pd.DataFrame | None = None,
    ) -> None:
        self._parts = tuple(parts)
        self._empty = empty
        self.schema = schema
        self._whole = whole  # the frame the blocks are views of, in order, if one is
        self._lock = threading.Lock()

    @classmethod
    def of(cls, frame: pd.DataFrame, schema: pa.Schema) -> Blocks:
        """``frame`` cut into blocks (views of it, not copies): sorted by trial then epoch,
        its categories sorted (:func:`sorted_categories`), as read whole it is given back."""
        return cls(_cut(frame), frame.iloc[:0], schema, whole=frame)

    @property
    def parts(self) -> tuple[Block, ...]:
        return self._parts

    @property
    def columns(self) -> pd.Index:
        return self._empty.columns

    def __len__(self) -> int:
        return sum(len(b.frame) for b in self._parts)

    def replaced(self, new: pd.DataFrame, trials: set[str]) -> Blocks:
        """These rows with those of ``trials`` replaced by ``new`` (every row they have
        now, sorted by trial then epoch; a trial without rows in ``new`` has none left)."""
        parts = list(self._parts)
        if not parts:
            return Blocks(_cut(new), self._empty, self.schema)
        firsts = [b.first for b in parts]
        routed: dict[int, list[str]] = {}
        for trial in sorted(trials):
            routed.setdefault(max(bisect.bisect_right(firsts, trial) - 1, 0), []).append(trial)
        codes = new["trial_id"].cat.codes.to_numpy()
        categories = new["trial_id"].cat.categories
        for i in sorted(routed, reverse=True):  # from the end: indexes before stay valid
            mine = categories.get_indexer(routed[i])
            rows = new.iloc[np.flatnonzero(np.isin(codes, mine[mine >= 0]))]
            frame = _splice(parts[i].frame, rows, routed[i])
            parts[i : i + 1] = _cut(frame, limit=2 * BLOCK_ROWS)
        return Blocks(parts, self._empty, self.schema)

    def frame(self) -> pd.DataFrame:
        """The rows as one frame, sorted by trial then epoch, as a full load gives them."""
        if self._whole is not None:  # the blocks are views of it: nothing to put together
            return self._whole.copy(deep=False)
        frames = [b.frame for b in self._parts] or [self._empty]
        if len(frames) > 1:
            frames = _same_categories(frames)
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return _restored(sorted_categories(frame.copy(deep=False)), self.schema)

    def rebase(self, frame: pd.DataFrame) -> None:
        """Point the blocks at ``frame``, this one read whole (same rows, in order; more
        columns allowed), so that only one copy of the rows is held. What each block knew
        stays known (the same rows)."""
        frame = frame[list(self.columns)]
        with self._lock:
            start, parts = 0, []
            for block in self._parts:
                stop = start + len(block.frame)
                parts.append(Block(frame.iloc[start:stop], block._known))
                start = stop
            if start != len(frame):
                raise ValueError(f"rebase onto {len(frame)} rows, the blocks hold {start}")
            self._parts, self._whole = tuple(parts), frame

    def reached(self) -> pd.Series | None:
        """Each trial's last epoch (None without rows)."""
        if not self._parts:
            return None
        return pd.concat([b.reached() for b in self._parts])

    def kept(self, key: tuple, make: Callable[[pd.DataFrame], object]) -> list:
        """``make`` of each block's rows, each made once per block (:meth:`Block.kept`)."""
        return [b.kept(key, make) for b in self._parts]


def last_epochs(frame: pd.DataFrame) -> pd.Series:
    """Each trial's last epoch: the epoch of its last row, ``frame`` being sorted by trial,
    then epoch, with the trials' categories sorted likewise."""
    trial = frame["trial_id"]
    if not isinstance(trial.dtype, pd.CategoricalDtype):
        return frame.groupby("trial_id")["epoch"].max()
    codes = trial.cat.codes.to_numpy()
    last = np.flatnonzero(np.r_[codes[1:] != codes[:-1], True]) if len(codes) else codes
    return pd.Series(frame["epoch"].to_numpy()[last], index=trial.cat.categories[codes[last]])


def sorted_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each categorical's categories the values it holds, sorted: the same
    rows give the same frame whichever files held them (Parquet's dictionaries follow the
    files' order)."""
    for name in frame.columns[[isinstance(t, pd.CategoricalDtype) for t in frame.dtypes]]:
        values = frame[name].array
        codes, categories = values.codes, values.categories
        used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
        if categories.is_monotonic_increasing:  # (known of a shared categories object)
            if used.all():
                continue
            keep = np.flatnonzero(used)
        else:
            order = np.argsort(categories.to_numpy(dtype=object), kind="stable")
            keep = order[used[order]]
        new = np.full(len(categories) + 1, -1, dtype=codes.dtype)  # [-1]: a null stays null
        new[keep] = np.arange(len(keep))
        frame[name] = pd.Categorical.from_codes(
            new[codes], categories=categories[keep], validate=False
        )
    return frame


def _cut(frame: pd.DataFrame, *, limit: int | None = None) -> list[Block]:
    """``frame`` as blocks (views of it) of about :data:`BLOCK_ROWS` rows, cut where a trial
    begins; one block where it has at most ``limit`` rows (default :data:`BLOCK_ROWS`),
    none where it has none."""
    n = len(frame)
    if n <= (BLOCK_ROWS if limit is None else limit):
        return [Block(frame)] if n else []
    codes = frame["trial_id"].cat.codes.to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])  # where each trial begins
    wanted = np.arange(BLOCK_ROWS, n, BLOCK_ROWS)
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, wanted), len(starts) - 1)])
    bounds = [0, *(int(c) for c in cuts if 0 < c < n), n]
    return [Block(frame.iloc[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


def _same_categories(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """``frames`` with each categorical column's categories the same in all (their union,
    sorted), so that they concatenate as categoricals. Blocks cut from one frame share its
    categories (one object): each distinct one is compared and mapped once."""
    frames = [f.copy(deep=False) for f in frames]
    first = frames[0]
    for name in first.columns[[isinstance(t, pd.CategoricalDtype) for t in first.dtypes]]:
        each = [f[name].cat.categories for f in frames]
        distinct = {id(c): c for c in each}
        if len(distinct) == 1:
            continue
        union = functools.reduce(pd.Index.union, distinct.values()).sort_values()
        at = {  # [-1]: a null stays null
            key: None if _same(c, union) else np.append(union.get_indexer(c), -1)
            for key, c in distinct.items()
        }
        for f, mine in zip(frames, each, strict=True):
            if at[id(mine)] is not None:
                f[name] = pd.Categorical.from_codes(
                    at[id(mine)][f[name].cat.codes.to_numpy()], categories=union, validate=False
                )
    return frames


def _same(a: pd.Index, b: pd.Index) -> bool:
    """Whether two categories hold the same values as the same type (concat keeps a
    categorical only then: no categories read as text and none read as objects differ)."""
    return a.dtype == b.dtype and a.equals(b)


def _splice(old: pd.DataFrame, new: pd.DataFrame, trials: list[str]) -> pd.DataFrame:
    """``old`` with the rows of ``trials`` replaced by ``new`` (their rows now); both are
    sorted by trial then epoch, with sorted categories. One copy of ``old``."""
    old = sorted_categories(old.copy(deep=False))  # its own values, not its frame's
    old, new = _same_categories([old, new])
    categories = old["trial_id"].cat.categories
    at_old = old["trial_id"].cat.codes.to_numpy()
    at_new = new["trial_id"].cat.codes.to_numpy()
    stretches: list[list] = []  # [frame, start, stop]: the rows in order, in few stretches
    start = 0
    for code in np.sort(categories.get_indexer(sorted(trials))):
        if code < 0:  # no row in either
            continue
        lo, hi = np.searchsorted(at_old, [code, code + 1])
        a, b = np.searchsorted(at_new, [code, code + 1])
        _extend(stretches, old, start, lo)
        _extend(stretches, new, a, b)
        start = hi
    _extend(stretches, old, start, len(old))
    pieces = [frame.iloc[a:b] for frame, a, b in stretches] or [old.iloc[:0]]
    return sorted_categories(pd.concat(pieces, ignore_index=True))


def _extend(stretches: list[list], frame: pd.DataFrame, start: int, stop: int) -> None:
    """Add rows ``start:stop`` of ``frame``, joining them to the last stretch if they
    follow it (a merge's trials come in runs)."""
    if stop <= start:
        return
    if stretches and stretches[-1][0] is frame and stretches[-1][2] == start:
        stretches[-1][2] = stop
    else:
        stretches.append([frame, start, stop])


def _restored(frame: pd.DataFrame, target: pa.Schema) -> pd.DataFrame:
    """Integer and boolean columns as Arrow converts them: their own type without nulls
    (a block may have lost its last null, or hold none where another does), float or
    object with."""
    for f in target:
        if f.name not in frame or not (pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)):
            continue
        want = np.dtype(f.type.to_pandas_dtype())
        column = frame[f.name]
        if column.dtype != want and not column.isna().any():
            frame[f.name] = column.astype(want)
    return frame
