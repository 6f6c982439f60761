"""Stable 64-bit hashes of event ids, vectorised: the key the join tables and the segment buffer share.

Event ids are hashed to 64 bits with a vectorised hash over the UCS-4 code points (:func:`hash_event_ids`):
with a million outstanding predictions the chance that two of them collide is about 3e-8. The values 0 and 1
are never produced: the tables (:mod:`stream_monitor.pipeline.join_table`) mark free and deleted buckets with
them. Snapshots hold these hashes, so a change of the hash function is a format change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["hash_event_ids"]

KeyArray = npt.NDArray[np.uint64]
EventIds = Sequence[str] | npt.NDArray[np.str_]

_EMPTY: Final = np.uint64(0)  # reserved: a free bucket of a join table
_TOMBSTONE: Final = np.uint64(1)  # reserved: a deleted bucket of a join table

_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)
_SEED: Final = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: KeyArray) -> KeyArray:
    """The splitmix64 finaliser, a bijection of uint64 with full avalanche (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


def hash_event_ids(event_ids: EventIds) -> KeyArray:
    """Stable 64-bit hashes of event ids, vectorised; never 0 or 1 (reserved by the tables).

    The hash folds the UCS-4 code points two at a time through the splitmix64 finaliser, skipping the zero
    padding numpy adds to shorter strings, so an id hashes the same in any batch and in any process.

    Parameters
    ----------
    event_ids : sequence of str or numpy array of str
        The ids.

    Returns
    -------
    numpy.ndarray of uint64
        One hash per id.

    Examples
    --------
    >>> h = hash_event_ids(["e-1", "e-2", "a-much-longer-event-id"])
    >>> bool(h[0] == hash_event_ids(["e-1"])[0]), len(set(h.tolist()))
    (True, 3)
    """
    arr = _code_points(event_ids)
    n = arr.shape[0]
    h = np.full(n, _SEED, np.uint64)
    if n == 0:
        return h
    # (width / 2, n): two code points per word, little-endian, one contiguous row per word position
    pairs = np.ascontiguousarray(arr.view(np.uint64).reshape(n, -1).T)
    for col in pairs:
        live = col != 0  # trailing padding is zero; a real code point pair never is
        if live.all():
            h = _mix(h ^ col)
        elif live.any():
            h[live] = _mix(h[live] ^ col[live])
        else:
            break
    h = _mix(h)
    return np.where(h <= _TOMBSTONE, h + np.uint64(2), h)


def _code_points(event_ids: EventIds) -> npt.NDArray[np.str_]:
    """The ids as a UCS-4 array of an even width (at least 2), zero-padded: one copy for a list of str."""
    if isinstance(event_ids, list) and all(type(e) is str for e in event_ids):
        width = max(map(len, event_ids), default=0)
        return np.array(event_ids, dtype=f"<U{max(width + width % 2, 2)}")
    arr = np.asarray(event_ids)
    n = arr.shape[0] if arr.ndim == 1 else 0
    if arr.ndim != 1 or (n and arr.dtype.kind not in "US"):
        raise ValueError("event_ids must be a one-dimensional sequence of str")
    width = arr.dtype.itemsize // (4 if arr.dtype.kind == "U" else 1)
    return arr.astype(f"<U{max(width + width % 2, 2)}")
