"""Issue 13's event-time hazards on the real broker: a 12k-event stream near the wall clock with 5% of its
events out of order within the lateness bound, 1% later than it, 2% repeated event ids, 0.5% an hour ahead of
the clock and 0.5% a month back, produced across three partitions. Every window the service publishes
(``topics.window_stats``, read by kcat) equals a batch oracle in plain Python over the deduplicated, in-bound
events (span, size, per-bin counts); each late and skewed event is on the dead-letter topic once with its
reason; the repeats are suppressed and counted on ``/metrics``; the final state and alerts equal a
one-process replay."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests import event_time_hazards as hz
from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 12_000
N_PARTITIONS = 3


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_event_time_hazards_leave_the_windows_the_oracle_computes(
    tmp_path: Path, kafka_bootstrap: str, runtime: str
) -> None:
    # 15 minutes back: the whole stream is in the past of the wall clock, its skewed events an hour ahead
    events = hz.hazard_events(N_EVENTS, start=float(int(time.time())) - 900.0)
    hazards = hz.event_time_hazards(events)
    d = ss.Deployment(
        tmp_path,
        kafka_bootstrap,
        extra_topics=("window_stats",),
        window={"max_future_seconds": hz.MAX_FUTURE_S},
        runtime=runtime,
    )
    try:
        d.create_topics()
        worker = d.start_worker()
        feeder = ss.Feeder(d, hazards.messages, N_PARTITIONS)
        feeder.start()
        ss.finish_and_compare(d, feeder, hazards.messages, cfg=hz.hazard_config(), clean=hazards.admitted)

        # the dead letters: each skewed or late event once, with its reason, at its own offset
        dead = ss.wait_for(
            lambda: (m := d.read("dlq")) and len(m) >= sum(hazards.reasons.values()) and m,
            60,
            "every hazard dead-lettered",
        )
        reasons = Counter(dict(m.headers())["reason"].decode() for m in dead)
        assert reasons == hazards.reasons
        refused = Counter(m.value() for m in dead)
        assert max(refused.values()) == 1  # none dead-lettered twice

        # the windows: the published ones equal the oracle's (those big enough to test), but the last, which
        # the sentinels leave open (the oracle closes it at the end of its input)
        windows = hz.oracle_windows(hazards.admitted, hz.hazard_layout())[:-1]
        oracle = [w for w in windows if w.events >= ss.WINDOW["min_events"]]
        assert len(oracle) >= 10
        published: dict[tuple[float, float, int], dict[str, Any]] = {}

        def every_window() -> dict[tuple[float, float, int], dict[str, Any]] | None:
            for _, value in ss.kcat_messages(d.bootstrap, d.topics["window_stats"]):
                r = orjson.loads(value)
                if r["detector"] == "psi" and r["signal"].startswith("num_"):
                    w = r["window"]
                    published.setdefault((w["start_ts"], w["end_ts"], w["events"]), {})[r["signal"]] = r[
                        "details"
                    ]["window_counts"]
            return published if len(published) >= len(oracle) else None

        ss.wait_for(every_window, 60, "every window's statistics on the topic")
        assert sorted(published) == [(w.start_ts, w.end_ts, w.events) for w in oracle]
        for w in oracle:
            assert published[(w.start_ts, w.end_ts, w.events)] == w.counts, w

        # the counters on /metrics
        metric = worker.metric
        assert (
            metric("stream_monitor_events_total", stream="features", outcome="duplicate")
            == hazards.duplicates
        )
        for reason, n in hazards.reasons.items():
            assert metric("stream_monitor_dead_letters_total", reason=reason) == n
        code, _ = worker.terminate()
        assert code == 0
    finally:
        d.close()
