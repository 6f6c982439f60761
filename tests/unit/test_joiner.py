"""PredictionLabelJoiner: join semantics, eviction, staleness, duplicates, snapshots, bounded memory."""

from __future__ import annotations

import dataclasses
import math
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_monitor.core.errors import SnapshotError
from stream_monitor.pipeline.event_id_hash import hash_event_ids
from stream_monitor.pipeline.join_results import ExpiredBatch, JoinedBatch, JoinerStats
from stream_monitor.pipeline.joiner import PredictionLabelJoiner
from stream_monitor.pipeline.lag_histogram import LagHistogram

NAN = float("nan")


def ids(*names: object) -> list[str]:
    return [str(n) for n in names]


# ------------------------------------------------------------------------------------------------ hashing
def test_hash_is_stable_across_batches_widths_and_releases() -> None:
    short = hash_event_ids(["e-000123"])
    padded = hash_event_ids(["e-000123", "a-much-longer-id-that-widens-the-array"])
    assert short[0] == padded[0]
    assert hash_event_ids(np.array(["e-000123"], dtype="S"))[0] == short[0]
    # pinned: snapshots hold these hashes, so a change of the hash function is a format change
    assert int(short[0]) == 0xBC1D7F0C5AD66B58


def test_hash_distinguishes_near_ids_and_never_returns_sentinels() -> None:
    near = ["", "a", "a\x01", "ab", "ba", "abc", "abcd", "é", "日本", "e-1", "e-01", "e-10"]
    h = hash_event_ids(near)
    assert len(set(h.tolist())) == len(near)
    many = hash_event_ids([f"evt-{i}" for i in range(200_000)])
    assert np.unique(many).size == many.size
    assert many.min() >= 2
    assert hash_event_ids([]).size == 0


def test_hash_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="sequence of str"):
        hash_event_ids(np.array([1, 2, 3]))


# ---------------------------------------------------------------------------------------------- semantics
def test_join_returns_pairs_in_label_order_with_their_lag() -> None:
    j = PredictionLabelJoiner()
    out = j.add_predictions(ids("a", "b", "c"), [100.0, 200.0, 300.0], [1, 0, 1], [0.9, 0.25, NAN])
    assert len(out) == 0
    batch = j.add_labels(ids("c", "a"), [310.0, 160.0], [1, 0])
    assert batch.pred_ts.tolist() == [300.0, 100.0]
    assert batch.label_ts.tolist() == [310.0, 160.0]
    assert batch.predicted.tolist() == [1.0, 1.0]
    assert np.isnan(batch.score[0])
    assert batch.score[1] == pytest.approx(0.9, rel=1e-7)
    assert batch.label.tolist() == [1.0, 0.0]
    assert batch.lag.tolist() == [10.0, 60.0]
    s = j.stats()
    assert (s.outstanding, s.joined, s.predictions, s.labels) == (1, 2, 3, 2)


def test_labels_before_predictions_are_held_and_joined_when_the_prediction_arrives() -> None:
    j = PredictionLabelJoiner()
    assert len(j.add_labels(ids("x", "y"), [50.0, 60.0], [1, 0])) == 0
    assert j.stats().early_labels == 2
    batch = j.add_predictions(ids("z", "y", "x"), [10.0, 70.0, 40.0], [0, 1, 1], [0.1, 0.6, 0.7])
    assert batch.pred_ts.tolist() == [70.0, 40.0]  # prediction order
    assert batch.lag.tolist() == [-10.0, 10.0]  # a label may carry an earlier event time
    assert batch.label.tolist() == [0.0, 1.0]
    s = j.stats()
    assert (s.early_labels, s.outstanding, s.joined) == (0, 1, 2)


def test_duplicates_are_ignored_and_counted() -> None:
    j = PredictionLabelJoiner()
    batch = j.add_predictions(ids("a", "a", "b"), [1.0, 2.0, 3.0], [1, 0, 1], [0.5, 0.5, 0.5])
    assert batch.accepted.tolist() == [True, False, True]  # fold these into the window's prediction counts
    batch = j.add_predictions(ids("b"), [9.0], [0], [0.1])  # b is still waiting
    assert batch.accepted.tolist() == [False]
    assert j.stats().duplicate_predictions == 2
    batch = j.add_labels(ids("a", "a"), [5.0, 6.0], [1, 0])
    assert batch.label.tolist() == [1.0]  # first occurrences win
    assert batch.pred_ts.tolist() == [1.0]
    j.add_labels(ids("a"), [7.0], [1])  # a was joined already
    j.add_predictions(ids("a"), [8.0], [1], [0.5])  # so was its prediction
    j.add_labels(ids("q"), [7.0], [1])  # held: q has no prediction yet
    j.add_labels(ids("q"), [7.5], [1])  # a duplicate of a held label
    s = j.stats()
    assert s.duplicate_labels == 3
    assert s.duplicate_predictions == 3
    assert (s.outstanding, s.early_labels, s.joined) == (1, 1, 1)


def test_ttl_expiry_returns_unlabelled_predictions_and_sets_coverage() -> None:
    j = PredictionLabelJoiner(ttl=100.0)
    j.add_predictions(ids("a", "b", "c", "d"), [30.0, 10.0, 50.0, 200.0], [1, 0, 1, 1], [0.9, 0.2, 0.8, 0.7])
    j.add_labels(ids("c"), [60.0], [1])
    assert len(j.expire(100.0)) == 0  # cutoff 0: nothing is older
    expired = j.expire(145.0)  # cutoff 45: a (30) and b (10)
    assert isinstance(expired, ExpiredBatch)
    assert expired.reason == "ttl"
    assert expired.pred_ts.tolist() == [10.0, 30.0]  # ordered by prediction time
    assert expired.predicted.tolist() == [0.0, 1.0]
    assert len(j.expire(145.0)) == 0
    s = j.stats()
    assert (s.outstanding, s.evicted_ttl, s.joined) == (1, 2, 1)
    assert s.coverage == pytest.approx(1 / 3)
    # a label for an expired prediction is counted, neither joined nor held
    assert len(j.add_labels(ids("a"), [300.0], [1])) == 0
    s = j.stats()
    assert (s.labels_after_eviction, s.early_labels) == (1, 0)


def test_early_labels_have_their_own_ttl() -> None:
    j = PredictionLabelJoiner(ttl=1000.0, early_label_ttl=10.0)
    j.add_labels(ids("x", "y"), [100.0, 105.0], [1, 1])
    j.expire(112.0)  # early cutoff 102: x goes
    s = j.stats()
    assert (s.early_labels, s.early_labels_evicted_ttl) == (1, 1)
    # x's prediction then arrives and waits; the dropped label does not make it a duplicate
    assert len(j.add_predictions(ids("x", "y"), [90.0, 95.0], [1, 1], [0.5, 0.5])) == 1
    assert j.stats().outstanding == 1


def test_capacity_evicts_the_oldest_and_returns_them() -> None:
    j = PredictionLabelJoiner(max_outstanding=64)
    names = [f"p{i}" for i in range(64)]
    rng = np.random.default_rng(0)
    ts = rng.permutation(64).astype(float)
    assert len(j.add_predictions(names, ts, np.ones(64), np.full(64, 0.5)).evicted) == 0
    batch = j.add_predictions(ids("new1", "new2"), [100.0, 0.5], [1, 1], [0.5, 0.5])
    evicted = batch.evicted
    assert evicted.reason == "capacity"
    # 2 over the cap, plus the slack of 64 // 32 = 2 so that the next inserts do not search again
    assert evicted.pred_ts.tolist() == [0.0, 0.5, 1.0, 2.0]
    s = j.stats()
    assert (s.outstanding, s.evicted_capacity) == (62, 4)
    assert s.coverage == 0.0
    j.add_labels(ids("new2"), [10.0], [1])  # its prediction was evicted
    assert j.stats().labels_after_eviction == 1


def test_early_label_capacity() -> None:
    j = PredictionLabelJoiner(max_early_labels=3)
    j.add_labels(ids("a", "b", "c", "d", "e"), [5.0, 1.0, 4.0, 2.0, 3.0], [1, 1, 1, 1, 1])
    s = j.stats()
    assert (s.early_labels, s.early_labels_evicted_capacity) == (3, 2)
    batch = j.add_predictions(ids("a", "b", "c", "d", "e"), [0.0] * 5, [1] * 5, [0.5] * 5)
    assert sorted(batch.label_ts.tolist()) == [3.0, 4.0, 5.0]  # the two oldest labels were dropped


def test_stale_labels_are_counted_not_joined() -> None:
    j = PredictionLabelJoiner(stale_after=100.0)
    j.add_predictions(ids("a", "b", "c"), [0.0, 0.0, 0.0], [1, 1, 1], [0.5, 0.5, 0.5])
    batch = j.add_labels(ids("a", "b"), [50.0, 500.0], [1, 0])
    assert batch.pred_ts.tolist() == [0.0]
    assert batch.stale_pred_ts.tolist() == [0.0]
    j.add_labels(ids("b"), [501.0], [0])  # a repeat of a stale label is still a duplicate
    s = j.stats()
    assert (s.joined, s.stale_labels, s.outstanding, s.duplicate_labels) == (1, 1, 1, 1)
    # a stale label arrived within the TTL: it counts for coverage, and its lag for the quantiles
    j.expire(10 * 86400.0)
    assert j.stats().coverage == pytest.approx(2 / 3)
    assert j.lag_histogram.count == 2
    # a label that arrived before its prediction goes through the same SLA
    j.add_labels(ids("late"), [1000.0], [1])
    batch = j.add_predictions(ids("late"), [0.0], [1], [0.5])
    assert len(batch) == 0
    assert batch.stale_pred_ts.tolist() == [0.0]


def test_lag_quantiles_track_numpy() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    lags = rng.lognormal(mean=np.log(3600.0), sigma=1.0, size=n)
    j = PredictionLabelJoiner(ttl=1e9)
    names = [f"e{i}" for i in range(n)]
    j.add_predictions(names, np.zeros(n), np.ones(n), np.full(n, 0.5))
    j.add_labels(names, lags, np.ones(n))
    s = j.stats()
    assert s.lag_p50 == pytest.approx(np.quantile(lags, 0.5), rel=0.06)
    assert s.lag_p95 == pytest.approx(np.quantile(lags, 0.95), rel=0.06)


def test_lag_histogram_merge_and_round_trip() -> None:
    a, b, whole = LagHistogram(), LagHistogram(), LagHistogram()
    x = np.array([-5.0, 0.0, 0.005, 1.0, 30.0, 1e7, 1e9])
    a.update(x[:3])
    b.update(x[3:])
    whole.update(x)
    a.merge(b)
    assert a.to_dict() == whole.to_dict()
    assert LagHistogram.from_dict(orjson.loads(orjson.dumps(a.to_dict()))).to_dict() == a.to_dict()
    assert whole.quantile(1.0) == 1e8  # the overflow bin reports the upper edge
    assert 0.0 <= whole.quantile(0.0) < 0.01  # the underflow bin is [0, min_lag)
    with pytest.raises(ValueError, match="different bins"):
        a.merge(LagHistogram(bins_per_decade=10))
    assert math.isnan(LagHistogram().quantile(0.5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 0.0}, "ttl must be a positive"),
        ({"ttl": math.inf}, "ttl must be a positive"),
        ({"max_outstanding": 0}, "max_outstanding must be an int >= 1"),
        ({"stale_after": 0.0}, "stale_after must be > 0"),
        ({"early_label_ttl": -1.0}, "early_label_ttl must be a positive"),
        ({"max_early_labels": -1}, "max_early_labels must be an int >= 0"),
        ({"dedup_slots": 1000}, "dedup_slots must be a power of two"),
    ],
)
def test_constructor_validates(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PredictionLabelJoiner(**kwargs)  # type: ignore[arg-type]


def test_inputs_are_validated_and_not_mutated() -> None:
    j = PredictionLabelJoiner()
    with pytest.raises(ValueError, match="expected"):
        j.add_predictions(ids("a", "b"), [1.0], [1, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="ts must be finite"):
        j.add_predictions(ids("a"), [NAN], [1], [0.5])
    with pytest.raises(ValueError, match="labels must be finite"):
        j.add_labels(ids("a"), [1.0], [NAN])
    with pytest.raises(ValueError, match="watermark"):
        j.expire(NAN)
    ts, pred, score = np.array([1.0, 2.0]), np.array([1.0, 0.0]), np.array([0.3, 0.7])
    copies = [a.copy() for a in (ts, pred, score)]
    j.add_predictions(ids("a", "b"), ts, pred, score)
    for original, copy in zip((ts, pred, score), copies, strict=True):
        np.testing.assert_array_equal(original, copy)
    assert j.stats().predictions == 2


# ------------------------------------------------------------------------------------- against a reference
@dataclass
class Reference:
    """The joiner's contract, written per event with dicts and sets (the retired-id cache never forgets)."""

    ttl: float
    max_outstanding: int
    stale_after: float
    early_label_ttl: float
    max_early_labels: int
    pred: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    early: dict[str, tuple[float, float]] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    accepted: list[bool] = field(default_factory=list)  # of the last call

    def count(self, name: str, k: int = 1) -> None:
        self.n[name] = self.n.get(name, 0) + k

    @staticmethod
    def oldest(items: dict[str, tuple[float, ...]], k: int) -> list[str]:
        key = {name: int(h) for name, h in zip(items, hash_event_ids(list(items)), strict=True)}
        return sorted(items, key=lambda name: (items[name][0], key[name]))[:k]

    def join(
        self, rows: list[tuple[float, ...]], name: str, p: tuple[float, ...], lab: tuple[float, ...]
    ) -> None:
        self.retired[name] = "joined"
        if lab[0] - p[0] > self.stale_after:
            self.count("stale")
        else:
            self.count("joined")
            rows.append((p[0], lab[0], p[1], p[2], lab[1]))

    def add_predictions(self, names: list[str], ts: list[float], pred: list[float], score: list[float]):
        rows: list[tuple[float, float, float, float, float]] = []
        seen: set[str] = set()
        self.accepted = []
        for name, t, p, s in zip(names, ts, pred, score, strict=True):
            new = not (name in seen or name in self.pred or name in self.retired)
            self.accepted.append(new)
            if not new:
                self.count("dup_pred")
                continue
            seen.add(name)
            entry = (t, p, float(np.float32(s)))
            if name in self.early:
                self.join(rows, name, entry, self.early.pop(name))
            else:
                self.pred[name] = entry
        evicted = []
        if len(self.pred) > self.max_outstanding:
            k = len(self.pred) - self.max_outstanding + self.max_outstanding // 32
            for name in self.oldest(self.pred, k):
                evicted.append(self.pred.pop(name))
                self.retired[name] = "evicted"
            self.count("capacity", k)
        return rows, evicted

    def add_labels(self, names: list[str], ts: list[float], labels: list[float]):
        rows: list[tuple[float, float, float, float, float]] = []
        seen: set[str] = set()
        self.accepted = []
        for name, t, y in zip(names, ts, labels, strict=True):
            self.accepted.append(False)
            if name in seen:
                self.count("dup_label")
                continue
            seen.add(name)
            if name in self.pred:
                self.join(rows, name, self.pred.pop(name), (t, y))
                self.accepted[-1] = True
            elif self.retired.get(name) == "joined" or name in self.early:
                self.count("dup_label")
            elif self.retired.get(name) == "evicted":
                self.count("after_eviction")
            else:
                self.early[name] = (t, y)
                self.accepted[-1] = True
        if len(self.early) > self.max_early_labels:
            k = len(self.early) - self.max_early_labels
            for name in self.oldest(self.early, k):
                del self.early[name]
        return rows

    def expire(self, watermark: float):
        for name in [n for n, v in self.early.items() if v[0] < watermark - self.early_label_ttl]:
            del self.early[name]
        old = [n for n, v in self.pred.items() if v[0] < watermark - self.ttl]
        expired = []
        for name in self.oldest({n: self.pred[n] for n in old}, len(old)):
            expired.append(self.pred.pop(name))
            self.retired[name] = "evicted"
        return expired


def rows_of(batch: JoinedBatch) -> list[tuple[float, ...]]:
    arrays = (batch.pred_ts, batch.label_ts, batch.predicted, batch.score, batch.label)
    return [tuple(float(x) for x in row) for row in zip(*(a.tolist() for a in arrays), strict=True)]


def triples(batch: ExpiredBatch) -> list[tuple[float, ...]]:
    return list(zip(batch.pred_ts.tolist(), batch.predicted.tolist(), batch.score.tolist(), strict=True))


NAMES = [f"id{i}" for i in range(40)]
# the retired-id cache is direct-mapped: with distinct slots for these ids, it forgets nothing in this test
assert np.unique(hash_event_ids(NAMES) & np.uint64(4095)).size == len(NAMES)

op = st.one_of(
    st.tuples(
        st.just("pred"),
        st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 60), st.integers(0, 1)), max_size=8),
    ),
    st.tuples(st.just("label"), st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 90)), max_size=8)),
    st.tuples(st.just("expire"), st.integers(0, 150)),
)


def same(a: list[tuple[float, ...]], b: list[tuple[float, ...]]) -> bool:
    return len(a) == len(b) and all(np.allclose(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op, max_size=25), max_outstanding=st.integers(1, 40), max_early=st.integers(0, 10))
def test_matches_a_per_event_reference(ops: list, max_outstanding: int, max_early: int) -> None:
    cfg = {"ttl": 40.0, "stale_after": 30.0, "early_label_ttl": 20.0, "max_early_labels": max_early}
    joiner = PredictionLabelJoiner(max_outstanding=max_outstanding, dedup_slots=4096, **cfg)
    ref = Reference(max_outstanding=max_outstanding, **cfg)
    for kind, arg in ops:
        if kind == "pred":
            names = [a for a, _, _ in arg]
            ts = [float(t) for _, t, _ in arg]
            pred = [float(p) for _, _, p in arg]
            score = [0.1 + 0.8 * p if t % 3 else NAN for _, t, p in arg]
            batch = joiner.add_predictions(names, ts, pred, score)
            rows, evicted = ref.add_predictions(names, ts, pred, score)
            assert same(rows_of(batch), rows)
            assert same(triples(batch.evicted), evicted)
            assert batch.accepted.tolist() == ref.accepted
        elif kind == "label":
            names = [a for a, _ in arg]
            ts = [float(t) for _, t in arg]
            labels = [float(t % 2) for _, t in arg]
            batch = joiner.add_labels(names, ts, labels)
            assert same(rows_of(batch), ref.add_labels(names, ts, labels))
            assert batch.accepted.tolist() == ref.accepted
        else:
            assert same(triples(joiner.expire(float(arg))), ref.expire(float(arg)))
        s = joiner.stats()
        assert (s.outstanding, s.early_labels) == (len(ref.pred), len(ref.early))
    s, n = joiner.stats(), ref.n
    assert s.joined == n.get("joined", 0)
    assert s.stale_labels == n.get("stale", 0)
    assert s.duplicate_predictions == n.get("dup_pred", 0)
    assert s.duplicate_labels == n.get("dup_label", 0)
    assert s.evicted_capacity == n.get("capacity", 0)
    assert s.labels_after_eviction == n.get("after_eviction", 0)


# ------------------------------------------------------------------------------------------------ snapshots
def workload(seed: int, n: int = 6000, batch: int = 300):
    """Interleaved predictions, delayed labels (some never, some before their prediction), expiries."""
    rng = np.random.default_rng(seed)
    names = np.array([f"evt-{seed}-{i}" for i in range(n)])
    pred_ts = np.sort(rng.uniform(0, 3000, n))
    label_ts = pred_ts + rng.exponential(60.0, n)
    has_label = rng.random(n) < 0.85
    arrive_label = label_ts - rng.uniform(0, 100, n) * (rng.random(n) < 0.1)  # some before the prediction
    predicted = rng.integers(0, 2, n).astype(float)
    scores = np.where(rng.random(n) < 0.9, rng.random(n), np.nan)
    labels = rng.integers(0, 2, n).astype(float)
    dup = rng.random(n) < 0.03
    events = [("p", t, i) for i, t in enumerate(pred_ts)]
    events += [("l", t, i) for i, t in enumerate(arrive_label) if has_label[i]]
    events += [("p", t + 1, i) for i, t in enumerate(pred_ts) if dup[i]]
    events.sort(key=lambda e: e[1])
    steps = []
    for lo in range(0, len(events), batch):
        chunk = events[lo : lo + batch]
        p = np.array([i for kind, _, i in chunk if kind == "p"], int)
        q = np.array([i for kind, _, i in chunk if kind == "l"], int)
        steps.append(("pred", (names[p], pred_ts[p], predicted[p], scores[p])))
        steps.append(("label", (names[q], label_ts[q], labels[q])))
        steps.append(("expire", chunk[-1][1]))
    return steps


def run(joiner: PredictionLabelJoiner, steps: list) -> list[list[tuple[float, ...]]]:
    out = []
    for kind, arg in steps:
        if kind == "pred":
            batch = joiner.add_predictions(*arg)
            out += [rows_of(batch), batch.stale_pred_ts.tolist(), triples(batch.evicted)]
        elif kind == "label":
            batch = joiner.add_labels(*arg)
            out += [rows_of(batch), batch.stale_pred_ts.tolist()]
        else:
            out.append(triples(joiner.expire(arg)))
    return out


def counters(joiner: PredictionLabelJoiner) -> JoinerStats:
    """Stats but the table sizes, which depend on the history of inserts, not on the contents."""
    return dataclasses.replace(joiner.stats(), state_bytes=0, prediction_table_bytes=0)


def config() -> dict[str, float]:
    return {"ttl": 400.0, "max_outstanding": 380, "stale_after": 150.0, "max_early_labels": 5}


@pytest.mark.parametrize("cut", [0, 7, 25, 40])
def test_snapshot_then_restore_gives_identical_future_outputs(cut: int) -> None:
    steps = workload(seed=11)
    live = PredictionLabelJoiner(**config())  # type: ignore[arg-type]
    run(live, steps[:cut])
    restored = PredictionLabelJoiner(**config())  # type: ignore[arg-type]
    restored.restore(live.snapshot())
    assert counters(restored) == counters(live)
    future_live, future_restored = run(live, steps[cut:]), run(restored, steps[cut:])
    assert len(future_live) == len(future_restored)
    for a, b in zip(future_live, future_restored, strict=True):
        assert a == b or same(a, b)
    assert counters(restored) == counters(live)
    s = live.stats()
    # the workload exercises every path
    assert min(s.evicted_capacity, s.evicted_ttl, s.stale_labels, s.duplicate_predictions) > 0
    assert min(s.early_labels_evicted_capacity, s.labels_after_eviction) > 0


def test_snapshot_is_versioned_plain_json() -> None:
    j = PredictionLabelJoiner()
    j.add_predictions(ids("a"), [1.0], [1], [0.5])
    state = orjson.loads(j.snapshot())
    assert state["format"] == "stream-monitor.joiner/v1"
    assert state["counters"]["predictions"] == 1
    assert set(state) == {"format", "counters", "lag", "predictions", "early_labels", "retired"}


def test_restore_rejects_garbage() -> None:
    j = PredictionLabelJoiner()
    with pytest.raises(SnapshotError, match=r"not a stream-monitor\.joiner/v1"):
        j.restore(orjson.dumps({"format": "other"}))
    with pytest.raises(SnapshotError, match="corrupt"):
        j.restore(b"{not json")
    with pytest.raises(SnapshotError, match="corrupt"):
        j.restore(orjson.dumps({"format": "stream-monitor.joiner/v1", "counters": {}}))


# ---------------------------------------------------------------------------------------------- memory
def test_state_does_not_grow_after_eviction() -> None:
    j = PredictionLabelJoiner(ttl=10.0, dedup_slots=1024)
    empty = j.stats().state_bytes
    sizes = []
    for cycle in range(4):
        base = cycle * 1000.0
        names = [f"c{cycle}-{i}" for i in range(50_000)]
        j.add_predictions(names, np.full(50_000, base), np.ones(50_000), np.full(50_000, 0.5))
        sizes.append(j.stats().state_bytes)
        j.add_labels(names[:25_000], np.full(25_000, base + 1), np.ones(25_000))
        j.expire(base + 100.0)
        assert j.stats().outstanding == 0
        assert j.stats().state_bytes == empty  # shrunk back to the minimum tables
    assert len(set(sizes)) == 1


def test_bytes_per_outstanding_prediction_under_300() -> None:
    n = 200_000
    names = [f"evt-{i:012d}" for i in range(n)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        j = PredictionLabelJoiner(dedup_slots=1 << 18)
        for lo in range(0, n, 20_000):
            sl = slice(lo, lo + 20_000)
            j.add_predictions(
                names[sl], np.arange(lo, lo + 20_000, dtype=float), np.ones(20_000), np.full(20_000, 0.5)
            )
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert j.stats().outstanding == n
    assert used / n < 300
    assert j.stats().state_bytes <= used
