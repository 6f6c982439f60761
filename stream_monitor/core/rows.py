"""The columnar form of a micro-batch: row types, the cell codes inside them, and the category-to-slot index.

Cell codes say why a value did not reach a statistic, so missing values are counted per feature and never fed to
a detector (one NaN blinds River's ADWIN and PageHinkley for good). docs/formats.md tabulates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.events import MISSING

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

    def take(self, keep: NDArray[np.bool_]) -> FeatureRows:
        """The rows flagged in ``keep``, in their order (cells renumbered to their new rows).

        >>> rows = FeatureRows(np.array([1.0, 2.0, 3.0]), ["a", "b", "c"], np.zeros((3, 0)),
        ...     np.zeros((3, 0), np.int8), np.zeros((3, 1), np.int32), [[(2, "new")]], [(0, "extra")])
        >>> kept = rows.take(np.array([False, True, True])); kept.event_ids, kept.new_values, kept.unknown_fields
        (['b', 'c'], [[(1, 'new')]], [])
        """
        if keep.all():
            return self
        where = np.cumsum(keep) - 1  # a kept row's new number

        def cells(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
            return [(int(where[r]), v) for r, v in items if keep[r]]

        return FeatureRows(
            ts=self.ts[keep],
            event_ids=[e for e, k in zip(self.event_ids, keep.tolist(), strict=True) if k],
            numeric=self.numeric[keep],
            numeric_code=self.numeric_code[keep],
            categorical=self.categorical[keep],
            new_values=[cells(col) for col in self.new_values],
            unknown_fields=cells(self.unknown_fields),
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


@dataclass
class PredictionRows:
    ts: NDArray[np.float64]
    event_ids: list[str]
    predicted: NDArray[np.float64]  # class slot (classification) or value (regression)
    score: NDArray[np.float64]  # NaN when the event carries no score
    raw_predicted: list[Any]

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, keep: NDArray[np.bool_]) -> PredictionRows:
        """The rows flagged in ``keep``, in their order."""
        if keep.all():
            return self
        flags = keep.tolist()
        return PredictionRows(
            ts=self.ts[keep],
            event_ids=[e for e, k in zip(self.event_ids, flags, strict=True) if k],
            predicted=self.predicted[keep],
            score=self.score[keep],
            raw_predicted=[p for p, k in zip(self.raw_predicted, flags, strict=True) if k],
        )

    def split(self, k: int) -> tuple[PredictionRows, PredictionRows]:
        """The first ``k`` rows and the rest."""
        return (
            PredictionRows(
                self.ts[:k], self.event_ids[:k], self.predicted[:k], self.score[:k], self.raw_predicted[:k]
            ),
            PredictionRows(
                self.ts[k:], self.event_ids[k:], self.predicted[k:], self.score[k:], self.raw_predicted[k:]
            ),
        )

    @staticmethod
    def concat(parts: Sequence[PredictionRows]) -> PredictionRows:
        """The rows of every part, in order."""
        if len(parts) == 1:
            return parts[0]
        return PredictionRows(
            ts=np.concatenate([p.ts for p in parts]),
            event_ids=[i for p in parts for i in p.event_ids],
            predicted=np.concatenate([p.predicted for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            raw_predicted=[v for p in parts for v in p.raw_predicted],
        )

    def permute(self, order: NDArray[np.intp]) -> PredictionRows:
        """The same rows in another order (``order`` is a permutation of every row)."""
        at = order.tolist()
        return PredictionRows(
            ts=self.ts[order],
            event_ids=[self.event_ids[i] for i in at],
            predicted=self.predicted[order],
            score=self.score[order],
            raw_predicted=[self.raw_predicted[i] for i in at],
        )


@dataclass
class LabelRows:
    ts: NDArray[np.float64]
    event_ids: list[str]
    label: NDArray[np.float64]  # class slot or value
    raw_label: list[Any]

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, keep: NDArray[np.bool_]) -> LabelRows:
        """The rows flagged in ``keep``, in their order."""
        if keep.all():
            return self
        flags = keep.tolist()
        return LabelRows(
            ts=self.ts[keep],
            event_ids=[e for e, k in zip(self.event_ids, flags, strict=True) if k],
            label=self.label[keep],
            raw_label=[v for v, k in zip(self.raw_label, flags, strict=True) if k],
        )
