"""Exactness under failures on a real broker, with worker subprocesses in one consumer group.

* kill -9 of a worker, twice, while 20k events stream over 3 partitions to 2 workers;
* a second worker joining and then leaving mid-stream.

Afterwards the model's stage-2 state (read back from the state topic) equals a one-process recomputation of
the same events by the replay engine: the same windows tested, the same open window to the last count, the
same alert episodes; and the alerts topic holds each alert id + status once, exactly the engine's alerts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 20_000
N_PARTITIONS = 3
CHUNK = 500
CHUNK_EVERY_S = 0.3  # about 1,700 events/s: the stream lasts ~12 s, long enough to kill workers mid-way


def test_kill9_twice_with_two_workers_keeps_state_exact(tmp_path: Path, kafka_bootstrap: str) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap)
    try:
        d.create_topics()
        first, second = d.start_worker(), d.start_worker()
        ss.wait_for(
            lambda: "assigned" in first.log() and "assigned" in second.log(), 60, "both workers assigned"
        )
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = ss.Feeder(d, events, N_PARTITIONS, CHUNK, CHUNK_EVERY_S)
        feeder.start()
        ss.when_produced(feeder, 0.3, first.kill9)
        d.start_worker()
        ss.when_produced(feeder, 0.65, second.kill9)
        d.start_worker()
        ss.finish_and_compare(d, feeder, events)
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
        feeder = ss.Feeder(d, events, N_PARTITIONS, CHUNK, CHUNK_EVERY_S)
        feeder.start()
        joined: list[ss.WorkerProcess] = []
        ss.when_produced(feeder, 0.25, lambda: joined.append(d.start_worker()))
        ss.wait_for(lambda: "assigned" in joined[0].log(), 60, "the second worker assigned")

        def leave() -> None:
            code, seconds = joined[0].terminate()
            assert code == 0
            assert seconds < 10

        ss.when_produced(feeder, 0.7, leave)
        ss.finish_and_compare(d, feeder, events)
        assert "handed off" in first.log() or "restored" in first.log()
        code, _ = first.terminate()
        assert code == 0
    finally:
        d.close()
