"""The event ids of the events in a fold's open slices, so a repeated id (a producer's retry, a replayed
batch upstream) is not folded twice.

The horizon is the open slices: an id is remembered from its event's arrival until the watermark hands its
slice out, which is ``allowed_lateness_seconds`` plus at most one slice of event time. A repeat that comes
later than that is older than the oldest open slice, so the late rule dead-letters it (``late_event``); no
repeat reaches a window. Memory is bounded by the events in open slices (40 to 60 bytes each: a 64-bit hash and
its slice in the join's open-addressing table, :class:`~stream_monitor.pipeline.join_table._KeyTable`, and the
hash in its slice's array), the same bound as the open slices themselves. Ids are held as the 64-bit
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

from stream_monitor.pipeline.join_table import _first_occurrences, _KeyTable


class RecentIds:
    """Hashes of the ids folded into each open slice, in a vectorised hash table for the membership test."""

    def __init__(self) -> None:
        self._table = _KeyTable({}, min_size=256)  # hash -> slice id (as the table's time column)
        self._by_slice: dict[int, list[NDArray[np.uint64]]] = {}

    def __len__(self) -> int:
        return len(self._table)

    def fresh(self, hashes: NDArray[np.uint64], slice_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which rows carry an id not seen in the horizon (the first of repeats within the batch too); the
        fresh ones are remembered under their slice."""
        keep = np.zeros(len(hashes), dtype=bool)
        if len(hashes) == 0:
            return keep
        keep[_first_occurrences(hashes)] = True
        candidates = np.flatnonzero(keep)
        keep[candidates[self._table.find(hashes[candidates]) >= 0]] = False
        new = np.flatnonzero(keep)
        if new.size == 0:
            return keep
        new_hashes, new_slices = hashes[new], slice_ids[new]
        self._table.insert(new_hashes, new_slices.astype(np.float64), {})
        order = np.argsort(new_slices, kind="stable")
        new_slices, new_hashes = new_slices[order], new_hashes[order]
        cuts = (np.flatnonzero(np.diff(new_slices)) + 1).tolist()
        for lo, hi in zip([0, *cuts], [*cuts, len(new_slices)], strict=True):
            self._by_slice.setdefault(int(new_slices[lo]), []).append(new_hashes[lo:hi])
        return keep

    def forget_before(self, slice_id: int) -> None:
        """Drop the ids of every slice before ``slice_id`` (the watermark handed them out)."""
        old = [s for s in self._by_slice if s < slice_id]
        if not old:
            return
        keys = np.concatenate([g for s in old for g in self._by_slice.pop(s)])
        pos = self._table.find(keys)
        self._table.delete(pos[pos >= 0])

    def snapshot(self) -> dict[str, str]:
        """Per slice, its hashes as hex of little-endian uint64 bytes."""
        return {
            str(s): np.concatenate(groups).astype("<u8").tobytes().hex()
            for s, groups in self._by_slice.items()
        }

    def restore(self, state: Mapping[str, str]) -> None:
        self._table = _KeyTable({}, min_size=256)
        self._by_slice = {}
        for s, h in state.items():
            keys = np.frombuffer(bytes.fromhex(h), dtype="<u8").astype(np.uint64)
            if keys.size:
                self.fresh(keys, np.full(keys.size, int(s), np.int64))
