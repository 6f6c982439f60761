"""What the events of every stream share: where fields live, the envelope (id and time), routing by model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
