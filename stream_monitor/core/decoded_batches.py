"""What a typed decoder makes of a batch of messages: each model's rows with their input positions, and the
rejections; one shape for features and predictions, with the orjson path both decoders fall back on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.envelope import route_by_model
from stream_monitor.core.events import Rejection, decode_batch
from stream_monitor.core.rows import FeatureRows, PredictionRows

Rows = TypeVar("Rows", FeatureRows, PredictionRows)
# Each model's pieces of rows, with the input position of every row, from the fast path and the slow one.
Parts = dict[str, list[tuple[Rows, NDArray[np.intp]]]]


@dataclass
class RowBatch(Generic[Rows]):
    """One model's rows from a batch of messages, in input order, with each row's input position."""

    rows: Rows
    positions: NDArray[np.intp]


@dataclass
class DecodedBatch(Generic[Rows]):
    """What a batch of messages decoded to."""

    batches: dict[str, RowBatch[Rows]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)  # input positions, ascending
    refused_by_model: dict[str, int] = field(default_factory=dict)  # rejections of a known model's events
    slow: int = 0  # messages the structs refused, decoded by the orjson path

    def keep(
        self, parts: Parts[Rows], model: str, rows: Rows, refused: list[Rejection], at: NDArray[np.intp]
    ) -> None:
        """A model's parsed rows (``at``: the input position of each event the parser saw) and refusals."""
        self.rejections.extend(Rejection(int(at[r.index]), r.reason, r.detail) for r in refused)
        if refused:
            self.refused_by_model[model] = self.refused_by_model.get(model, 0) + len(refused)
            at = np.delete(at, [r.index for r in refused])
        parts.setdefault(model, []).append((rows, at))

    def finish(self, parts: Parts[Rows], slow: int) -> None:
        """Each model's pieces back in input order, the rejections sorted."""
        self.batches = {model: _merge(pieces) for model, pieces in parts.items()}
        self.rejections.sort(key=lambda r: r.index)
        self.slow = slow

    def split(self, cut: int) -> tuple[Self, Self]:
        """What messages ``[0, cut)`` decoded to, and what the rest did (positions counted from ``cut``); the
        counters go with the first part. Both parts are of this object's class."""
        head = type(self)(refused_by_model=self.refused_by_model, slow=self.slow)
        tail = type(self)()
        for model, batch in self.batches.items():
            k = int(np.searchsorted(batch.positions, cut))
            first, rest = batch.rows.split(k)
            if k:
                head.batches[model] = RowBatch(first, batch.positions[:k])
            if k < len(batch.positions):
                tail.batches[model] = RowBatch(rest, batch.positions[k:] - cut)
        for r in self.rejections:
            if r.index < cut:
                head.rejections.append(r)
            else:
                tail.rejections.append(Rejection(r.index - cut, r.reason, r.detail))
        return head, tail


def decode_slow(
    messages: Sequence[bytes | None],
    at: list[int],
    parsers: Mapping[str, Any],
    model_id_field: str,
    max_bytes: int,
    parts: Parts[Rows],
    out: DecodedBatch[Rows],
) -> None:
    """The orjson path, for the messages at the positions ``at`` (those the structs refused): decode, route,
    parse from dicts with each model's parser."""
    if not at:
        return
    at.sort()
    events, kept, bad = decode_batch([messages[i] for i in at], max_bytes)
    out.rejections.extend(Rejection(at[r.index], r.reason, r.detail) for r in bad)
    groups, unrouted = route_by_model(events, model_id_field, parsers)
    out.rejections.extend(Rejection(at[kept[r.index]], r.reason, r.detail) for r in unrouted)
    for model, members in groups.items():
        rows, refused = parsers[model].parse([events[i] for i in members])
        out.keep(parts, model, rows, refused, np.asarray([at[kept[i]] for i in members], dtype=np.intp))


def _merge(pieces: list[tuple[Rows, NDArray[np.intp]]]) -> RowBatch[Rows]:
    """One model's rows from the fast and the slow path, back in input order."""
    if len(pieces) == 1:
        return RowBatch(*pieces[0])
    rows = type(pieces[0][0]).concat([p[0] for p in pieces])
    positions = np.concatenate([p[1] for p in pieces])
    order = np.argsort(positions, kind="stable")
    return RowBatch(rows.permute(order), positions[order])
