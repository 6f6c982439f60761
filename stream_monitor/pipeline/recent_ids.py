"""The event ids of the events in a fold's open slices, so a repeated id (a producer's retry, a replayed
batch upstream) is not folded twice.

The horizon is the open slices: an id is remembered from its event's arrival until the watermark hands its
slice out, which is ``allowed_lateness_seconds`` plus at most one slice of event time. A repeat that comes
later than that is older than the oldest open slice, so the late rule dead-letters it (``late_event``); no
repeat reaches a window. Memory is bounded by the events in open slices (about 80 bytes each: a 64-bit hash in
a set and in its slice's array), the same bound as the open slices themselves. Ids are held as the 64-bit
hashes of :func:`~stream_monitor.pipeline.event_id_hash.hash_event_ids` (two ids collide with a chance of
about 3e-8 among a million held), and snapshotted with the slices, so a restart keeps them.

>>> ids = RecentIds()
>>> ids.fresh(np.array([7, 8, 7], np.uint64), np.array([0, 1, 0])).tolist()
[True, True, False]
>>> ids.forget_before(1); ids.fresh(np.array([7, 8], np.uint64), np.array([2, 2])).tolist(), len(ids)
([True, False], 2)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray


class RecentIds:
    """Hashes of the ids folded into each open slice, and one set of all of them for the membership test."""

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._by_slice: dict[int, list[NDArray[np.uint64]]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def fresh(self, hashes: NDArray[np.uint64], slice_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which rows carry an id not seen in the horizon (the first of repeats within the batch too); the
        fresh ones are remembered under their slice."""
        keep = np.ones(len(hashes), dtype=bool)
        seen = self._seen
        before = len(seen)
        for i, h in enumerate(hashes.tolist()):
            if h in seen:
                keep[i] = False
            else:
                seen.add(h)
        if len(seen) == before:
            return keep
        kept_ids, kept_hashes = slice_ids[keep], hashes[keep]
        order = np.argsort(kept_ids, kind="stable")
        kept_ids, kept_hashes = kept_ids[order], kept_hashes[order]
        cuts = np.flatnonzero(np.diff(kept_ids)) + 1
        for group_ids, group in zip(np.split(kept_ids, cuts), np.split(kept_hashes, cuts), strict=True):
            self._by_slice.setdefault(int(group_ids[0]), []).append(group)
        return keep

    def forget_before(self, slice_id: int) -> None:
        """Drop the ids of every slice before ``slice_id`` (the watermark handed them out)."""
        for s in [s for s in self._by_slice if s < slice_id]:
            for group in self._by_slice.pop(s):
                self._seen.difference_update(group.tolist())

    def snapshot(self) -> dict[str, str]:
        """Per slice, its hashes as hex of little-endian uint64 bytes."""
        return {
            str(s): np.concatenate(groups).astype("<u8").tobytes().hex()
            for s, groups in self._by_slice.items()
        }

    def restore(self, state: Mapping[str, str]) -> None:
        self._by_slice = {
            int(s): [np.frombuffer(bytes.fromhex(h), dtype="<u8").astype(np.uint64)] for s, h in state.items()
        }
        self._seen = {h for groups in self._by_slice.values() for g in groups for h in g.tolist()}
