"""Join predictions to their (late) labels by ``event_id``, in event time, in bounded memory.

Pure: no Kafka, no clock. Time enters as event timestamps and as the ``watermark`` given to
:meth:`PredictionLabelJoiner.expire`.

Design
------
Event ids are hashed to 64 bits with a vectorised hash over the UCS-4 code points (:func:`hash_event_ids`):
with a million outstanding predictions the chance that two of them collide is about 3e-8. Outstanding
predictions live in an open-addressing hash table made of numpy arrays (linear probing, tombstones,
rebuilt at half load to a load of at most 0.3): the key, the prediction time, the predicted value and the
score cost 28 bytes per bucket, so 56 to 190 bytes per outstanding prediction depending on where the table is
between rebuilds (61 bytes measured with 1M outstanding, 121 at the peak of a rebuild), against 250-400 bytes
for a dict of tuples. Every operation is vectorised per batch; the only per-event Python work is turning the
ids into a numpy array (about 0.15 us each). ``scripts/bench_join.py`` measured about 800k prediction + label
events per CPU second through the join and the per-window ``PerformanceSketch`` fold, in micro-batches of
10,000.

Labels that arrive before their prediction wait in a second table of the same kind (own cap, own TTL). A
direct-mapped cache of recently retired ids (joined, expired or evicted; ``dedup_slots`` entries, 9 bytes
each) recognises a duplicate prediction or label after its pair has left the tables, and a label that arrives
after its prediction was evicted; an id pushed out of that cache by a newer one is forgotten.

:meth:`PredictionLabelJoiner.expire` sweeps the prediction table (one comparison over its time column, about
1 ms per million buckets) when the cutoff has passed the oldest outstanding prediction; call it once per
micro-batch or less often, not per event.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import orjson

from stream_monitor.core.errors import SnapshotError

__all__ = [
    "ExpiredBatch",
    "JoinedBatch",
    "JoinerStats",
    "LagHistogram",
    "PredictionLabelJoiner",
    "hash_event_ids",
]

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.uint64]
IndexArray = npt.NDArray[np.intp]
EventIds = Sequence[str] | npt.NDArray[np.str_]

_FORMAT: Final = "stream-monitor.joiner/v1"
_EMPTY: Final = np.uint64(0)
_TOMBSTONE: Final = np.uint64(1)
_JOINED: Final = 1  # states in the retired cache
_EVICTED: Final = 2

# ---------------------------------------------------------------------------------------------------- hashing
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
    arr = np.asarray(event_ids)
    n = arr.shape[0] if arr.ndim == 1 else 0
    if arr.ndim != 1 or (n and arr.dtype.kind not in "US"):
        raise ValueError("event_ids must be a one-dimensional sequence of str")
    h = np.full(n, _SEED, np.uint64)
    if n == 0:
        return h
    width = arr.dtype.itemsize // (4 if arr.dtype.kind == "U" else 1)
    codes = np.ascontiguousarray(arr.astype(f"<U{max(width, 1)}")).view(np.uint32).reshape(n, -1)
    if codes.shape[1] % 2:
        codes = np.concatenate([codes, np.zeros((n, 1), np.uint32)], axis=1)
    pairs = codes.view(np.uint64)  # (n, width / 2): two code points per word, little-endian
    for j in range(pairs.shape[1]):
        col = pairs[:, j]
        live = col != 0  # trailing padding is zero; a real code point pair never is
        if live.all():
            h = _mix(h ^ col)
        elif live.any():
            h[live] = _mix(h[live] ^ col[live])
        else:
            break
    h = _mix(h)
    return np.where(h <= _TOMBSTONE, h + np.uint64(2), h)


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


# --------------------------------------------------------------------------------------------- lag quantiles
class LagHistogram:
    """Bounded, mergeable histogram of label lags on log-spaced bins, for quantiles.

    Parameters
    ----------
    min_lag : float
        Lower edge of the first log bin, seconds; smaller (and negative) lags share one bin reported as
        ``[0, min_lag)``.
    max_lag : float
        Upper edge of the last log bin, seconds; larger lags share one bin reported as ``max_lag``.
    bins_per_decade : int
        Resolution: 20 gives bins 12 % wide, so a quantile is within 6 % of the truth.

    Examples
    --------
    >>> h = LagHistogram()
    >>> h.update(np.array([30.0, 60.0, 60.0, 3600.0]))
    >>> round(h.quantile(0.5)), h.count
    (60, 4)
    """

    def __init__(self, min_lag: float = 0.01, max_lag: float = 1e8, bins_per_decade: int = 20) -> None:
        if not 0 < min_lag < max_lag < math.inf:
            raise ValueError(f"need 0 < min_lag < max_lag < inf, got {min_lag!r}, {max_lag!r}")
        if not isinstance(bins_per_decade, int) or bins_per_decade < 1:
            raise ValueError(f"bins_per_decade must be an int >= 1, got {bins_per_decade!r}")
        self.min_lag = float(min_lag)
        self.max_lag = float(max_lag)
        self.bins_per_decade = bins_per_decade
        self._n_log = math.ceil(math.log10(self.max_lag / self.min_lag) * bins_per_decade)
        self._counts = np.zeros(self._n_log + 2, np.int64)  # [underflow, log bins..., overflow]

    @property
    def count(self) -> int:
        """Number of lags recorded."""
        return int(self._counts.sum())

    def update(self, lags: FloatArray) -> None:
        """Record lags in seconds (finite)."""
        lags = np.asarray(lags, np.float64)
        pos = np.log10(np.maximum(lags, self.min_lag) / self.min_lag) * self.bins_per_decade
        idx = np.where(lags < self.min_lag, 0, 1 + np.minimum(pos, self._n_log).astype(np.int64))
        self._counts += np.bincount(idx, minlength=self._counts.size)

    def merge(self, other: LagHistogram) -> None:
        """Add another histogram with the same bins into this one."""
        if (self.min_lag, self.max_lag, self.bins_per_decade) != (
            other.min_lag,
            other.max_lag,
            other.bins_per_decade,
        ):
            raise ValueError("cannot merge lag histograms with different bins")
        self._counts += other._counts

    def quantile(self, q: float) -> float:
        """Approximate ``q``-quantile in seconds (geometric interpolation in a bin); ``nan`` when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        total = self._counts.sum()
        if total == 0:
            return math.nan
        target = q * total
        cum = np.cumsum(self._counts)
        i = int(np.searchsorted(cum, target, side="left"))
        i = max(i, int(np.flatnonzero(self._counts)[0]))  # q = 0: the first non-empty bin
        frac = (target - (cum[i] - self._counts[i])) / self._counts[i]
        if i == 0:
            return float(frac * self.min_lag)
        if i == self._n_log + 1:
            return self.max_lag
        return float(self.min_lag * 10.0 ** ((i - 1 + frac) / self.bins_per_decade))

    def to_dict(self) -> dict[str, Any]:
        """Plain data; :meth:`from_dict` inverts it."""
        return {
            "min_lag": self.min_lag,
            "max_lag": self.max_lag,
            "bins_per_decade": self.bins_per_decade,
            "counts": self._counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LagHistogram:
        """Rebuild from :meth:`to_dict` output."""
        h = cls(data["min_lag"], data["max_lag"], data["bins_per_decade"])
        counts = np.asarray(data["counts"], np.int64)
        if counts.shape != h._counts.shape:
            raise ValueError("lag histogram counts do not fit its bins")
        h._counts = counts
        return h


# ------------------------------------------------------------------------------------------------- results
def _no_floats() -> FloatArray:
    return np.empty(0, np.float64)


@dataclass(frozen=True, eq=False)
class ExpiredBatch:
    """Outstanding predictions whose label never arrived: evicted for age (``ttl``) or room (``capacity``).

    Ordered by prediction time. Fold them into the window of ``pred_ts`` as "no label" for label coverage.
    """

    reason: Literal["ttl", "capacity"]
    pred_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    predicted: FloatArray = dataclasses.field(default_factory=_no_floats)
    score: FloatArray = dataclasses.field(default_factory=_no_floats)

    def __len__(self) -> int:
        return int(self.pred_ts.size)


@dataclass(frozen=True, eq=False)
class JoinedBatch:
    """Pairs joined by one call, as parallel arrays: fold them into the window of their ``pred_ts``.

    Attributes
    ----------
    pred_ts, label_ts : numpy.ndarray of float64
        Event times of the prediction and of its label.
    predicted, score, label : numpy.ndarray of float64
        The predicted class (or value), its score (``nan`` when absent) and the label.
    stale_pred_ts : numpy.ndarray of float64
        Prediction times of pairs whose label came later than the staleness SLA: counted, not joined.
    accepted : numpy.ndarray of bool
        One flag per row given to the call: ``False`` for a duplicate (and for a label whose prediction was
        already evicted).
    evicted : ExpiredBatch
        Predictions this call evicted to stay within ``max_outstanding`` (empty for :meth:`add_labels`).
    """

    pred_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    label_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    predicted: FloatArray = dataclasses.field(default_factory=_no_floats)
    score: FloatArray = dataclasses.field(default_factory=_no_floats)
    label: FloatArray = dataclasses.field(default_factory=_no_floats)
    stale_pred_ts: FloatArray = dataclasses.field(default_factory=_no_floats)
    accepted: npt.NDArray[np.bool_] = dataclasses.field(default_factory=lambda: np.empty(0, bool))
    evicted: ExpiredBatch = dataclasses.field(default_factory=lambda: ExpiredBatch("capacity"))

    def __len__(self) -> int:
        return int(self.pred_ts.size)

    @property
    def lag(self) -> FloatArray:
        """Label lag of each pair, seconds."""
        return self.label_ts - self.pred_ts


@dataclass(frozen=True)
class JoinerStats:
    """Counters and gauges of a joiner, as plain numbers (``nan`` where undefined)."""

    outstanding: int
    early_labels: int
    predictions: int
    labels: int
    joined: int
    stale_labels: int
    duplicate_predictions: int
    duplicate_labels: int
    evicted_ttl: int
    evicted_capacity: int
    early_labels_evicted_ttl: int
    early_labels_evicted_capacity: int
    labels_after_eviction: int
    lag_p50: float
    lag_p95: float
    coverage: float
    state_bytes: int
    prediction_table_bytes: int  # the waiting predictions' hash table alone (part of state_bytes)

    def as_dict(self) -> dict[str, float]:
        """The fields as a flat dict of numbers."""
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}


_COUNTERS: Final = (
    "predictions",
    "labels",
    "joined",
    "stale_labels",
    "duplicate_predictions",
    "duplicate_labels",
    "evicted_ttl",
    "evicted_capacity",
    "early_labels_evicted_ttl",
    "early_labels_evicted_capacity",
    "labels_after_eviction",
)


def _floats(name: str, values: npt.ArrayLike, n: int, *, finite: bool) -> FloatArray:
    arr = np.asarray(values, np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) like event_ids")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _pack(arr: npt.NDArray[Any]) -> dict[str, str]:
    a = np.ascontiguousarray(arr, arr.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.str, "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _unpack(obj: Mapping[str, str]) -> npt.NDArray[Any]:
    return np.frombuffer(base64.b64decode(obj["data"]), np.dtype(obj["dtype"])).copy()


# --------------------------------------------------------------------------------------------------- joiner
class PredictionLabelJoiner:
    """Join predictions to labels by ``event_id`` in event time, with a TTL, caps and duplicate detection.

    Parameters
    ----------
    ttl : float
        Seconds of event time a prediction waits for its label: :meth:`expire` evicts predictions older than
        ``watermark - ttl`` (they count as "label never arrived" for coverage).
    max_outstanding : int
        Hard cap on waiting predictions. Beyond it the oldest are evicted (reason ``capacity``), down to
        ``max_outstanding - max_outstanding // 32`` so that the search for the oldest is amortised.
    stale_after : float
        Label-freshness SLA, seconds: a label whose lag (label ts - prediction ts) exceeds it is counted as
        stale and not joined. ``inf`` disables the check.
    early_label_ttl : float or None
        Seconds of event time a label that arrived before its prediction waits for it; ``None`` means ``ttl``.
    max_early_labels : int
        Cap on such waiting labels; beyond it the oldest (by label time) are dropped and counted.
    dedup_slots : int
        Size of the cache of retired ids used to recognise duplicates after a join; a power of two.

    Examples
    --------
    >>> j = PredictionLabelJoiner(ttl=3600.0)
    >>> _ = j.add_predictions(["a", "b", "c"], [0.0, 10.0, 20.0], [1, 0, 1], [0.9, 0.2, float("nan")])

    Labels: "b" twice (a duplicate), and "d", whose prediction has not arrived yet and is held for it.

    >>> batch = j.add_labels(["b", "b", "d"], [70.0, 71.0, 75.0], [0, 0, 1])
    >>> batch.pred_ts.tolist(), batch.label.tolist(), batch.lag.tolist()
    ([10.0], [0.0], [60.0])
    >>> batch = j.add_predictions(["d"], [30.0], [1], [0.75])
    >>> batch.pred_ts.tolist(), batch.score.tolist(), batch.label.tolist()
    ([30.0], [0.75], [1.0])

    Time passes: at watermark 3610, "a" (t=0) has waited longer than the TTL; "c" (t=20) still waits.

    >>> expired = j.expire(3610.0)
    >>> expired.reason, expired.pred_ts.tolist()
    ('ttl', [0.0])
    >>> s = j.stats()
    >>> s.joined, s.duplicate_labels, s.outstanding, round(s.coverage, 3)
    (2, 1, 1, 0.667)
    """

    def __init__(
        self,
        ttl: float = 7 * 86400.0,
        max_outstanding: int = 2_000_000,
        stale_after: float = math.inf,
        early_label_ttl: float | None = None,
        max_early_labels: int = 100_000,
        dedup_slots: int = 1 << 18,
    ) -> None:
        if not 0 < ttl < math.inf:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        if not isinstance(max_outstanding, int) or max_outstanding < 1:
            raise ValueError(f"max_outstanding must be an int >= 1, got {max_outstanding!r}")
        if not stale_after > 0:
            raise ValueError(f"stale_after must be > 0 seconds (inf to disable), got {stale_after!r}")
        if early_label_ttl is not None and not 0 < early_label_ttl < math.inf:
            raise ValueError(f"early_label_ttl must be a positive number of seconds, got {early_label_ttl!r}")
        if not isinstance(max_early_labels, int) or max_early_labels < 0:
            raise ValueError(f"max_early_labels must be an int >= 0, got {max_early_labels!r}")
        if not isinstance(dedup_slots, int) or dedup_slots < 1 or dedup_slots & (dedup_slots - 1):
            raise ValueError(f"dedup_slots must be a power of two, got {dedup_slots!r}")
        self.ttl = float(ttl)
        self.max_outstanding = max_outstanding
        self.stale_after = float(stale_after)
        self.early_label_ttl = early_label_ttl
        self.max_early_labels = max_early_labels
        self.dedup_slots = dedup_slots
        self._reset()

    def _reset(self) -> None:
        self._pred = _KeyTable({"predicted": np.float64, "score": np.float32})
        self._early = _KeyTable({"label": np.float64})
        self._retired = _RetiredCache(self.dedup_slots)
        self._lag = LagHistogram()
        self._n: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        # lower bounds on the oldest waiting prediction / label, to skip sweeps that would find nothing
        self._pred_oldest = math.inf
        self._early_oldest = math.inf

    # ---------------------------------------------------------------------------------------------- input
    def add_predictions(
        self,
        event_ids: EventIds,
        ts: npt.ArrayLike,
        predicted: npt.ArrayLike,
        scores: npt.ArrayLike,
    ) -> JoinedBatch:
        """Add predictions; join those whose label is already waiting.

        Parameters
        ----------
        event_ids : sequence of str
            Ids; a repeated id (in the batch, waiting, or recently joined or evicted) is a counted duplicate.
        ts : array_like of float
            Prediction event times, epoch seconds; finite.
        predicted : array_like of float
            Predicted class index or value.
        scores : array_like of float
            Score of each prediction, ``nan`` when absent.

        Returns
        -------
        JoinedBatch
            Pairs joined with labels that arrived first, which predictions were new (``accepted``: fold
            exactly those into the window's prediction counts), and predictions evicted for capacity.
        """
        keys = hash_event_ids(event_ids)
        n = keys.size
        ts_ = _floats("ts", ts, n, finite=True)
        pred = _floats("predicted", predicted, n, finite=False)
        # scores are kept as float32: round them now so a pair joins the same whichever side came first
        score = _floats("scores", scores, n, finite=False).astype(np.float32).astype(np.float64)
        self._n["predictions"] += n
        first = _first_occurrences(keys)
        keep = first[(self._pred.find(keys[first]) < 0) & (self._retired.lookup(keys[first]) == 0)]
        self._n["duplicate_predictions"] += n - keep.size
        keys, ts_, pred, score = keys[keep], ts_[keep], pred[keep], score[keep]
        accepted = np.zeros(n, bool)
        accepted[keep] = True

        at = self._early.find(keys)
        waiting = at >= 0
        joined = JoinedBatch()
        if waiting.any():
            pos = at[waiting]
            label_ts, label = self._early.ts[pos], self._early.cols["label"][pos]
            self._early.delete(pos)
            joined = self._join(keys[waiting], ts_[waiting], pred[waiting], score[waiting], label_ts, label)
        new = ~waiting
        if new.any():
            self._pred.insert(keys[new], ts_[new], {"predicted": pred[new], "score": score[new]})
            self._pred_oldest = min(self._pred_oldest, float(ts_[new].min()))
        return dataclasses.replace(joined, accepted=accepted, evicted=self._enforce_capacity())

    def add_labels(self, event_ids: EventIds, ts: npt.ArrayLike, labels: npt.ArrayLike) -> JoinedBatch:
        """Add labels; join those whose prediction is waiting, hold the others for it.

        Parameters
        ----------
        event_ids : sequence of str
            Ids of the predictions these labels belong to.
        ts : array_like of float
            Label event times, epoch seconds; finite.
        labels : array_like of float
            True class index or value; finite.

        Returns
        -------
        JoinedBatch
            The pairs joined, in the order of the labels; ``accepted`` marks the labels joined, found stale or
            held for their prediction (not duplicates, nor labels of evicted predictions).
        """
        keys = hash_event_ids(event_ids)
        n = keys.size
        ts_ = _floats("ts", ts, n, finite=True)
        label = _floats("labels", labels, n, finite=True)
        self._n["labels"] += n
        first = _first_occurrences(keys)
        self._n["duplicate_labels"] += n - first.size
        keys, ts_, label, rows = keys[first], ts_[first], label[first], first
        accepted = np.zeros(n, bool)

        at = self._pred.find(keys)
        found = at >= 0
        accepted[rows[found]] = True
        pos = at[found]
        pred_ts, pred = self._pred.ts[pos], self._pred.cols["predicted"][pos]
        score = self._pred.cols["score"][pos].astype(np.float64)
        self._pred.delete(pos)
        joined = self._join(keys[found], pred_ts, pred, score, ts_[found], label[found])

        rest = ~found
        keys, ts_, label, rows = keys[rest], ts_[rest], label[rest], rows[rest]
        retired = self._retired.lookup(keys)
        self._n["duplicate_labels"] += int(np.count_nonzero(retired == _JOINED))
        self._n["labels_after_eviction"] += int(np.count_nonzero(retired == _EVICTED))
        fresh = retired == 0
        keys, ts_, label, rows = keys[fresh], ts_[fresh], label[fresh], rows[fresh]
        known = self._early.find(keys) >= 0
        self._n["duplicate_labels"] += int(np.count_nonzero(known))
        if not known.all():
            new = ~known
            accepted[rows[new]] = True
            self._early.insert(keys[new], ts_[new], {"label": label[new]})
            self._early_oldest = min(self._early_oldest, float(ts_[new].min()))
            excess = len(self._early) - self.max_early_labels
            if excess > 0:
                self._early.delete(self._oldest_positions(self._early, excess))
                self._n["early_labels_evicted_capacity"] += excess
        return dataclasses.replace(joined, accepted=accepted)

    def _join(
        self,
        keys: KeyArray,
        pred_ts: FloatArray,
        pred: FloatArray,
        score: FloatArray,
        label_ts: FloatArray,
        label: FloatArray,
    ) -> JoinedBatch:
        if keys.size == 0:
            return JoinedBatch()
        self._retired.add(keys, _JOINED)
        lag = label_ts - pred_ts
        self._lag.update(lag)
        ok = lag <= self.stale_after
        n_ok = int(np.count_nonzero(ok))
        self._n["joined"] += n_ok
        self._n["stale_labels"] += keys.size - n_ok
        if n_ok == keys.size:
            return JoinedBatch(pred_ts, label_ts, pred, score, label)
        return JoinedBatch(pred_ts[ok], label_ts[ok], pred[ok], score[ok], label[ok], pred_ts[~ok])

    # ------------------------------------------------------------------------------------------- eviction
    @staticmethod
    def _oldest_positions(table: _KeyTable, k: int) -> IndexArray:
        """Positions of the ``k`` oldest entries of a table, oldest first."""
        live = table.live()
        return live[_oldest(table.ts[live], table.keys_at(live), k)]

    def _enforce_capacity(self) -> ExpiredBatch:
        excess = len(self._pred) - self.max_outstanding
        if excess <= 0:
            return ExpiredBatch("capacity")
        k = excess + self.max_outstanding // 32
        return self._expel(self._oldest_positions(self._pred, k), "capacity")

    def _expel(self, pos: IndexArray, reason: Literal["ttl", "capacity"]) -> ExpiredBatch:
        """Retire the predictions at ``pos`` (in output order) as never labelled; return them."""
        self._retired.add(self._pred.keys_at(pos), _EVICTED)
        batch = ExpiredBatch(
            reason,
            self._pred.ts[pos],
            self._pred.cols["predicted"][pos],
            self._pred.cols["score"][pos].astype(np.float64),
        )
        self._pred.delete(pos)
        self._n[f"evicted_{reason}"] += pos.size
        return batch

    def expire(self, watermark: float) -> ExpiredBatch:
        """Evict predictions older than ``watermark - ttl`` and early labels older than theirs.

        Parameters
        ----------
        watermark : float
            Event time up to which the stream is considered complete (e.g. the latest prediction time seen,
            less an allowed lateness).

        Returns
        -------
        ExpiredBatch
            The predictions whose label never arrived, reason ``ttl``, ordered by prediction time.
        """
        if math.isnan(watermark):
            raise ValueError("watermark must be a number, got nan")
        early_cutoff = watermark - (self.ttl if self.early_label_ttl is None else self.early_label_ttl)
        if early_cutoff > self._early_oldest:
            old = self._early.older_than(early_cutoff)
            self._n["early_labels_evicted_ttl"] += old.size
            self._early.delete(old)
            self._early_oldest = float(self._early.ts.min())
        cutoff = watermark - self.ttl
        if not cutoff > self._pred_oldest:
            return ExpiredBatch("ttl")
        old = self._pred.older_than(cutoff)
        old = old[_oldest(self._pred.ts[old], self._pred.keys_at(old), old.size)]
        batch = self._expel(old, "ttl")
        self._pred_oldest = float(self._pred.ts.min())
        return batch

    # ---------------------------------------------------------------------------------------------- stats
    def stats(self) -> JoinerStats:
        """Counters since the start (or since the state that was restored), and current gauges."""
        n = self._n
        labelled = n["joined"] + n["stale_labels"]
        never = n["evicted_ttl"] + n["evicted_capacity"]
        return JoinerStats(
            outstanding=len(self._pred),
            early_labels=len(self._early),
            **n,
            lag_p50=self._lag.quantile(0.5),
            lag_p95=self._lag.quantile(0.95),
            coverage=labelled / (labelled + never) if labelled + never else math.nan,
            state_bytes=self._pred.nbytes + self._early.nbytes + self._retired.nbytes,
            prediction_table_bytes=self._pred.nbytes,
        )

    @property
    def lag_histogram(self) -> LagHistogram:
        """The histogram of label lags (live object: merge a copy, do not mutate)."""
        return self._lag

    # ---------------------------------------------------------------------------------------- persistence
    def snapshot(self) -> bytes:
        """Serialise the state as versioned plain data (JSON; arrays as base64 little-endian bytes).

        Returns
        -------
        bytes
            Pass it to :meth:`restore` of a joiner; the configuration is not part of the state. About 40 bytes
            per outstanding prediction: persist it at window close or on a timer, not per batch.
        """
        pred, early = self._pred.live(), self._early.live()
        retired_keys, retired_state = self._retired.entries()
        state = {
            "format": _FORMAT,
            "counters": self._n,
            "lag": self._lag.to_dict(),
            "predictions": {
                "key": _pack(self._pred.keys_at(pred)),
                "ts": _pack(self._pred.ts[pred]),
                "predicted": _pack(self._pred.cols["predicted"][pred]),
                "score": _pack(self._pred.cols["score"][pred]),
            },
            "early_labels": {
                "key": _pack(self._early.keys_at(early)),
                "ts": _pack(self._early.ts[early]),
                "label": _pack(self._early.cols["label"][early]),
            },
            "retired": {"key": _pack(retired_keys), "state": _pack(retired_state)},
        }
        return orjson.dumps(state)

    def restore(self, data: bytes) -> None:
        """Replace the state with one from :meth:`snapshot` (possibly of a joiner configured differently).

        Raises
        ------
        stream_monitor.core.errors.SnapshotError
            If the bytes are not a joiner snapshot of a supported version.
        """
        try:
            state = orjson.loads(data)
            if state.get("format") != _FORMAT:
                raise SnapshotError(f"not a {_FORMAT} snapshot: format {state.get('format')!r}")
            counters = {name: int(state["counters"][name]) for name in _COUNTERS}
            lag = LagHistogram.from_dict(state["lag"])
            p = {k: _unpack(v) for k, v in state["predictions"].items()}
            e = {k: _unpack(v) for k, v in state["early_labels"].items()}
            r = {k: _unpack(v) for k, v in state["retired"].items()}
        except SnapshotError:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"corrupt joiner snapshot: {exc!r}") from exc
        self._reset()
        self._n, self._lag = counters, lag
        self._retired.add(r["key"].astype(np.uint64), r["state"].astype(np.uint8))
        if p["key"].size:
            self._pred.insert(p["key"], p["ts"], {"predicted": p["predicted"], "score": p["score"]})
            self._pred_oldest = float(p["ts"].min())
        if e["key"].size:
            self._early.insert(e["key"], e["ts"], {"label": e["label"]})
            self._early_oldest = float(e["ts"].min())
