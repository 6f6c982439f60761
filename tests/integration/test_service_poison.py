"""Poison matrix on a real broker: 1,000 valid events among 10 kinds x 30 bad messages. No crash, no agent
restart; 300/300 bad messages in the dead-letter topic, untouched, with the right reason and source headers;
1,000/1,000 valid events processed."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_VALID = 1000
PER_KIND = 30
SIZE_CAP = (
    16_384  # service.max_message_bytes: above a 5,000-deep nesting (10 kB), below the oversized message
)


def bad_messages(proto: dict[str, object]) -> dict[str, list[bytes | None]]:
    """30 messages of each kind, keyed by the dead-letter reason each must get."""
    body = orjson.dumps(proto)
    kinds: dict[str, list[bytes | None]] = {
        "not_json": [b"{this is not json " + str(i).encode() for i in range(PER_KIND)],
        "invalid_utf8": [b'{"event_id": "\xff\xfe' + str(i).encode() + b'"}' for i in range(PER_KIND)],
        "nan": [body.replace(b'"ts":', b'"ts":NaN,"x":', 1) for _ in range(PER_KIND)],
        "neg_infinity": [body.replace(b'"ts":', b'"ts":-Infinity,"x":', 1) for _ in range(PER_KIND)],
        "wrong_type": [orjson.dumps({**proto, "event_id": [i]}) for i in range(PER_KIND)],
        "missing_field": [
            orjson.dumps({k: v for k, v in proto.items() if k != "ts"}) for _ in range(PER_KIND)
        ],
        "too_deep": [b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}" for _ in range(PER_KIND)],
        "too_large": [orjson.dumps({**proto, "pad": "x" * (SIZE_CAP * 2)}) for _ in range(PER_KIND)],
        "array_root": [orjson.dumps([proto, i]) for i in range(PER_KIND)],
        "tombstone": [None] * PER_KIND,
    }
    return kinds


EXPECTED_REASON = {
    "not_json": "not_json",
    "invalid_utf8": "invalid_utf8",
    "nan": "non_finite_number",
    "neg_infinity": "non_finite_number",
    "wrong_type": "wrong_type",
    "missing_field": "missing_field",
    "too_deep": "too_deep",
    "too_large": "too_large",
    "array_root": "not_object",
    "tombstone": "empty_message",
}


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_poison_matrix(tmp_path: Path, kafka_bootstrap: str, runtime: str) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap, max_message_bytes=SIZE_CAP, runtime=runtime)
    try:
        d.create_topics()
        worker = d.start_worker()
        valid = ss.live_events(N_VALID, drifting=False)
        bad = bad_messages(valid[0])
        rows: list[tuple[str, bytes | None]] = [("valid", orjson.dumps(e)) for e in valid]
        rows += [(kind, value) for kind, values in bad.items() for value in values]
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        # Valid events keep their time order (shuffling them would only make some late); bad ones go anywhere.
        valid_slots = sorted(i for i in order if rows[order[i]][0] == "valid")
        shuffled = [rows[i] for i in order]
        valid_iter = iter(r for r in rows if r[0] == "valid")
        for slot in valid_slots:
            shuffled[slot] = next(valid_iter)
        keys = [f"k{i}".encode() for i in range(len(shuffled))]
        partitions = [i % 3 for i in range(len(shuffled))]
        d.produce("features", [v for _, v in shuffled], keys=keys, partitions=partitions)

        ss.wait_for(
            lambda: worker.metric("stream_monitor_dead_letters_total") >= 10 * PER_KIND,
            60,
            "300 dead letters",
        )
        ss.wait_for(
            lambda: worker.metric("stream_monitor_events_total", outcome="accepted") >= N_VALID,
            30,
            "1,000 events accepted",
        )
        assert worker.metric("stream_monitor_events_total", outcome="accepted") == N_VALID
        assert worker.metric("stream_monitor_dead_letters_total") == 10 * PER_KIND
        assert worker.proc.poll() is None, "the worker crashed"
        assert worker.metric("stream_monitor_agent_up") == 2  # stage1 and stage2 never went down
        worker.scrape("/readyz")

        dead = ss.wait_for(lambda: (m := d.read("dlq")) and len(m) >= 10 * PER_KIND and m, 30, "DLQ records")
        assert len(dead) == 10 * PER_KIND
        sent = {(p, k): (kind, v) for (kind, v), k, p in zip(shuffled, keys, partitions, strict=True)}
        reasons: Counter[str] = Counter()
        for msg in dead:
            headers = {k: v.decode() for k, v in msg.headers() or []}
            kind, original = sent[(int(headers["source_partition"]), msg.key())]
            assert headers["reason"] == EXPECTED_REASON[kind], (kind, headers)
            assert msg.value() == original, "the dead letter must carry the original bytes untouched"
            assert headers["source_topic"] == d.topics["features"]
            assert int(headers["source_offset"]) >= 0
            assert int(headers["time"]) > 0
            reasons[kind] += 1
        assert reasons == dict.fromkeys(EXPECTED_REASON, PER_KIND)
        assert "failed" not in worker.log()
        code, seconds = worker.terminate()
        assert code == 0
        assert seconds < 10
    finally:
        d.close()
