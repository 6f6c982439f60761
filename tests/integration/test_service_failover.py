"""Exactness under failures on a real broker, with worker subprocesses in one consumer group.

* kill -9 of a worker, twice, while 20k events stream over 3 partitions to 2 workers;
* a second worker joining and then leaving mid-stream.

Afterwards the model's stage-2 state (read back from the state topic) equals a one-process recomputation of
the same events by the replay engine: the same windows tested, the same open window to the last count, the
same alert episodes; and the alerts topic holds each alert id + status once, exactly the engine's alerts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stream_monitor.core.clock import ManualClock
from stream_monitor.pipeline.assembly import build_models
from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 20_000
N_PARTITIONS = 3
CHUNK = 500
CHUNK_EVERY_S = 0.3  # about 1,700 events/s: the stream lasts ~12 s, long enough to kill workers mid-way


class Feeder(threading.Thread):
    """Produces the stream in chunks at a steady pace; ``at(fraction, action)`` runs actions mid-stream."""

    def __init__(self, deployment: ss.Deployment, events: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.deployment = deployment
        self.events = events
        self.produced = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(0, len(self.events), CHUNK):
                self.deployment.produce_events(self.events[i : i + CHUNK], N_PARTITIONS)
                self.produced = i + CHUNK
                time.sleep(CHUNK_EVERY_S)  # pacing the producer, not waiting for a result
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def when_produced(feeder: Feeder, fraction: float, action: Callable[[], None]) -> None:
    ss.wait_for(
        lambda: feeder.produced >= fraction * N_EVENTS or not feeder.is_alive(),
        60,
        f"{fraction:.0%} produced",
    )
    action()


def finish_and_compare(d: ss.Deployment, feeder: Feeder, events: list[dict[str, Any]]) -> None:
    feeder.join(120)
    assert feeder.error is None
    sentinels = ss.sentinel_events(events, N_PARTITIONS)
    d.produce("features", [ss.orjson.dumps(e) for e in sentinels], partitions=list(range(N_PARTITIONS)))
    boundary = ss.expected_boundary(events)

    def final_state() -> Any:
        for snap in d.latest_snapshots("s2|").values():
            model = snap["models"].get(ss.MODEL)
            if model is not None and model["complete"] >= boundary:
                return snap
        return None

    snap = ss.wait_for(final_state, 120, "stage 2's snapshot to cover every real slice")
    models = build_models(ss.config(), ss.profile().models, ManualClock(0.0))
    merge = models.merge_partition(d.topics["partials"], int(snap["source"].rsplit(":", 1)[1]), [])
    merge.restore(snap)
    pipeline, engine_alerts = ss.engine_run(events + sentinels)
    ss.assert_merger_matches(merge.mergers[ss.MODEL], pipeline)

    emitted = d.alerts()
    counts = Counter((a.alert_id, a.status.value, a.severity.value) for a in emitted)
    assert [k for k, n in counts.items() if n > 1] == [], "an alert id + status was emitted twice"
    assert sorted(ss.wire(emitted)) == sorted(ss.wire(engine_alerts))
    assert any(a.signal == "num_00" for a in emitted)


def test_kill9_twice_with_two_workers_keeps_state_exact(tmp_path: Path, kafka_bootstrap: str) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap)
    try:
        d.create_topics()
        first, second = d.start_worker(), d.start_worker()
        ss.wait_for(
            lambda: "assigned" in first.log() and "assigned" in second.log(), 60, "both workers assigned"
        )
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = Feeder(d, events)
        feeder.start()
        when_produced(feeder, 0.3, first.kill9)
        d.start_worker()
        when_produced(feeder, 0.65, second.kill9)
        d.start_worker()
        finish_and_compare(d, feeder, events)
        replacements = d.workers[2:]
        assert any("restored" in w.log() for w in replacements), "the replacements resumed from snapshots"
        for w in replacements:
            code, seconds = w.terminate()
            assert code == 0
            assert seconds < 10
    finally:
        d.close()


def test_worker_joining_and_leaving_mid_stream_keeps_state_exact(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap)
    try:
        d.create_topics()
        first = d.start_worker()
        ss.wait_for(lambda: "assigned" in first.log(), 60, "the first worker assigned")
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = Feeder(d, events)
        feeder.start()
        joined: list[ss.WorkerProcess] = []
        when_produced(feeder, 0.25, lambda: joined.append(d.start_worker()))
        ss.wait_for(lambda: "assigned" in joined[0].log(), 60, "the second worker assigned")

        def leave() -> None:
            code, seconds = joined[0].terminate()
            assert code == 0
            assert seconds < 10

        when_produced(feeder, 0.7, leave)
        finish_and_compare(d, feeder, events)
        assert "handed off" in first.log() or "restored" in first.log()
        code, _ = first.terminate()
        assert code == 0
    finally:
        d.close()
