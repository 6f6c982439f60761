"""Concept drift through ``stream-monitor run`` on a real broker: features, predictions and labels (about 2 s
late) on their topics; the labels switch concept 40 s of event time into the stream. A ``concept_drift`` alert
on ``performance`` reaches the alerts topic within 20 s of event time of the switch, with a retraining request
on the retraining topic, and the service's concept alerts are the ones a replay of the same files raises; the
same stream without the switch raises no concept or label alert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 16_000  # 80 s of event time at 200 events/s
BUCKET_S = 10.0
DEADLINE_S = 60.0  # from the last event produced: startup, idle waits, a loaded 2-core CI machine


@pytest.fixture(params=ss.runtimes())
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str
) -> Iterator[ss.Deployment]:
    d = ss.Deployment(tmp_path, kafka_bootstrap, concept=True, runtime=request.param)
    d.create_topics()
    yield d
    d.close()


def produce(d: ss.Deployment, streams: dict[str, list[dict[str, Any]]]) -> None:
    for key in ss.CONCEPT_STREAMS:
        events = streams[key]
        d.produce(key, [orjson.dumps(e) for e in events], partitions=[ss.partition_of(e, 3) for e in events])


def judged_to(worker: ss.WorkerProcess, horizon: float) -> bool:
    """Whether stage 2 has judged performance up to event time ``horizon`` (by its /metrics)."""
    return worker.metric("stream_monitor_performance_watermark_seconds", model=ss.MODEL) >= horizon


def test_concept_switch_raises_concept_drift_and_a_retraining_request(
    deployment: ss.Deployment, tmp_path: Path
) -> None:
    worker = deployment.start_worker()
    streams = ss.concept_streams(N_EVENTS, switch=True)
    produce(deployment, streams)

    def concept() -> list[Any]:
        return [
            a
            for a in deployment.alerts()
            if a.kind.value == "concept_drift" and a.signal == "performance" and a.status.value == "firing"
        ]

    hits = ss.wait_for(concept, DEADLINE_S, "a concept_drift alert on performance")
    switch_ts = ss.LIVE_START + ss.CONCEPT_SWITCH_AFTER_S
    first = min(hits, key=lambda a: a.event_ts)
    # raised by a label that arrived after the switch, on predictions up to after it, at label speed
    assert switch_ts <= first.window.end_ts <= first.event_ts <= switch_ts + 2 * BUCKET_S
    assert first.model_id == ss.MODEL and 0 < first.details["label_coverage"] <= 1
    assert first.detector == "cusum" and first.details["labelled"] > 0

    requests = ss.wait_for(lambda: deployment.read("retraining"), 30, "a retraining request")
    assert {m.key() for m in requests} == {ss.MODEL.encode()}
    bodies = [orjson.loads(m.value()) for m in requests]
    assert bodies[0]["schema"] == "stream-monitor.retraining-request/v1"
    assert bodies[0]["request_id"] in {a.alert_id for a in hits if a.severity.value == "critical"}
    assert len({b["request_id"] for b in bodies}) == len(bodies)

    # A replay of the same stream raises the same concept alerts, up to where the service has judged (replay
    # also flushes what is still open at the end of its input).
    horizon = ss.LIVE_START + N_EVENTS / ss.RATE - 2 * BUCKET_S
    ss.wait_for(lambda: judged_to(worker, horizon), DEADLINE_S, "performance judged near the end")

    def settled(alerts: list[Any]) -> list[tuple[Any, ...]]:
        return ss.concept_alerts([a for a in alerts if a.event_ts < horizon])

    replayed = settled(ss.concept_replay(streams, tmp_path))
    assert replayed and settled(deployment.alerts()) == replayed
    code, seconds = worker.terminate()
    assert (code, seconds < 10) == (0, True)


def test_same_stream_without_the_switch_raises_no_concept_alert(deployment: ss.Deployment) -> None:
    worker = deployment.start_worker()
    streams = ss.concept_streams(N_EVENTS, switch=False)
    produce(deployment, streams)
    total = sum(len(v) for v in streams.values())
    horizon = ss.LIVE_START + N_EVENTS / ss.RATE - 2 * BUCKET_S
    ss.wait_for(
        lambda: worker.metric("stream_monitor_events_total", outcome="accepted") == total,
        DEADLINE_S,
        "every event accepted",
    )
    ss.wait_for(
        lambda: judged_to(worker, horizon), DEADLINE_S, "performance judged to near the end of the stream"
    )
    assert [a for a in deployment.alerts() if a.kind.value in ("concept_drift", "label_lag")] == []
    assert deployment.read("retraining") == []
    code, _ = worker.terminate()
    assert code == 0
