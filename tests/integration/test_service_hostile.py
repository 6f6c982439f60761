"""A 10 MB message through the running service on a real broker: refused as ``too_large`` with bounded memory,
dead-lettered (its value cut to a sample, since no dead-letter topic need take 10 MB), and the events around
it processed; the service stays ready and keeps committing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from stream_monitor.adapters.kafka.clients import DEAD_LETTER_SAMPLE_BYTES
from tests import service_support as ss

pytestmark = pytest.mark.kafka

TEN_MB = 10 * 1024 * 1024
RSS_BOUND = 400 * 1024 * 1024


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_a_10_mb_message_is_dead_lettered_and_the_stream_goes_on(
    tmp_path: Path, kafka_bootstrap: str, runtime: str
) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap, runtime=runtime)
    try:
        d.create_topics()
        # The input topic must take such a message for the service to see it (Kafka's default is 1 MB).
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        entry = ConfigEntry("max.message.bytes", str(16 << 20), incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource("topic", d.topics["features"], incremental_configs=[entry])
        admin.incremental_alter_configs([resource])[resource].result(timeout=30)
        worker = d.start_worker()
        events = ss.live_events(400, drifting=False)
        big = orjson.dumps({**events[200], "event_id": "huge", "pad": "x" * TEN_MB})
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 16 << 20})
        values = [orjson.dumps(e) for e in events[:200]] + [big] + [orjson.dumps(e) for e in events[200:]]
        for value in values:
            producer.produce(d.topics["features"], value, key=b"k", partition=0)
            producer.poll(0)
        assert producer.flush(60) == 0

        ss.wait_for(
            lambda: worker.metric("stream_monitor_events_total", outcome="accepted") >= len(events),
            60,
            "the events around the big message accepted",
        )
        ss.wait_for(
            lambda: worker.metric("stream_monitor_dead_letters_total", reason="too_large") == 1, 30, "DLQ"
        )
        dead = ss.wait_for(lambda: d.read("dlq"), 30, "the dead letter on the topic")
        assert len(dead) == 1
        headers = {k: v.decode() for k, v in dead[0].headers() or []}
        assert headers["reason"] == "too_large"
        assert f"message of {len(big)} bytes exceeds the 1048576 cap" in headers["detail"]
        assert headers["value_bytes"] == str(len(big))
        assert dead[0].value() == big[:DEAD_LETTER_SAMPLE_BYTES]
        assert worker.metric("stream_monitor_alert_delivery_failures_total") == 0
        assert worker.metric("process_resident_memory_bytes") < RSS_BOUND
        assert worker.scrape("/readyz") == "ready\n"
        # it still commits past the dead letter (offset 200 of partition 0)
        ss.wait_for(lambda: d.committed("features").get(0, 0) > 200, 30, "offsets committed past it")
        print(f"worker RSS {worker.metric('process_resident_memory_bytes') / 2**20:.0f} MiB")
        assert "failed" not in worker.log(), worker.log()[-3000:]
        code, _ = worker.terminate()
        assert code == 0
    finally:
        d.close()
