"""Turn a micro-batch of decoded events into columnar numpy rows, vectorised, with typed rejections.

The hot path reads every feature of every event with one C-level ``itemgetter`` per event (or, for messages
decoded by :mod:`~stream_monitor.core.typed_decoding`, one tuple per struct) and converts each numeric column
with one ``struct.pack_into`` call; only a column that holds a null, an absent key or an unexpected type takes
the slower, per-value path.

Cell codes say why a value did not reach a statistic, so missing values are counted per feature and never fed to
a detector (one NaN blinds River's ADWIN and PageHinkley for good).
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import (
    MISSING,
    FieldPath,
    Rejection,
    RejectReason,
    TimestampFormat,
    parse_timestamps,
)

# Numeric cell codes.
OK: Final = 0
NULL: Final = 1  # null or NaN
ABSENT: Final = 2  # key not in the event
WRONG_TYPE: Final = 3  # e.g. a string or a boolean where a number belongs
INFINITE: Final = 4
CELL_CODES: Final = ("ok", "null", "absent", "wrong_type", "infinite")

# Categorical slot codes below zero; slots >= 0 index the reference categories, the last one being "other".
CAT_NULL: Final = -1
CAT_ABSENT: Final = -2
CAT_WRONG_TYPE: Final = -3

_NUMBER_TYPES: Final = frozenset({float, int})
_NUMBER_OR_NULL: Final = frozenset({float, int, type(None)})
_CATEGORY_CELL: Final = frozenset({str, int, type(None), type(MISSING)})
_BOOLEAN_CELL: Final = frozenset({bool, type(None), type(MISSING)})


@dataclass(frozen=True)
class FieldPaths:
    """Where each field lives in an event (dotted paths); defaults are the names of docs/formats.md."""

    event_id: str = "event_id"
    model_id: str = "model_id"
    ts: str = "ts"
    features: str = "features"
    prediction: str = "prediction"
    score: str = "score"
    scores: str = "scores"
    label: str = "label"


class CategoryIndex(dict[Any, int]):
    """Maps a category to its slot; anything unseen maps to the trailing "other" slot."""

    def __init__(self, categories: Sequence[Any]) -> None:
        super().__init__((c, i) for i, c in enumerate(categories))
        self.other = len(categories)
        self[None] = CAT_NULL
        self[MISSING] = CAT_ABSENT

    def __missing__(self, key: Any) -> int:
        return self.other


@dataclass
class FeatureRows:
    """One micro-batch of feature events of one model, in columns."""

    ts: NDArray[np.float64]
    event_ids: list[str]
    numeric: NDArray[np.float64]  # (n, F); NaN wherever the code is not OK
    numeric_code: NDArray[np.int8]  # (n, F)
    categorical: NDArray[np.int32]  # (n, C) slots, or CAT_* codes
    new_values: list[list[tuple[int, Any]]]  # per categorical feature: (row, value) that fell into "other"
    unknown_fields: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    @staticmethod
    def concat(parts: Sequence[FeatureRows]) -> FeatureRows:
        """The rows of every part, in order."""
        if len(parts) == 1:
            return parts[0]
        starts = np.cumsum([0, *map(len, parts)])[:-1].tolist()
        return FeatureRows(
            ts=np.concatenate([p.ts for p in parts]),
            event_ids=[i for p in parts for i in p.event_ids],
            numeric=np.asfortranarray(np.concatenate([p.numeric for p in parts])),
            numeric_code=np.asfortranarray(np.concatenate([p.numeric_code for p in parts])),
            categorical=np.concatenate([p.categorical for p in parts]),
            new_values=[
                [(r + at, v) for p, at in zip(parts, starts, strict=True) for r, v in p.new_values[j]]
                for j in range(len(parts[0].new_values))
            ],
            unknown_fields=[
                (r + at, k) for p, at in zip(parts, starts, strict=True) for r, k in p.unknown_fields
            ],
        )

    def split(self, k: int) -> tuple[FeatureRows, FeatureRows]:
        """The first ``k`` rows and the rest."""

        def cells(items: list[tuple[int, Any]], head: bool) -> list[tuple[int, Any]]:
            return [(r, v) for r, v in items if r < k] if head else [(r - k, v) for r, v in items if r >= k]

        return tuple(  # type: ignore[return-value]
            FeatureRows(
                ts=self.ts[:k] if head else self.ts[k:],
                event_ids=self.event_ids[:k] if head else self.event_ids[k:],
                numeric=self.numeric[:k] if head else self.numeric[k:],
                numeric_code=self.numeric_code[:k] if head else self.numeric_code[k:],
                categorical=self.categorical[:k] if head else self.categorical[k:],
                new_values=[cells(col, head) for col in self.new_values],
                unknown_fields=cells(self.unknown_fields, head),
            )
            for head in (True, False)
        )

    def permute(self, order: NDArray[np.intp]) -> FeatureRows:
        """The same rows in another order (``order`` is a permutation of every row)."""
        where = np.empty(len(order), dtype=np.intp)
        where[order] = np.arange(len(order))
        return FeatureRows(
            ts=self.ts[order],
            event_ids=[self.event_ids[i] for i in order],
            numeric=self.numeric[order],
            numeric_code=self.numeric_code[order],
            categorical=self.categorical[order],
            new_values=[sorted(((int(where[r]), v) for r, v in col), key=_row) for col in self.new_values],
            unknown_fields=sorted(((int(where[r]), k) for r, k in self.unknown_fields), key=_row),
        )


def _row(cell: tuple[int, Any]) -> int:
    return cell[0]


def _envelope(
    events: Sequence[dict[str, Any]],
    paths: FieldPaths,
    ts_format: TimestampFormat,
) -> tuple[list[str], NDArray[np.float64], dict[int, Rejection]]:
    """Event ids and timestamps; rejections keyed by position for events missing either."""
    bad: dict[int, Rejection] = {}
    ids = FieldPath(paths.event_id).get_all(events)
    if not set(map(type, ids)) <= {str}:
        for i, value in enumerate(ids):
            if value is MISSING or value is None:
                bad[i] = Rejection(i, RejectReason.MISSING_FIELD, f"missing field {paths.event_id!r}")
            elif type(value) is int:
                ids[i] = str(value)
            elif type(value) is not str:
                bad[i] = Rejection(
                    i,
                    RejectReason.WRONG_TYPE,
                    f"{paths.event_id!r} is {type(value).__name__}, expected string",
                )
    raw_ts = FieldPath(paths.ts).get_all(events)
    ts, ts_errors = parse_timestamps(raw_ts, ts_format)
    for i, why in ts_errors:
        if i not in bad:
            reason = RejectReason.MISSING_FIELD if raw_ts[i] is MISSING else RejectReason.BAD_TIMESTAMP
            bad[i] = Rejection(i, reason, f"{paths.ts!r}: {why}")
    return ids, ts, bad


def _drop(rows: list[Any], bad: Mapping[int, Rejection]) -> list[Any]:
    return [v for i, v in enumerate(rows) if i not in bad] if bad else rows


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
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.paths = paths or FieldPaths()
        self.ts_format = ts_format
        self._indexes = [CategoryIndex(list(cats)) for cats in categorical.values()]
        self._boolean = {self.categorical.index(name) for name in boolean}
        self._known = frozenset(self.numeric) | frozenset(self.categorical)
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


@dataclass
class PredictionRows:
    ts: NDArray[np.float64]
    event_ids: list[str]
    predicted: NDArray[np.float64]  # class slot (classification) or value (regression)
    score: NDArray[np.float64]  # NaN when the event carries no score
    raw_predicted: list[Any]

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class LabelRows:
    ts: NDArray[np.float64]
    event_ids: list[str]
    label: NDArray[np.float64]  # class slot or value
    raw_label: list[Any]

    def __len__(self) -> int:
        return len(self.ts)


class _OutcomeColumn:
    """Reads a prediction or a label: a class (mapped to its slot) or a number (regression)."""

    def __init__(self, path: str, classes: Sequence[Any] | None) -> None:
        self.path = FieldPath(path)
        self.index = CategoryIndex(list(classes)) if classes is not None else None

    def read(
        self, events: Sequence[dict[str, Any]], bad: dict[int, Rejection]
    ) -> tuple[list[Any], NDArray[np.float64]]:
        raw = self.path.get_all(events)
        for i, v in enumerate(raw):
            if i in bad:
                continue
            if v is MISSING or v is None:
                bad[i] = Rejection(i, RejectReason.MISSING_FIELD, f"missing field {self.path.path!r}")
            elif self.index is None and (type(v) not in _NUMBER_TYPES or not math.isfinite(v)):
                bad[i] = Rejection(i, RejectReason.WRONG_TYPE, f"{self.path.path!r} must be a finite number")
            elif self.index is not None and type(v) not in (str, int, bool):
                bad[i] = Rejection(i, RejectReason.WRONG_TYPE, f"{self.path.path!r} must be a class label")
        raw = _drop(raw, bad)
        if self.index is None:
            return raw, np.asarray(raw, dtype=np.float64)
        return raw, np.fromiter(map(self.index.__getitem__, raw), dtype=np.float64, count=len(raw))


def _keep_mask(n: int, bad: Mapping[int, Rejection]) -> NDArray[np.bool_]:
    keep = np.ones(n, dtype=bool)
    if bad:
        keep[list(bad)] = False
    return keep


class PredictionParser:
    """Parses prediction events; ``classes`` is None for a regression model."""

    def __init__(
        self,
        classes: Sequence[Any] | None,
        paths: FieldPaths | None = None,
        ts_format: TimestampFormat = "auto",
    ) -> None:
        self.paths = paths or FieldPaths()
        self.ts_format = ts_format
        self.classes = None if classes is None else list(classes)
        self._outcome = _OutcomeColumn(self.paths.prediction, classes)
        self._score = FieldPath(self.paths.score)
        self._scores = FieldPath(self.paths.scores)

    def parse(self, events: Sequence[dict[str, Any]]) -> tuple[PredictionRows, list[Rejection]]:
        ids, ts, bad = _envelope(events, self.paths, self.ts_format)
        scores = self._read_scores(events, bad)
        raw, predicted = self._outcome.read(events, bad)
        keep = _keep_mask(len(events), bad)
        rows = PredictionRows(
            ts=ts[keep], event_ids=_drop(ids, bad), predicted=predicted, score=scores[keep], raw_predicted=raw
        )
        return rows, sorted(bad.values(), key=lambda r: r.index)

    def _read_scores(
        self, events: Sequence[dict[str, Any]], bad: dict[int, Rejection]
    ) -> NDArray[np.float64]:
        single = self._score.get_all(events)
        kinds = set(map(type, single))
        if kinds <= _NUMBER_TYPES:
            out = np.asarray(single, dtype=np.float64)
            if np.isfinite(out).all():
                return out
        out = np.full(len(events), np.nan)
        for i, v in enumerate(single):
            if type(v) in _NUMBER_TYPES and math.isfinite(v):
                out[i] = v
            elif v is MISSING or v is None:
                multi = self._scores.get(events[i])
                if type(multi) is dict and multi:
                    values = [s for s in multi.values() if type(s) in _NUMBER_TYPES and math.isfinite(s)]
                    if len(values) == len(multi):
                        out[i] = max(values)  # confidence of the most likely class
                    elif i not in bad:
                        bad[i] = Rejection(
                            i, RejectReason.WRONG_TYPE, f"{self.paths.scores!r} values must be numbers"
                        )
                elif multi is not MISSING and multi is not None and i not in bad:
                    bad[i] = Rejection(i, RejectReason.WRONG_TYPE, f"{self.paths.scores!r} must be an object")
            elif i not in bad:
                bad[i] = Rejection(
                    i, RejectReason.WRONG_TYPE, f"{self.paths.score!r} must be a finite number"
                )
        return out


class LabelParser:
    """Parses label (ground-truth) events; ``classes`` is None for a regression model."""

    def __init__(
        self,
        classes: Sequence[Any] | None,
        paths: FieldPaths | None = None,
        ts_format: TimestampFormat = "auto",
    ) -> None:
        self.paths = paths or FieldPaths()
        self.ts_format = ts_format
        self._outcome = _OutcomeColumn(self.paths.label, classes)

    def parse(self, events: Sequence[dict[str, Any]]) -> tuple[LabelRows, list[Rejection]]:
        ids, ts, bad = _envelope(events, self.paths, self.ts_format)
        raw, label = self._outcome.read(events, bad)
        keep = _keep_mask(len(events), bad)
        rows = LabelRows(ts=ts[keep], event_ids=_drop(ids, bad), label=label, raw_label=raw)
        return rows, sorted(bad.values(), key=lambda r: r.index)


def route_by_model(
    events: Sequence[dict[str, Any]], model_path: str, known: Mapping[str, Any]
) -> tuple[dict[str, list[int]], list[Rejection]]:
    """Positions of each known model's events; events of no or an unknown model become rejections."""
    ids = FieldPath(model_path).get_all(events)
    distinct = set(ids) if set(map(type, ids)) <= {str} else None
    if distinct is not None and len(distinct) == 1 and ids and ids[0] in known:
        return {ids[0]: list(range(len(ids)))}, []
    groups: dict[str, list[int]] = {}
    rejected: list[Rejection] = []
    for i, mid in enumerate(ids):
        if mid is MISSING or mid is None:
            rejected.append(Rejection(i, RejectReason.MISSING_FIELD, f"missing field {model_path!r}"))
        elif type(mid) is not str:
            rejected.append(Rejection(i, RejectReason.WRONG_TYPE, f"{model_path!r} must be a string"))
        elif mid not in known:
            shown = mid if len(mid) <= 80 else mid[:77] + "..."
            rejected.append(Rejection(i, RejectReason.UNKNOWN_MODEL, f"model {shown!r} is not in the config"))
        else:
            groups.setdefault(mid, []).append(i)
    return groups, rejected
