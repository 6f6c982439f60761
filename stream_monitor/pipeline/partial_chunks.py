"""Closed slices cut into partial messages under :data:`MAX_PARTIAL_BYTES`, each keeping the boundary promise."""

from __future__ import annotations

from typing import Final

# A partial message stays well under the partials topic's record limit however many slices close at once.
MAX_PARTIAL_BYTES: Final = 4 * 1024 * 1024


def _chunks(slices: list[tuple[int, bytes]], boundary: int) -> list[tuple[list[tuple[int, bytes]], int]]:
    """Split closed slices into messages under :data:`MAX_PARTIAL_BYTES`; each message's boundary is the next
    message's first slice, the last one's the real boundary, so every message keeps the boundary promise."""
    if not slices:
        return [([], boundary)]
    groups: list[list[tuple[int, bytes]]] = [[]]
    size = 0
    for item in slices:
        if groups[-1] and size + len(item[1]) > MAX_PARTIAL_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += len(item[1])
    bounds = [g[0][0] for g in groups[1:]] + [boundary]
    return list(zip(groups, bounds, strict=True))
