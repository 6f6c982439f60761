"""``topics.window_stats``: the service publishes every tested window's statistics, the records a one-process
replay of the same events writes with ``--stats-out`` (read back by kcat, an independent client)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_monitor.core.events import Stream
from stream_monitor.core.window_stats import SCHEMA, encode_window_stat
from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 12_000
N_PARTITIONS = 3


def _kcat(bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    return [(key, orjson.loads(value)) for key, value in ss.kcat_messages(bootstrap, topic)]


def _identity(r: dict[str, Any]) -> tuple[Any, ...]:
    w = r["window"]
    return (r["model_id"], r["kind"], r["signal"], r["detector"], w["start_ts"], w["end_ts"], w["events"])


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_the_service_publishes_the_window_statistics_a_replay_writes(
    tmp_path: Path, kafka_bootstrap: str, runtime: str
) -> None:
    d = ss.Deployment(tmp_path, kafka_bootstrap, extra_topics=("window_stats",), runtime=runtime)
    try:
        assert d.create_topics().count("created") == len(ss.TOPIC_KEYS) + 1
        worker = d.start_worker()
        events = ss.live_events(N_EVENTS, drifting=True)
        sentinels = ss.sentinel_events(events, N_PARTITIONS)
        d.produce_events(events, N_PARTITIONS)
        d.produce("features", [orjson.dumps(e) for e in sentinels], partitions=list(range(N_PARTITIONS)))

        engine = ss.engine()
        engine.record_stats(True)
        for i in range(0, len(events + sentinels), 500):
            engine.process_events(Stream.FEATURES, (events + sentinels)[i : i + 500])
        expected = [orjson.loads(encode_window_stat(r)) for r in engine.take_stats()]
        assert any(r["decision"] == "critical" and r["signal"] == "num_00" for r in expected)
        topic = d.topics["window_stats"]

        def all_published() -> list[tuple[str, dict[str, Any]]] | None:
            got = _kcat(d.bootstrap, topic)
            return got if {_identity(r) for _, r in got} >= {_identity(r) for r in expected} else None

        published = ss.wait_for(all_published, 90, "every window's statistics on the topic")
        assert {key for key, _ in published} == {ss.MODEL}  # key = model id
        assert all(r["schema"] == SCHEMA for _, r in published)
        by_identity = {_identity(r): r for _, r in published}
        assert len(by_identity) == len(expected), "a record the replay does not write"
        for want in expected:
            got = by_identity[_identity(want)]
            assert got["decision"] == want["decision"], want
            # sums merged from three partitions round differently from one pass (sketches agree to 1e-9); a
            # correlation distance, a difference of nearby correlations of those sums, keeps fewer digits
            rel = 1e-3 if want["kind"] == "multivariate_drift" else 1e-9
            assert math.isclose(got["statistic"], want["statistic"], rel_tol=rel, abs_tol=1e-12), want
            assert (got["warning_threshold"], got["critical_threshold"]) == (
                want["warning_threshold"],
                want["critical_threshold"],
            )
        # the alert's window is the window whose statistic crossed the critical threshold
        alert = next(a for a in d.alerts() if a.signal == "num_00" and a.severity.value == "critical")
        w = alert.window
        crossing = by_identity[
            (ss.MODEL, alert.kind.value, "num_00", alert.detector, w.start_ts, w.end_ts, w.events)
        ]
        assert crossing["decision"] == "critical"
        assert crossing["statistic"] >= crossing["critical_threshold"]
        code, _ = worker.terminate()
        assert code == 0
    finally:
        d.close()
