"""Stage 1 and stage 2 without a broker: partitioned processing equals the one-process engine, crashes and
restores change nothing, replays are deduped.

A small in-memory "cluster" stands in for Kafka: a message log per input partition, one partials log, and
snapshots taken and restored at random points, the way the worker does it.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import RejectReason, Stream
from stream_monitor.pipeline.assembly import ServiceModels, build_models
from stream_monitor.pipeline.merge_partition import MergePartition, alert_key
from stream_monitor.pipeline.partials import (
    Partial,
    decode_partial,
    decode_snapshot,
    encode_partial,
    encode_snapshot,
)
from stream_monitor.pipeline.partition_fold import PartitionFolder
from stream_monitor.stats.sketches import WindowSketch
from tests import service_support as ss

N_PARTITIONS = 3


def partition_of(event: dict[str, Any], n: int = N_PARTITIONS) -> int:
    return zlib.crc32(str(event["event_id"]).encode()) % n


def sentinels(events: list[dict[str, Any]], n: int = N_PARTITIONS) -> list[list[dict[str, Any]]]:
    """One event per partition far enough ahead that every real slice is past every partition's watermark."""
    last = max(e["ts"] for e in events)
    ts = last + ss.WINDOW["allowed_lateness_seconds"] + 2 * ss.WINDOW["slice_seconds"]
    proto = events[-1]
    return [[{**proto, "event_id": f"sentinel-{p}", "ts": ts}] for p in range(n)]


@dataclass
class Cluster:
    """Kafka in memory: input logs, the partials log, snapshots, and the alerts 'topic'."""

    models: ServiceModels
    rng: random.Random
    inputs: list[list[bytes | None]] = field(default_factory=list)
    partials: list[bytes] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    stage2_position: int = 0

    def __post_init__(self) -> None:
        self.folders = [
            self.models.partition_folder("features", p, Stream.FEATURES, 0.0) for p in range(N_PARTITIONS)
        ]
        self.idle_preds = [
            self.models.partition_folder("predictions", p, Stream.PREDICTIONS, 0.0)
            for p in range(N_PARTITIONS)
        ]
        self.sources = [f.source for f in self.folders + self.idle_preds]
        self.merge = self.models.merge_partition("partials", 0, self.sources)
        self.positions = [0] * N_PARTITIONS
        self.snapshots1: list[tuple[dict[str, Any], int]] = [(f.snapshot(), 0) for f in self.folders]
        self.snapshot2: tuple[dict[str, Any], int, int] = (self.merge.snapshot(), 0, 0)
        for pf in self.idle_preds:
            self.publish(pf.idle_partials(now=100.0, idle_seconds=1.0))

    def publish(self, partials: list[Partial]) -> None:
        self.partials.extend(encode_partial(p) for p in partials)

    def step1(self, p: int, max_batch: int) -> bool:
        log = self.inputs[p]
        pos = self.positions[p]
        if pos >= len(log):
            return False
        n = self.rng.randint(1, max_batch)
        offsets = list(range(pos, min(pos + n, len(log))))
        result = self.folders[p].process(offsets, [log[o] for o in offsets], now=0.0)
        self.publish(result.partials)
        self.positions[p] = offsets[-1] + 1
        return True

    def step2(self, max_batch: int) -> None:
        pos = self.stage2_position
        offsets = list(range(pos, min(pos + self.rng.randint(1, max_batch), len(self.partials))))
        if not offsets:
            return
        result = self.merge.process(offsets, [self.partials[o] for o in offsets])
        self.alerts.extend(result.alerts)
        self.stage2_position = offsets[-1] + 1

    # ---- crash and restore, the worker's way --------------------------------------------------------------
    def snapshot1(self, p: int) -> None:
        self.snapshots1[p] = (decode_snapshot(encode_snapshot(self.folders[p].snapshot())), self.positions[p])

    def crash1(self, p: int) -> None:
        state, _ = self.snapshots1[p]
        folder = self.models.partition_folder("features", p, Stream.FEATURES, 0.0)
        folder.restore(state, now=0.0)
        self.folders[p] = folder
        # The consumer seeks to the snapshot's next_offset (or re-reads from further back: skipped anyway).
        self.positions[p] = max(0, (state["next_offset"] or 0) - self.rng.randint(0, 50))

    def snapshot2_(self) -> None:
        self.snapshot2 = (
            decode_snapshot(encode_snapshot(self.merge.snapshot())),
            self.stage2_position,
            len(self.alerts),
        )

    def crash2(self) -> None:
        state, position, n_alerts = self.snapshot2
        merge = self.models.merge_partition("partials", 0, self.sources)
        merge.restore(state)
        merge.remember(alert_key(a) for a in self.alerts[n_alerts:])  # the alerts topic's tail
        self.merge = merge
        self.stage2_position = position


def make_cluster(events: list[dict[str, Any]], seed: int) -> Cluster:
    cluster = Cluster(build_models(ss.config(), ss.profile().models, ManualClock(0.0)), random.Random(seed))
    cluster.inputs = [[] for _ in range(N_PARTITIONS)]
    for e in events:
        cluster.inputs[partition_of(e)].append(orjson.dumps(e))
    for p, extra in enumerate(sentinels(events)):
        cluster.inputs[p].extend(orjson.dumps(e) for e in extra)
    return cluster


def run(cluster: Cluster, crashes: float = 0.0) -> None:
    rng = cluster.rng
    while True:
        live = [p for p in range(N_PARTITIONS) if cluster.positions[p] < len(cluster.inputs[p])]
        if not live and cluster.stage2_position >= len(cluster.partials):
            return
        if live:
            p = rng.choice(live)
            cluster.step1(p, 400)
            if crashes and rng.random() < 0.05:
                cluster.snapshot1(p)
            if crashes and rng.random() < crashes:
                cluster.crash1(p)
        if rng.random() < 0.5 or not live:
            cluster.step2(30)
            if crashes and rng.random() < 0.1:
                cluster.snapshot2_()
            if crashes and rng.random() < crashes:
                cluster.crash2()


def engine_run(events: list[dict[str, Any]]) -> Any:
    return ss.engine_run(events + [e for extra in sentinels(events) for e in extra])


wire = ss.wire


def assert_matches_engine(cluster: Cluster, events: list[dict[str, Any]]) -> None:
    pipeline, engine_alerts = engine_run(events)
    assert wire(cluster.alerts) == wire(engine_alerts)
    ss.assert_merger_matches(cluster.merge.mergers[ss.MODEL], pipeline)


@pytest.fixture(scope="module")
def drifting() -> list[dict[str, Any]]:
    return ss.live_events(12_000, drifting=True)


def test_partitioned_stages_equal_the_engine(drifting: list[dict[str, Any]]) -> None:
    cluster = make_cluster(drifting, seed=1)
    run(cluster)
    assert any(a.signal == "num_00" and a.status.value == "firing" for a in cluster.alerts)
    assert_matches_engine(cluster, drifting)


@pytest.mark.parametrize("seed", [3, 4])
def test_crashes_and_restores_change_nothing(drifting: list[dict[str, Any]], seed: int) -> None:
    cluster = make_cluster(drifting, seed=seed)
    run(cluster, crashes=0.02)
    keys = [alert_key(a) for a in cluster.alerts]
    assert len(keys) == len(set(keys)), "an alert id+status was emitted twice"
    assert (
        cluster.merge.mergers[ss.MODEL].replayed_slices > 0 or seed != 3
    )  # replays happened and were skipped
    assert_matches_engine(cluster, drifting)


def test_stage1_skips_what_its_state_covers() -> None:
    models = build_models(ss.config(), ss.profile().models, ManualClock(0.0))
    folder = models.partition_folder("features", 0, Stream.FEATURES, 0.0)
    raw = [orjson.dumps(e) for e in ss.live_events(100, drifting=False)]
    first = folder.process(list(range(100)), raw, now=0.0)
    again = folder.process(list(range(50, 100)), raw[50:], now=0.0)
    assert sum(first.accepted.values()) == 100
    assert again.skipped == 50
    assert not again.accepted
    assert not again.partials


def test_stage1_rejections_point_at_the_original_messages() -> None:
    models = build_models(ss.config(), ss.profile().models, ManualClock(0.0))
    folder = models.partition_folder("features", 0, Stream.FEATURES, 0.0)
    good = ss.live_events(3, drifting=False)
    raw: list[bytes | None] = [
        orjson.dumps(good[0]),
        b"{not json",
        None,
        orjson.dumps({**good[1], "model_id": "x"}),
        orjson.dumps({**good[2], "ts": "yesterday"}),
        b"[1]",
    ]
    result = folder.process(list(range(10, 16)), raw, now=0.0)
    got = sorted((r.index, r.reason) for r in result.rejections)
    assert got == [
        (1, RejectReason.NOT_JSON),
        (2, RejectReason.EMPTY_MESSAGE),
        (3, RejectReason.UNKNOWN_MODEL),
        (4, RejectReason.BAD_TIMESTAMP),
        (5, RejectReason.NOT_OBJECT),
    ]
    assert result.accepted == {ss.MODEL: 1}


def test_idle_source_reports_only_without_open_slices() -> None:
    models = build_models(ss.config(), ss.profile().models, ManualClock(0.0))
    folder = models.partition_folder("features", 0, Stream.FEATURES, 0.0)
    assert [p.idle for p in folder.idle_partials(now=20.0, idle_seconds=10.0)] == [True]
    assert folder.idle_partials(now=40.0, idle_seconds=10.0) == []  # said once
    raw = [orjson.dumps(e) for e in ss.live_events(10, drifting=False)]
    result = folder.process(list(range(10)), raw, now=50.0)
    assert [p.idle for p in result.partials] == [False]  # active again
    assert folder.idle_partials(now=100.0, idle_seconds=10.0) == []  # open slices: never idle


def test_stage2_waits_for_every_source_and_skips_replays() -> None:
    models = build_models(ss.config(), ss.profile().models, ManualClock(0.0))
    merger = models.merger_factory(["a", "b"])(ss.MODEL)
    assert merger is not None
    sketch = WindowSketch(models.layouts[ss.MODEL].sketch)
    sketch.events[0] = 5
    data = sketch.to_bytes()
    assert merger.accept(Partial(ss.MODEL, "a", "features", 11, False, (0, 1), None, [(10, data)])) == []
    assert merger.completable() < 0  # "b" not heard yet
    merger.accept(Partial(ss.MODEL, "b", "features", 12, False, (0, 1), None, [(10, data), (11, data)]))
    assert merger.complete == 11
    assert merger.assembler.current is not None
    assert merger.assembler.current.primary_events == 10
    merger.accept(Partial(ss.MODEL, "b", "features", 12, False, (0, 1), None, [(11, data)]))  # a replay
    assert merger.replayed_slices == 1
    assert merger.model_id not in {"x"}
    assert models.merger_factory([])("unknown") is None


def test_partial_messages_round_trip_and_reject_garbage() -> None:
    p = Partial(ss.MODEL, "features:1", "features", 7, True, (3, 9), None, [(5, b"{}")])
    assert decode_partial(encode_partial(p)) == p
    merge = MergePartition("partials", 0, lambda m: None)
    result = merge.process([0, 1, 2], [b"junk", None, encode_partial(p)])
    assert result.bad == 3
    assert merge.next_offset == 3


def test_stage_snapshots_reject_a_foreign_key() -> None:
    models = build_models(ss.config(), ss.profile().models, ManualClock(0.0))
    a = models.partition_folder("features", 0, Stream.FEATURES, 0.0)
    b: PartitionFolder = models.partition_folder("features", 1, Stream.FEATURES, 0.0)
    from stream_monitor.core.errors import SnapshotError

    with pytest.raises(SnapshotError):
        b.restore(a.snapshot(), now=0.0)
