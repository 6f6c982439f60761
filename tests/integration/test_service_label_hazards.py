"""Issue 13's event-time hazards for labels on the real broker: the concept-drift model's 12k-event stream
near the wall clock (features, predictions, labels about 2 s late) across three partitions, its labels with
2% repeated event ids (a third of them corrections, the other class), 0.5% stamped an hour ahead, 0.5% a
month back and 1% older than the join's TTL. Each skewed or too-old label is on the dead-letter topic once
with its reason; the repeats are suppressed (the first label wins) and counted on ``/metrics``; and the join
the service ends with (its stage-2 snapshot: the labelled count and confusion per label-health bucket, the
error stream's labelled and error counts) equals a plain-Python oracle's over the admitted labels."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.core.clock import ManualClock
from stream_monitor.devtools.synthetic import generate
from stream_monitor.pipeline.assembly import build_models
from tests import event_time_hazards as hz
from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 12_000  # 60 s of event time: every label-health bucket is still held at the end
N_PARTITIONS = 3
CHUNK = 1500  # messages of all three streams produced at a time, in arrival order


def produce_in_arrival_order(d: ss.Deployment, arrived: list[tuple[str, dict[str, Any]]]) -> None:
    for lo in range(0, len(arrived), CHUNK):
        block = arrived[lo : lo + CHUNK]
        for stream in ss.CONCEPT_STREAMS:
            events = [e for k, e in block if k == stream]
            d.produce(
                stream,
                [orjson.dumps(e) for e in events],
                partitions=[ss.partition_of(e, N_PARTITIONS) for e in events],
            )


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_label_hazards_are_dead_lettered_and_counted_and_the_join_equals_the_oracle(
    tmp_path: Path, kafka_bootstrap: str, runtime: str
) -> None:
    start = float(int(time.time())) - 900.0  # the stream in the wall clock's past, its skewed labels ahead
    s = generate(ss.concept_spec(2, start), N_EVENTS)
    streams = {"features": s.features, "predictions": s.predictions, "labels": s.labels}
    cfg = hz.label_hazard_config().models[ss.MODEL]
    lh = hz.label_hazards(streams["labels"], cfg.labels.ttl_seconds)
    oracle = hz.oracle_join(
        streams["predictions"], lh.admitted, cfg.performance.bucket_seconds, cfg.labels.freshness_sla_seconds
    )
    d = ss.Deployment(
        tmp_path,
        kafka_bootstrap,
        concept=True,
        window={"max_future_seconds": hz.MAX_FUTURE_S},
        runtime=runtime,
    )
    try:
        d.create_topics()
        worker = d.start_worker()
        produce_in_arrival_order(d, hz.arrivals(streams, lh))
        sentinels = ss.concept_sentinels(streams, N_PARTITIONS)  # past every real slice, on every partition
        for stream, events in sentinels.items():
            d.produce(stream, [orjson.dumps(e) for e in events], partitions=list(range(N_PARTITIONS)))

        # the dead letters: each skewed or too-old label once, with its reason, from the label topic
        due = sum(lh.reasons.values())
        dead = ss.wait_for(
            lambda: (m := d.read("dlq")) and len(m) >= due and m, 90, "every label hazard dead-lettered"
        )
        headers = [{k: v.decode() for k, v in m.headers() or []} for m in dead]
        assert Counter(h["reason"] for h in headers) == lh.reasons
        assert {h["source_topic"] for h in headers} == {d.topics["labels"]}
        assert max(Counter(m.value() for m in dead).values()) == 1

        # the counters on /metrics, once stage 2 has joined every label
        labels_in = len(lh.messages) + N_PARTITIONS
        metric = worker.metric

        def joined_all() -> bool:
            return metric("stream_monitor_labels_joined_total", model=ss.MODEL) == oracle.joined

        ss.wait_for(joined_all, 120, f"{oracle.joined} labels joined")
        assert metric("stream_monitor_events_total", stream="labels", outcome="rejected") == due
        assert metric("stream_monitor_events_total", stream="labels", outcome="accepted") == labels_in - due
        assert metric("stream_monitor_duplicate_events_total", stream="labels") == lh.duplicates
        assert metric("stream_monitor_labels_stale_total") == oracle.stale
        assert metric("stream_monitor_labels_unmatched_total", reason="prediction_evicted") == 0
        for reason, n in lh.reasons.items():
            assert metric("stream_monitor_dead_letters_total", reason=reason) == n

        if runtime == "native":  # the native runtime snapshots stage 2 on the state topic: compare it whole
            last = max(e["ts"] for evs in sentinels.values() for e in evs)
            boundary = int((last - ss.WINDOW["allowed_lateness_seconds"]) // ss.WINDOW["slice_seconds"])

            def final_state() -> Any:
                for snap in d.latest_snapshots("s2|").values():
                    model = snap["models"].get(ss.MODEL)
                    if model is not None and model["complete"] >= boundary:
                        return snap
                return None

            snap = ss.wait_for(final_state, 120, "stage 2's snapshot to cover every real slice")
            models = build_models(hz.label_hazard_config(), ss.concept_profile().models, ManualClock(0.0))
            merge = models.merge_partition(d.topics["partials"], int(snap["source"].rsplit(":", 1)[1]), [])
            merge.restore(snap)
            perf = merge.mergers[ss.MODEL].performance
            assert perf is not None
            hz.assert_join_equals_oracle(perf, oracle, lh)  # the sentinels' own slice is still open
        code, _ = worker.terminate()
        assert code == 0
    finally:
        d.close()
