"""The broker misbehaving under load, with the real binary on a broker of the test's own (so it can be frozen
and restarted): the worker stays up, none of its deliveries fails, it resumes promptly, and its final state and
alerts equal a one-process recomputation of the same events.

* SIGSTOP of the broker for 20 s while a 20k-event stream is produced, then SIGCONT;
* a restart of the broker (SIGTERM, then the same port and durable data directory) during the stream.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream_monitor.devtools.kafka import LocalBroker
from tests import service_support as ss

pytestmark = pytest.mark.kafka

N_EVENTS = 20_000
N_PARTITIONS = 3
FREEZE_S = 20.0
RESUME_WITHIN_S = 5.0
CAUGHT_UP_WITHIN_S = 30.0
RESTART_WITHIN_S = 10.0
RECOVERED_WITHIN_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepted(worker: ss.WorkerProcess) -> float:
    return worker.metric("stream_monitor_events_total", stream="features", outcome="accepted")


def _caught_up(worker: ss.WorkerProcess, d: ss.Deployment, n: int) -> bool:
    """Every event accepted and the lag 0: the worker's own gauge, and (the Faust runtime exports none) what
    its group committed against the end of the feature topic."""
    if _accepted(worker) < n or worker.metric("stream_monitor_consumer_lag") != 0:
        return False
    return sum(d.committed("features").values()) >= n


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, int, Path]]:
    port, data = _free_port(), tmp_path / "broker-data"
    broker = LocalBroker(die_with_parent=True).start(port=port, data_dir=data)
    yield broker, port, data
    if broker.pid is not None:
        os.kill(broker.pid, signal.SIGCONT)  # a test failing mid-freeze must not leave a stopped JVM
    broker.stop()


def _deploy(tmp_path: Path, port: int, runtime: str) -> tuple[ss.Deployment, ss.WorkerProcess]:
    # librdkafka's default session (45 s), not the failover tests' 6 s: a broker frozen for 20 s must not cost
    # the group its members (with 6 s it does, and resuming waits for a rebalance and a restore: 2-7 s)
    client = {"session.timeout.ms": 45_000, "heartbeat.interval.ms": 3000}
    d = ss.Deployment(
        tmp_path, f"127.0.0.1:{port}", client=client, extra_topics=("window_stats",), runtime=runtime
    )
    d.create_topics()
    worker = d.start_worker()
    ss.wait_for(lambda: "assigned" in worker.log(), 60, "the worker assigned")
    return d, worker


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_a_broker_frozen_for_20_s_under_load_loses_nothing(
    tmp_path: Path, own_broker: tuple[LocalBroker, int, Path], runtime: str
) -> None:
    broker, port, _ = own_broker
    d, worker = _deploy(tmp_path, port, runtime)
    try:
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = ss.Feeder(d, events, N_PARTITIONS)
        feeder.start()
        assert broker.pid is not None
        ss.when_produced(feeder, 0.3, lambda: os.kill(broker.pid, signal.SIGSTOP))  # type: ignore[arg-type]
        time.sleep(FREEZE_S)  # the fault itself: the broker stays frozen this long
        assert worker.proc.poll() is None, "the worker died while the broker was frozen"
        before = _accepted(worker)
        os.kill(broker.pid, signal.SIGCONT)
        thawed = time.monotonic()
        ss.wait_for(lambda: _accepted(worker) > before, 60, "events accepted after SIGCONT")
        resumed_s = time.monotonic() - thawed
        ss.wait_for(lambda: _caught_up(worker, d, N_EVENTS), 120, "every event accepted, lag 0")
        caught_up_s = time.monotonic() - thawed
        print(
            f"frozen {FREEZE_S:.0f} s: resumed {resumed_s:.1f} s, caught up {caught_up_s:.1f} s after SIGCONT"
        )
        assert resumed_s < RESUME_WITHIN_S, resumed_s
        assert caught_up_s < CAUGHT_UP_WITHIN_S, caught_up_s
        ss.finish_and_compare(d, feeder, events, faults=1)
        assert worker.metric("stream_monitor_alert_delivery_failures_total") == 0
        assert worker.proc.poll() is None
        code, _ = worker.terminate()
        assert code == 0, worker.log()[-3000:]
        assert "Traceback" not in worker.log()
    finally:
        d.close()


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_a_broker_restarted_under_load_loses_no_acknowledged_alert(
    tmp_path: Path, own_broker: tuple[LocalBroker, int, Path], runtime: str
) -> None:
    broker, port, data = own_broker
    d, worker = _deploy(tmp_path, port, runtime)
    try:
        events = ss.live_events(N_EVENTS, drifting=True)
        feeder = ss.Feeder(d, events, N_PARTITIONS)
        feeder.start()
        acknowledged_before: list[tuple[object, ...]] = []

        def restart() -> float:
            acknowledged_before.extend(ss.wire(d.alerts()))  # in the topic, so acknowledged by the broker
            down = time.monotonic()
            broker.stop()
            broker.start(port=port, data_dir=data)
            return time.monotonic() - down

        restart_s = ss.when_produced(feeder, 0.5, restart)
        back = time.monotonic()
        before = _accepted(worker)
        ss.wait_for(lambda: _accepted(worker) > before, 60, "events accepted after the restart")
        ss.wait_for(lambda: _caught_up(worker, d, N_EVENTS), 120, "every event accepted, lag 0")
        recovered_s = time.monotonic() - back
        print(f"broker down {restart_s:.1f} s; caught up {recovered_s:.1f} s after it was back")
        assert restart_s < RESTART_WITHIN_S, restart_s
        assert recovered_s < RECOVERED_WITHIN_S, recovered_s
        emitted = ss.finish_and_compare(d, feeder, events, faults=1)
        assert set(acknowledged_before) <= set(ss.wire(emitted)), "an alert in the topic before was lost"
        assert worker.metric("stream_monitor_alert_delivery_failures_total") == 0
        code, _ = worker.terminate()
        assert code == 0, worker.log()[-3000:]
        assert "Traceback" not in worker.log()
    finally:
        d.close()
