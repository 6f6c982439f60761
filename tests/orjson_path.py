"""The orjson path alone, as the oracle the typed decoders are held to: decode, route by model, parse dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream_monitor.core.envelope import route_by_model
from stream_monitor.core.events import decode_batch


def orjson_path(
    messages: list[bytes | None], parsers: Mapping[str, Any], max_bytes: int
) -> tuple[dict[str, tuple[Any, list[int]]], list[tuple[int, str, str]]]:
    """Each model's rows with the input position of each row, and every rejection as (position, reason,
    detail), sorted: what the service did before typed decoding existed."""
    events, kept, bad = decode_batch(messages, max_bytes)
    rejected = [(r.index, r.reason.value, r.detail) for r in bad]
    groups, unrouted = route_by_model(events, "model_id", parsers)
    rejected += [(kept[r.index], r.reason.value, r.detail) for r in unrouted]
    out = {}
    for model, members in groups.items():
        rows, refused = parsers[model].parse([events[i] for i in members])
        rejected += [(kept[members[r.index]], r.reason.value, r.detail) for r in refused]
        gone = {r.index for r in refused}
        out[model] = (rows, [kept[m] for k, m in enumerate(members) if k not in gone])
    return out, sorted(rejected)
