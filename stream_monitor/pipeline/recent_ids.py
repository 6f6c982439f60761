"""The event ids of the events in a fold's open slices, so a repeated id (a producer's retry, a replayed
batch upstream) is not folded twice.

The horizon is the open slices: an id is remembered from its event's arrival until the watermark hands its
slice out, which is ``allowed_lateness_seconds`` plus at most one slice of event time. A repeat that comes
later than that is older than the oldest open slice, so the late rule dead-letters it (``late_event``); no
repeat reaches a window. Memory is bounded by the events in open slices: two 8-byte words per id (its hash and
its slice, in sorted arrays), plus the ids forgotten since the last merge (at most about an eighth more), and
a byte filter of 4 to 8 slots per id that spares most probes the binary search of the large array, so about
25 bytes per event within the allowed lateness, a third of a hash table's or a fifth of a Python set's. Ids
are held as the 64-bit hashes of :func:`~stream_monitor.pipeline.event_id_hash.hash_event_ids` (two ids
collide with a chance of about 3e-8 among a million held), and snapshotted with the slices, so a restart keeps
them.

>>> ids = RecentIds()
>>> ids.fresh(np.array([7, 8, 7], np.uint64), np.array([0, 1, 0])).tolist()
[True, True, False]
>>> ids.forget_before(1); ids.fresh(np.array([7, 8], np.uint64), np.array([2, 2])).tolist(), len(ids)
([True, False], 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.pipeline.join_table import _first_occurrences

_MIN_MERGE: Final = 4096  # ids in the small array before it may be merged
_FLAG_SLOTS_PER_KEY: Final = 4  # slots of the large array's filter per id it holds: about 1 probe in 5 passes


class RecentIds:
    """Hashes of the ids folded into open slices, each with its slice, in two sorted arrays: a large one and
    a small one new ids are merged into (an id costs two 8-byte words, not a hash-table bucket or a Python
    object). Forgetting is lazy: an id whose slice is behind :attr:`floor` no longer counts, and is dropped
    when the small array is merged into the large one, which happens once it outgrows an eighth of it."""

    def __init__(self) -> None:
        self.floor = -(2**62)  # ids of slices below this are forgotten
        self._keys = np.empty(0, np.uint64)  # sorted
        self._slices = np.empty(0, np.int64)
        self._new_keys = np.empty(0, np.uint64)  # sorted
        self._new_slices = np.empty(0, np.int64)
        # A filter of the large array: a byte per slot of ``hash & mask``, set for every key it holds (rebuilt
        # with it), so a probe whose slot is clear skips the binary search of the large array, which costs
        # a few cache misses a probe once it holds hundreds of thousands of ids.
        self._flags = np.zeros(1, np.uint8)
        self._flag_mask = np.uint64(0)
        self._top = -(2**62)  # the latest slice of an id inserted: none is held once the floor passes it

    def __len__(self) -> int:
        return int((self._slices >= self.floor).sum() + (self._new_slices >= self.floor).sum())

    def fresh(self, hashes: NDArray[np.uint64], slice_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which rows carry an id not seen in the horizon (the first of repeats within the batch too); the
        fresh ones are remembered under their slice."""
        keep = np.zeros(len(hashes), dtype=bool)
        if len(hashes) == 0:
            return keep
        keep[_first_occurrences(hashes)] = True
        # probes in key order: a binary search of sorted probes walks the arrays forward (cache-friendly)
        candidates = np.flatnonzero(keep)
        candidates = candidates[np.argsort(hashes[candidates], kind="stable")]
        keys = hashes[candidates]
        seen = self._holds(self._new_keys, self._new_slices, keys)
        maybe = np.flatnonzero(self._flags[keys & self._flag_mask])
        if len(maybe):
            seen[maybe] |= self._holds(self._keys, self._slices, keys[maybe])
        keep[candidates[seen]] = False
        fresh = ~seen
        if fresh.any():
            keys, slices = keys[fresh], slice_ids[candidates[fresh]].astype(np.int64)
            self._top = max(self._top, int(slices.max()))
            at = np.searchsorted(self._new_keys, keys, side="right")  # after an older, forgotten copy
            self._new_keys = np.insert(self._new_keys, at, keys)
            self._new_slices = np.insert(self._new_slices, at, slices)
            if len(self._new_keys) > max(_MIN_MERGE, len(self._keys) // 8):
                self._merge()
        return keep

    def forget_before(self, slice_id: int) -> None:
        """Forget the ids of every slice before ``slice_id`` (the watermark handed them out)."""
        self.floor = max(self.floor, slice_id)
        if self._top < self.floor and len(self._keys) + len(self._new_keys):
            # all forgotten: free the arrays now (the end of a replay, an idle model)
            self._keys, self._slices = np.empty(0, np.uint64), np.empty(0, np.int64)
            self._new_keys, self._new_slices = np.empty(0, np.uint64), np.empty(0, np.int64)
            self._index()

    def snapshot(self) -> dict[str, str]:
        """Per open slice, its hashes as hex of little-endian uint64 bytes."""
        self._merge()
        order = np.argsort(self._slices, kind="stable")
        slices, keys = self._slices[order], self._keys[order]
        cuts = (np.flatnonzero(np.diff(slices)) + 1).tolist()
        return {
            str(int(slices[lo])): keys[lo:hi].astype("<u8").tobytes().hex()
            for lo, hi in zip([0, *cuts], [*cuts, len(slices)], strict=True)
            if len(slices)
        }

    def restore(self, state: Mapping[str, str]) -> None:
        parts = [
            (np.frombuffer(bytes.fromhex(h), dtype="<u8").astype(np.uint64), int(s)) for s, h in state.items()
        ]
        keys = np.concatenate([k for k, _ in parts]) if parts else np.empty(0, np.uint64)
        slices = (
            np.concatenate([np.full(len(k), s, np.int64) for k, s in parts])
            if parts
            else np.empty(0, np.int64)
        )
        order = np.argsort(keys, kind="stable")
        self.floor = -(2**62)
        self._keys, self._slices = keys[order], slices[order]
        self._new_keys, self._new_slices = np.empty(0, np.uint64), np.empty(0, np.int64)
        self._top = int(slices.max()) if len(slices) else -(2**62)
        self._index()

    def _holds(
        self, keys: NDArray[np.uint64], slices: NDArray[np.int64], probe: NDArray[np.uint64]
    ) -> NDArray[np.bool_]:
        """Which probes are held: their newest copy (the last of equal keys: a key is inserted again only
        once its older copy is forgotten) has a slice at or above the floor."""
        if len(keys) == 0:
            return np.zeros(len(probe), dtype=bool)
        at = np.searchsorted(keys, probe, side="right") - 1
        found = at >= 0
        at = np.maximum(at, 0)
        held: NDArray[np.bool_] = found & (keys[at] == probe) & (slices[at] >= self.floor)
        return held

    def _merge(self) -> None:
        """The small array into the large one, the forgotten ids of both dropped."""
        live, new_live = self._slices >= self.floor, self._new_slices >= self.floor
        keys, slices = self._keys[live], self._slices[live]
        new_keys, new_slices = self._new_keys[new_live], self._new_slices[new_live]
        at = np.searchsorted(keys, new_keys)
        self._keys, self._slices = np.insert(keys, at, new_keys), np.insert(slices, at, new_slices)
        self._new_keys, self._new_slices = np.empty(0, np.uint64), np.empty(0, np.int64)
        self._index()

    def _index(self) -> None:
        """The filter of the large array (after it changed)."""
        size = 1
        while size < _FLAG_SLOTS_PER_KEY * len(self._keys):
            size *= 2
        self._flag_mask = np.uint64(size - 1)
        self._flags = np.zeros(size, np.uint8)
        self._flags[self._keys & self._flag_mask] = 1
