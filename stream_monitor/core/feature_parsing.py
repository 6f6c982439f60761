"""Turn a micro-batch of decoded feature events into columnar numpy rows, vectorised, with typed rejections.

The hot path reads every feature of every event with one C-level ``itemgetter`` per event (or, for messages
decoded by :mod:`~stream_monitor.core.typed_decoding`, one tuple per struct) and converts each numeric column
with one ``struct.pack_into`` call; only a column that holds a null, an absent key or an unexpected type takes
the slower, per-value path.

Cell codes (:mod:`~stream_monitor.core.rows`) say why a value did not reach a statistic, so missing values are
counted per feature and never fed to a detector.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.envelope import FieldPaths, _drop, _envelope
from stream_monitor.core.events import MISSING, FieldPath, Rejection, RejectReason, TimestampFormat
from stream_monitor.core.rows import (
    ABSENT,
    CAT_WRONG_TYPE,
    INFINITE,
    NULL,
    OK,
    WRONG_TYPE,
    CategoryIndex,
    FeatureRows,
)

_NUMBER_OR_NULL: Final = frozenset({float, int, type(None)})
_CATEGORY_CELL: Final = frozenset({str, int, type(None), type(MISSING)})
_BOOLEAN_CELL: Final = frozenset({bool, type(None), type(MISSING)})


def _classify_numeric(column: Sequence[Any], values: NDArray[np.float64], codes: NDArray[np.int8]) -> None:
    """Fill one column value by value: the path of a column holding a null, an absent key or a wrong type."""
    values[:] = np.nan
    codes[:] = OK
    if set(map(type, column)) <= _NUMBER_OR_NULL:  # nulls among numbers: still one conversion
        try:
            values[:] = np.array(column, dtype=np.float64)
        except OverflowError:  # an integer beyond float range: value by value below
            values[:] = np.nan
        else:
            bad = ~np.isfinite(values)
            codes[bad] = np.where(np.isnan(values[bad]), NULL, INFINITE)
            values[bad] = np.nan
            return
    for i, v in enumerate(column):
        kind = type(v)
        if kind is float or kind is int:
            try:
                finite = math.isfinite(v)
            except OverflowError:  # an integer beyond float range
                finite = False
            if finite:
                values[i] = v
            else:
                codes[i] = NULL if v != v else INFINITE
        elif v is None:
            codes[i] = NULL
        elif v is MISSING:
            codes[i] = ABSENT
        else:
            codes[i] = WRONG_TYPE


class FeatureParser:
    """Parses feature events of one model into :class:`FeatureRows`.

    >>> p = FeatureParser(numeric=["age"], categorical={"plan": ["free", "pro"]})
    >>> rows, rejected = p.parse([
    ...     {"event_id": "a", "ts": 1.7e9, "features": {"age": 41, "plan": "pro"}},
    ...     {"event_id": "b", "ts": 1.7e9, "features": {"age": None, "plan": "gold"}},
    ...     {"event_id": "c", "features": {}}])
    >>> rows.numeric[:, 0].tolist(), rows.numeric_code[:, 0].tolist(), rows.categorical[:, 0].tolist()
    ([41.0, nan], [0, 1], [1, 2])
    >>> [(r.index, r.reason.value) for r in rejected]
    [(2, 'missing_field')]
    """

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Mapping[str, Sequence[Any]],
        paths: FieldPaths | None = None,
        ts_format: TimestampFormat = "auto",
        boolean: Sequence[str] = (),
        ignored: Sequence[str] = (),
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        # known but not monitored (disabled in the config): never read, never an unknown field
        self.ignored = tuple(ignored)
        self.paths = paths or FieldPaths()
        self.ts_format = ts_format
        self._indexes = [CategoryIndex(list(cats)) for cats in categorical.values()]
        self._boolean = {self.categorical.index(name) for name in boolean}
        self._known = frozenset(self.numeric) | frozenset(self.categorical) | frozenset(self.ignored)
        self._n_known = len(self._known)
        self._features = FieldPath(self.paths.features)
        self._names = self.numeric + self.categorical
        self._get_cells = operator.itemgetter(*self._names) if self._names else None
        # A column whose reference categories are all strings cannot confuse 1, 1.0 and True (they hash alike):
        # any other type misses the index, so its cells need no type scan unless something misses.
        self._string_categories = [all(type(c) is str for c in cats) for cats in categorical.values()]

    def cell_types(self) -> list[tuple[str, Any]]:
        """Every configured feature in cell order with the type a clean value has (``None`` is always clean)."""
        out: list[tuple[str, Any]] = [(name, float | None) for name in self.numeric]
        for j, name in enumerate(self.categorical):
            if j in self._boolean:
                out.append((name, bool | None))
            else:
                out.append((name, str | None if self._string_categories[j] else int | str | None))
        return out

    def parse(self, events: Sequence[dict[str, Any]]) -> tuple[FeatureRows, list[Rejection]]:
        ids, ts, bad = _envelope(events, self.paths, self.ts_format)
        feats = self._features.get_all(events)
        if not set(map(type, feats)) <= {dict}:
            for i, f in enumerate(feats):
                if type(f) is not dict and i not in bad:
                    reason = RejectReason.MISSING_FIELD if f is MISSING else RejectReason.WRONG_TYPE
                    what = "missing" if f is MISSING else f"a {type(f).__name__}, not an object"
                    bad[i] = Rejection(i, reason, f"{self.paths.features!r} is {what}")
        if bad:
            keep = np.array([i not in bad for i in range(len(events))], dtype=bool)
            ts = ts[keep]
            ids = _drop(ids, bad)
            feats = _drop(feats, bad)
        rows = self.rows_from_cells(ts, ids, self._cells(feats))
        rows.unknown_fields = self._unknown(feats)
        return rows, sorted(bad.values(), key=lambda r: r.index)

    def rows_from_cells(self, ts: NDArray[np.float64], ids: list[str], cells: list[Any]) -> FeatureRows:
        """Rows from every configured feature of every event, event-major (``numeric + categorical`` order)."""
        n, stride = len(ts), len(self._names)
        numeric, codes = self._numeric([cells[j::stride] for j in range(len(self.numeric))], n)
        categorical, new_values = self._categorical(
            [cells[j::stride] for j in range(len(self.numeric), stride)], n
        )
        return FeatureRows(
            ts=ts,
            event_ids=ids,
            numeric=numeric,
            numeric_code=codes,
            categorical=categorical,
            new_values=new_values,
        )

    def _cells(self, feats: list[dict[str, Any]]) -> list[Any]:
        """Every configured feature of every event, event-major: one C-level lookup pass over the batch."""
        getter = self._get_cells
        if getter is None:
            return []
        try:
            if len(self._names) == 1:
                return list(map(getter, feats))
            return list(chain.from_iterable(map(getter, feats)))
        except KeyError:  # an absent feature: mark it, so it is counted as absent, not as null
            names = self._names
            return [f.get(k, MISSING) for f in feats for k in names]

    @staticmethod
    def _numeric(columns: list[list[Any]], n: int) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
        """Column-major values and codes (every later pass runs down whole columns)."""
        values_t = np.empty((len(columns), n))
        codes_t = np.zeros((len(columns), n), dtype=np.int8)
        fmt, buffer = f"{n}d", values_t.data
        for j, column in enumerate(columns):
            try:
                # struct converts the column in one C call and, unlike np.array / np.fromiter, refuses None and
                # numeric strings ("1.5"): a clean column is proven clean by the conversion itself.
                struct.pack_into(fmt, buffer, j * n * 8, *column)
            except (struct.error, OverflowError):
                _classify_numeric(column, values_t[j], codes_t[j])
                continue
            row = values_t[j]
            # A boolean packs silently as 0/1: only a column holding an exact 0 or 1 needs a type look.
            if ((row == 0.0) | (row == 1.0)).any() and bool in set(map(type, column)):
                _classify_numeric(column, row, codes_t[j])
                continue
            bad = ~np.isfinite(row)
            if bad.any():
                codes_t[j][bad] = np.where(np.isnan(row[bad]), NULL, INFINITE)
                row[bad] = np.nan
        return values_t.T, codes_t.T

    def _categorical(
        self, columns: list[list[Any]], n: int
    ) -> tuple[NDArray[np.int32], list[list[tuple[int, Any]]]]:
        out = np.empty((n, len(columns)), dtype=np.int32)
        new_values: list[list[tuple[int, Any]]] = []
        for j, (column, index, strings) in enumerate(
            zip(columns, self._indexes, self._string_categories, strict=True)
        ):
            valid = _BOOLEAN_CELL if j in self._boolean else _CATEGORY_CELL
            try:
                slots = np.fromiter(map(index.__getitem__, column), dtype=np.int32, count=n)
                # Among string categories a wrong type can only miss the index (into "other"); elsewhere 1, 1.0
                # and True hash alike, so the column's types must be looked at.
                careful = not strings or j in self._boolean or bool((slots == index.other).any())
                clean = not careful or set(map(type, column)) <= valid
            except TypeError:  # unhashable: a list or an object
                clean = False
            if not clean:
                slots = np.fromiter(
                    (index[v] if type(v) in valid else CAT_WRONG_TYPE for v in column),
                    dtype=np.int32,
                    count=n,
                )
            out[:, j] = slots
            others = np.flatnonzero(slots == index.other)
            new_values.append([(int(i), column[i]) for i in others])
        return out, new_values

    def _unknown(self, feats: list[dict[str, Any]]) -> list[tuple[int, str]]:
        sizes = np.fromiter(map(len, feats), dtype=np.int64, count=len(feats))
        suspects = np.flatnonzero(sizes > self._n_known)
        known = self._known
        return [(int(i), key) for i in suspects for key in feats[i] if key not in known]
