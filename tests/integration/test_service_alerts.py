"""``stream-monitor run`` on a real broker: a drifting stream raises the expected alert on the alerts topic
(read by kcat, an independent client) within one window plus a few seconds; a stable stream raises none."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_monitor.core.alerts import SCHEMA, decode_alert
from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 12_000
WINDOW_EVENT_SECONDS = ss.WINDOW["max_events"] / ss.RATE  # 5 s of event time per window
SLACK_S = 15.0  # startup, the idle wait for the empty prediction partitions, a loaded 2-core CI machine


@pytest.fixture(params=ss.runtimes())
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str
) -> Iterator[ss.Deployment]:
    d = ss.Deployment(tmp_path, kafka_bootstrap, runtime=request.param)
    out = d.create_topics()
    assert out.count("created") == len(ss.TOPIC_KEYS)
    assert "exists" in d.create_topics()  # idempotent
    yield d
    d.close()


def test_drifting_stream_raises_the_alert_read_by_kcat(deployment: ss.Deployment) -> None:
    worker = deployment.start_worker()
    started = time.monotonic()
    deployment.produce_events(ss.live_events(N_EVENTS, drifting=True))
    ss.wait_for(
        lambda: any(a.signal == "num_00" and a.status.value == "firing" for a in deployment.alerts()),
        WINDOW_EVENT_SECONDS + SLACK_S,
        "the num_00 covariate drift alert",
    )
    took = time.monotonic() - started
    alerts = deployment.alerts()
    drift = next(a for a in alerts if a.signal == "num_00")
    assert (drift.kind.value, drift.model_id) == ("covariate_drift", ss.MODEL)
    assert drift.window.start_ts >= ss.drift_at(0.3, N_EVENTS).start_ts - WINDOW_EVENT_SECONDS
    print(f"alert after {took:.1f} s")

    rows = ss.kcat_messages(deployment.bootstrap, deployment.topics["alerts"])
    assert {key for key, _ in rows} == {ss.MODEL}  # key = model_id
    by_kcat = [json.loads(value) for _, value in rows]
    assert all(a["schema"] == SCHEMA for a in by_kcat)
    assert [decode_alert(value) for _, value in rows] == alerts
    assert any(a["signal"] == "num_00" and a["severity"] == "critical" for a in by_kcat)

    assert worker.metric("stream_monitor_drift_status", model=ss.MODEL, signal="num_00") == 2

    # an operator's view of the same topic: `alerts tail` prints the alert, as the demo prints it
    from stream_monitor.core.alerts import format_alert

    def tail(*extra: str) -> list[str]:
        command = ["alerts", "tail", "--config", str(deployment.config_path), "--from-beginning"]
        command += ["--idle-seconds", "5", *extra]
        done = subprocess.run(
            [sys.executable, "-m", "stream_monitor.cli", *command],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
        return done.stdout.splitlines()

    assert tail() == [format_alert(a) for a in alerts]
    assert tail("--kind", "covariate_drift", "--json", "--max-alerts", "1") == [
        value for _, value in rows[:1]
    ]
    assert tail("--model", "no-such-model") == []
    code, seconds = worker.terminate()
    assert (code, seconds < 10) == (0, True)


def test_stable_stream_raises_nothing(deployment: ss.Deployment) -> None:
    worker = deployment.start_worker()
    deployment.produce_events(ss.live_events(N_EVENTS, drifting=False, seed=5))
    ss.wait_for(
        lambda: (
            worker.metric("stream_monitor_events_total", outcome="accepted") == N_EVENTS
            and worker.metric("stream_monitor_windows_tested_total")
            >= N_EVENTS // ss.WINDOW["max_events"] - 2
        ),
        60,
        "every event folded and the windows tested",
    )
    worker.scrape("/readyz")  # 200: every agent up, nothing restoring (503 would raise)
    assert deployment.alerts() == []
    assert worker.metric("stream_monitor_dead_letters_total") == 0
    code, _ = worker.terminate()
    assert code == 0
