"""Join predictions to their (late) labels by ``event_id``, in event time, in bounded memory.

One piece on purpose: the prediction table, the early-label table, the retired-id cache and the counters
change together in every call, so the join stays one class; its storage, results, lag histogram and snapshot
format live in sibling modules. Pure: no Kafka, no clock. Time enters as event timestamps and as the
``watermark`` given to :meth:`PredictionLabelJoiner.expire`.

Design
------
Event ids are hashed to 64 bits (:mod:`stream_monitor.pipeline.event_id_hash`); outstanding predictions live
in an open-addressing hash table made of numpy arrays (:mod:`stream_monitor.pipeline.join_table`, which says
what a prediction costs in memory). Every operation is vectorised per batch; the only per-event Python work is
turning the ids into a numpy array (about 0.15 us each). ``scripts/bench_join.py`` measured about 800k
prediction + label events per CPU second through the join and the per-window ``PerformanceSketch`` fold, in
micro-batches of 10,000.

Labels that arrive before their prediction wait in a second table of the same kind (own cap, own TTL). A
direct-mapped cache of recently retired ids (joined, expired or evicted; ``dedup_slots`` entries, 9 bytes
each) recognises a duplicate prediction or label after its pair has left the tables, and a label that arrives
after its prediction was evicted; an id pushed out of that cache by a newer one is forgotten.

:meth:`PredictionLabelJoiner.expire` sweeps the prediction table (one comparison over its time column, about
1 ms per million buckets) when the cutoff has passed the oldest outstanding prediction; call it once per
micro-batch or less often, not per event.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from stream_monitor.pipeline.event_id_hash import EventIds, hash_event_ids
from stream_monitor.pipeline.join_results import _COUNTERS, ExpiredBatch, JoinedBatch, JoinerStats
from stream_monitor.pipeline.join_table import (
    _EVICTED,
    _JOINED,
    _first_occurrences,
    _KeyTable,
    _oldest,
    _oldest_positions,
    _RetiredCache,
)
from stream_monitor.pipeline.joiner_snapshot import JoinerState, decode_joiner_state, encode_joiner_state
from stream_monitor.pipeline.lag_histogram import LagHistogram

__all__ = ["PredictionLabelJoiner"]

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.uint64]
IndexArray = npt.NDArray[np.intp]


def _floats(name: str, values: npt.ArrayLike, n: int, *, finite: bool) -> FloatArray:
    arr = np.asarray(values, np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) like event_ids")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


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
                self._early.delete(_oldest_positions(self._early, excess))
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
    def _enforce_capacity(self) -> ExpiredBatch:
        excess = len(self._pred) - self.max_outstanding
        if excess <= 0:
            return ExpiredBatch("capacity")
        k = excess + self.max_outstanding // 32
        return self._expel(_oldest_positions(self._pred, k), "capacity")

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
        state = JoinerState(
            counters=self._n,
            lag=self._lag,
            predictions={
                "key": self._pred.keys_at(pred),
                "ts": self._pred.ts[pred],
                "predicted": self._pred.cols["predicted"][pred],
                "score": self._pred.cols["score"][pred],
            },
            early_labels={
                "key": self._early.keys_at(early),
                "ts": self._early.ts[early],
                "label": self._early.cols["label"][early],
            },
            retired={"key": retired_keys, "state": retired_state},
        )
        return encode_joiner_state(state)

    def restore(self, data: bytes) -> None:
        """Replace the state with one from :meth:`snapshot` (possibly of a joiner configured differently).

        Raises
        ------
        stream_monitor.core.errors.SnapshotError
            If the bytes are not a joiner snapshot of a supported version.
        """
        state = decode_joiner_state(data)
        p, e, r = state.predictions, state.early_labels, state.retired
        self._reset()
        self._n, self._lag = state.counters, state.lag
        self._retired.add(r["key"].astype(np.uint64), r["state"].astype(np.uint8))
        if p["key"].size:
            self._pred.insert(p["key"], p["ts"], {"predicted": p["predicted"], "score": p["score"]})
            self._pred_oldest = float(p["ts"].min())
        if e["key"].size:
            self._early.insert(e["key"], e["ts"], {"label": e["label"]})
            self._early_oldest = float(e["ts"].min())
