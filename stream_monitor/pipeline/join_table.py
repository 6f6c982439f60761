"""The join's bounded-memory storage: an open-addressing hash table of numpy columns and a retired-id cache.

Outstanding predictions live in an open-addressing hash table made of numpy arrays (linear probing, tombstones,
rebuilt at half load to a load of at most 0.3): the key, the prediction time, the predicted value and the
score cost 28 bytes per bucket, so 56 to 190 bytes per outstanding prediction depending on where the table is
between rebuilds (61 bytes measured with 1M outstanding, 121 at the peak of a rebuild), against 250-400 bytes
for a dict of tuples. Labels that arrive before their prediction wait in a second table of the same kind.

Beside them, a direct-mapped cache of recently retired ids (9 bytes per slot) remembers why each left.
Every operation is vectorised over a batch of keys, the hashes of
:func:`~stream_monitor.pipeline.event_id_hash.hash_event_ids`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from stream_monitor.pipeline.event_id_hash import _EMPTY, _TOMBSTONE

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.uint64]
IndexArray = npt.NDArray[np.intp]

_JOINED: Final = 1  # states in the retired cache
_EVICTED: Final = 2


def _first_occurrences(keys: KeyArray) -> IndexArray:
    """Indices of the first occurrence of each distinct key, in input order."""
    ordered = np.sort(keys)
    if not np.any(ordered[1:] == ordered[:-1]):  # the usual case, and a cheaper sort
        return np.arange(keys.size)
    _, first = np.unique(keys, return_index=True)
    first.sort()
    return first


def _oldest(ts: FloatArray, keys: KeyArray, k: int) -> IndexArray:
    """Indices of the ``k`` smallest ``(ts, key)``, ordered by ``(ts, key)``, whatever the input order."""
    if k <= 0:
        return np.empty(0, np.intp)
    if k < ts.size:
        kth = float(ts[np.argpartition(ts, k - 1)[k - 1]])
        below = np.flatnonzero(ts < kth)
        ties = np.flatnonzero(ts == kth)
        ties = ties[np.argsort(keys[ties], kind="stable")[: k - below.size]]
        sel = np.concatenate([below, ties])
    else:
        sel = np.arange(ts.size)
    return sel[np.lexsort((keys[sel], ts[sel]))]


# ------------------------------------------------------------------------------------------------ hash table
class _KeyTable:
    """Open-addressing hash table from uint64 keys (>= 2) to numpy payload columns.

    Linear probing; a deleted bucket becomes a tombstone; the table is rebuilt at a load of 1/2 (live plus
    tombstones) to a load of at most 0.3, and shrinks when it falls under 1/16. Free buckets hold ``ts = inf``
    so that a sweep by time is one comparison. Positions returned by :meth:`find` are valid until the next
    :meth:`insert` or :meth:`delete`.
    """

    _MAX_LOAD: Final = 0.5
    _TARGET_LOAD: Final = 0.3

    def __init__(self, columns: Mapping[str, type[np.generic]], min_size: int = 1024) -> None:
        self._dtypes = dict(columns)
        self._min_size = min_size
        self._alloc(min_size)

    def _alloc(self, size: int) -> None:
        self._keys: KeyArray = np.zeros(size, np.uint64)
        self.ts: FloatArray = np.full(size, np.inf)
        self.cols: dict[str, npt.NDArray[Any]] = {k: np.zeros(size, t) for k, t in self._dtypes.items()}
        self._mask = size - 1
        self._live = 0
        self._used = 0  # live + tombstones

    def __len__(self) -> int:
        return self._live

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self.ts.nbytes + sum(c.nbytes for c in self.cols.values())

    def find(self, keys: KeyArray) -> IndexArray:
        """Bucket of each key, -1 where absent."""
        out = np.full(keys.size, -1, np.intp)
        idx = np.arange(keys.size)
        pos = (keys & np.uint64(self._mask)).astype(np.intp)
        while idx.size:
            here = self._keys[pos]
            hit = here == keys
            out[idx[hit]] = pos[hit]
            go = ~hit & (here != _EMPTY)
            idx, keys, pos = idx[go], keys[go], (pos[go] + 1) & self._mask
        return out

    def insert(self, keys: KeyArray, ts: FloatArray, cols: Mapping[str, npt.NDArray[Any]]) -> None:
        """Insert distinct keys known to be absent."""
        n = keys.size
        if self._used + n > self._MAX_LOAD * self._keys.size:
            self._rehash(self._live + n)
        idx = np.arange(n)
        pos = (keys & np.uint64(self._mask)).astype(np.intp)
        while idx.size:
            here = self._keys[pos]
            free = np.flatnonzero(here <= _TOMBSTONE)
            fi, fp = idx[free], pos[free]
            self._keys[fp] = keys[fi]
            won = self._keys[fp] == keys[fi]  # several keys may have claimed one bucket: one wrote last
            wi, wp = fi[won], fp[won]
            self.ts[wp] = ts[wi]
            for name, col in self.cols.items():
                col[wp] = cols[name][wi]
            self._used += int(np.count_nonzero(here[free[won]] == _EMPTY))
            placed = np.zeros(idx.size, bool)
            placed[free[won]] = True
            idx, pos = idx[~placed], (pos[~placed] + 1) & self._mask
        self._live += n

    def delete(self, pos: IndexArray) -> None:
        """Free buckets (distinct, live)."""
        self._keys[pos] = _TOMBSTONE
        self.ts[pos] = np.inf
        self._live -= pos.size
        if self._keys.size > self._min_size and self._live * 16 < self._keys.size:
            self._rehash(self._live)

    def live(self) -> IndexArray:
        return np.flatnonzero(self._keys > _TOMBSTONE)

    def older_than(self, cutoff: float) -> IndexArray:
        return np.flatnonzero(self.ts < cutoff)

    def keys_at(self, pos: IndexArray) -> KeyArray:
        return self._keys[pos]

    def _rehash(self, expected_live: int) -> None:
        pos = self.live()
        keys, ts = self._keys[pos], self.ts[pos]
        cols = {name: col[pos] for name, col in self.cols.items()}
        size = self._min_size
        while size * self._TARGET_LOAD < expected_live:
            size *= 2
        self._alloc(size)
        if keys.size:
            self.insert(keys, ts, cols)


def _oldest_positions(table: _KeyTable, k: int) -> IndexArray:
    """Positions of the ``k`` oldest entries of a table, oldest first."""
    live = table.live()
    return live[_oldest(table.ts[live], table.keys_at(live), k)]


class _RetiredCache:
    """Direct-mapped cache of recently retired keys and why they left (joined or evicted)."""

    def __init__(self, slots: int) -> None:
        self._keys: KeyArray = np.zeros(slots, np.uint64)
        self._state: npt.NDArray[np.uint8] = np.zeros(slots, np.uint8)
        self._mask = np.uint64(slots - 1)

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._state.nbytes

    def add(self, keys: KeyArray, state: int | npt.NDArray[np.uint8]) -> None:
        slot = keys & self._mask
        self._keys[slot] = keys
        self._state[slot] = state

    def lookup(self, keys: KeyArray) -> npt.NDArray[np.uint8]:
        slot = keys & self._mask
        return np.where(self._keys[slot] == keys, self._state[slot], np.uint8(0))

    def entries(self) -> tuple[KeyArray, npt.NDArray[np.uint8]]:
        filled = np.flatnonzero(self._keys)
        return self._keys[filled], self._state[filled]
