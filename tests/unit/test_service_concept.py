"""Concept drift through stage 1 and stage 2 without a broker: the rows stage 1 forwards, merged and joined by
stage 2, raise the same concept alerts as the one-process engine over the same events; any batching, any
interleaving of partials and crashes with restores leave stage 2's performance state identical.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import numpy as np
import orjson
import pytest

from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.assembly import ServiceModels, build_models
from stream_monitor.pipeline.forwarded_rows import MAX_ROWS_BYTES, _row_chunks
from stream_monitor.pipeline.joiner_snapshot import _unpack
from stream_monitor.pipeline.merge_partition import MergePartition, alert_key
from stream_monitor.pipeline.partials import (
    Partial,
    RowBatch,
    decode_partial,
    decode_snapshot,
    encode_partial,
    encode_snapshot,
)
from stream_monitor.pipeline.partition_fold import PartitionFolder
from tests import service_support as ss

N_PARTITIONS = 3
N_EVENTS = 16_000  # 80 s of event time at 200/s; the concept switches at 40 s


def partition_of(event: dict[str, Any]) -> int:
    return zlib.crc32(str(event["event_id"]).encode()) % N_PARTITIONS


class Cluster:
    """Kafka in memory for three input topics: logs per partition, one partials log, snapshots and crashes."""

    def __init__(self, streams: dict[str, list[dict[str, Any]]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.models: ServiceModels = build_models(
            ss.concept_config(), ss.concept_profile().models, ManualClock(0.0)
        )
        extra = ss.concept_sentinels(streams, N_PARTITIONS)
        self.keys = [(k, p) for k in ss.CONCEPT_STREAMS for p in range(N_PARTITIONS)]
        self.logs: dict[tuple[str, int], list[bytes | None]] = {key: [] for key in self.keys}
        for k, events in streams.items():
            for e in events:
                self.logs[(k, partition_of(e))].append(orjson.dumps(e))
            for p, e in enumerate(extra[k]):
                self.logs[(k, p)].append(orjson.dumps(e))
        self.folders = {key: self._folder(key) for key in self.keys}
        self.positions = dict.fromkeys(self.keys, 0)
        self.snap1 = {key: self.folders[key].snapshot() for key in self.keys}
        self.partials: list[bytes] = []
        self.alerts: list[Alert] = []
        self.merge = self._merge()
        self.pos2 = 0
        self.snap2: tuple[dict[str, Any], int, int] = (self.merge.snapshot(), 0, 0)

    def _folder(self, key: tuple[str, int]) -> PartitionFolder:
        return self.models.partition_folder(key[0], key[1], Stream(key[0]), 0.0)

    def _merge(self) -> MergePartition:
        sources = [f"{k}:{p}" for k in ("features", "predictions") for p in range(N_PARTITIONS)]
        labels = [f"labels:{p}" for p in range(N_PARTITIONS)]
        return self.models.merge_partition("partials", 0, sources, labels)

    def run(self, crashes: float = 0.0) -> None:
        rng = self.rng
        while True:
            live = [key for key in self.keys if self.positions[key] < len(self.logs[key])]
            if not live and self.pos2 >= len(self.partials):
                return
            if live and rng.random() < 0.7:
                key = rng.choice(live)
                pos = self.positions[key]
                offsets = list(range(pos, min(pos + rng.randint(1, 300), len(self.logs[key]))))
                result = self.folders[key].process(offsets, [self.logs[key][o] for o in offsets], now=0.0)
                self.partials.extend(encode_partial(p) for p in result.partials)
                self.positions[key] = offsets[-1] + 1
                if crashes and rng.random() < 0.05:
                    self.snap1[key] = decode_snapshot(encode_snapshot(self.folders[key].snapshot()))
                if crashes and rng.random() < crashes:
                    state = self.snap1[key]
                    self.folders[key] = self._folder(key)
                    self.folders[key].restore(state, now=0.0)
                    self.positions[key] = max(0, (state["next_offset"] or 0) - rng.randint(0, 50))
            else:
                end = min(self.pos2 + rng.randint(1, 40), len(self.partials))
                offsets = list(range(self.pos2, end))
                if offsets:
                    result = self.merge.process(offsets, [self.partials[o] for o in offsets])
                    self.alerts.extend(result.alerts)
                    self.pos2 = end
                if crashes and rng.random() < 0.1:
                    self.snap2 = (
                        decode_snapshot(encode_snapshot(self.merge.snapshot())),
                        self.pos2,
                        len(self.alerts),
                    )
                if crashes and rng.random() < crashes:
                    state, self.pos2, n_alerts = self.snap2
                    self.merge = self._merge()
                    self.merge.restore(state)
                    self.merge.remember(alert_key(a) for a in self.alerts[n_alerts:])

    def performance_state(self) -> dict[str, Any]:
        """The performance monitor's snapshot, its join tables as sorted contents (a hash table's layout
        depends on when expired entries left it, not what it holds)."""
        merger = self.merge.mergers[ss.MODEL]
        assert merger.performance is not None
        state = merger.performance.snapshot()
        joiner = state.pop("joiner")
        for table in ("predictions", "early_labels", "retired"):
            cols = {k: _unpack(v) for k, v in joiner.pop(table).items()}
            order = np.argsort(cols["key"], kind="stable")
            state[table] = {k: v[order].tolist() for k, v in cols.items()}
        return {**state, "joiner": joiner}


@pytest.fixture(scope="module")
def switching() -> dict[str, list[dict[str, Any]]]:
    return ss.concept_streams(N_EVENTS, switch=True)


def test_stage2_raises_the_engines_concept_alerts(switching: dict[str, list[dict[str, Any]]]) -> None:
    cluster = Cluster(switching, seed=1)
    cluster.run()
    _, engine_alerts = ss.concept_engine_run(switching)
    got = ss.concept_alerts(cluster.alerts)
    assert got == ss.concept_alerts(engine_alerts)
    firing = [a for a in cluster.alerts if a.kind.value == "concept_drift" and a.status.value == "firing"]
    assert firing and firing[0].signal == "performance"
    # raised by a label that arrived after the switch, judging predictions up to after it
    switch_ts = ss.LIVE_START + ss.CONCEPT_SWITCH_AFTER_S
    assert firing[0].event_ts >= firing[0].window.end_ts >= switch_ts
    merger = cluster.merge.mergers[ss.MODEL]
    assert merger.performance is not None
    stats = merger.performance.joiner.stats()
    assert stats.duplicate_predictions == 0 and stats.joined > 0.8 * N_EVENTS


def test_batching_interleaving_and_crashes_leave_the_performance_state_identical(
    switching: dict[str, list[dict[str, Any]]],
) -> None:
    calm = Cluster(switching, seed=2)
    calm.run()
    crashing = Cluster(switching, seed=3)
    crashing.run(crashes=0.03)
    merger = crashing.merge.mergers[ss.MODEL]
    assert merger.replayed_rows > 0, "stage-1 replays happened and their rows were skipped"
    assert crashing.performance_state() == calm.performance_state()
    keys = [alert_key(a) for a in crashing.alerts]
    assert len(keys) == len(set(keys))
    assert ss.concept_alerts(crashing.alerts) == ss.concept_alerts(calm.alerts)


def test_a_stable_stream_raises_no_concept_alert() -> None:
    cluster = Cluster(ss.concept_streams(N_EVENTS, switch=False), seed=4)
    cluster.run()
    assert [a for a in cluster.alerts if a.kind.value in ("concept_drift", "label_lag")] == []


def test_duplicate_predictions_are_folded_once() -> None:
    streams = ss.concept_streams(2_000, switch=False)
    streams["predictions"] = streams["predictions"] + streams["predictions"][:300]  # replayed upstream
    streams["predictions"].sort(key=lambda e: e["ts"])
    cluster = Cluster(streams, seed=5)
    cluster.run()
    merger = cluster.merge.mergers[ss.MODEL]
    assert merger.duplicate_predictions == 300
    pipeline, _ = ss.concept_engine_run(streams)
    assert pipeline.duplicates == 300


def test_rows_round_trip_and_chunk_under_the_message_cap() -> None:
    n = 40_000
    rows = RowBatch(
        [f"event-{i:08d}" for i in range(n)],
        {
            "offset": np.arange(n),
            "slice": np.zeros(n, np.int64),
            "ts": np.linspace(0, 1, n),
            "score": np.full(n, np.nan),
        },
    )
    chunks = _row_chunks(rows)
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == n
    for c in chunks:
        data = encode_partial(
            Partial(ss.MODEL, "predictions:0", "predictions", 1, False, (0, n), None, rows=c)
        )
        assert len(data) < MAX_ROWS_BYTES + 4096 < 1_000_000
        back = decode_partial(data).rows
        assert back is not None and back.event_ids == c.event_ids
        np.testing.assert_array_equal(back.columns["offset"], c.columns["offset"])
        assert np.isnan(back.columns["score"]).all()
