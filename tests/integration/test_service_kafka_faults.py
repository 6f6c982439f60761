"""Kafka unreachable or refusing us, with the real binary: ``run`` waits (``/readyz`` 503 with the reason, a
bounded log, no traceback) and becomes ready once a broker appears; causes no retry fixes stop it within a
bound, with one paragraph naming the setting and the class's exit code; ``topics create`` likewise."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer

from stream_monitor.devtools.kafka import LocalBroker
from tests import service_support as ss

pytestmark = pytest.mark.kafka

FATAL_WITHIN_S = 20.0
LOG_WINDOW_S = 12.0
MAX_LINES_IN_WINDOW = 10  # unthrottled: about 20 librdkafka lines a second per client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _readyz(worker: ss.WorkerProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(worker.metrics_url() + "/readyz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _config(tmp_path: Path, bootstrap: str, client: dict[str, Any] | None = None) -> Path:
    suffix = uuid.uuid4().hex[:10]
    topics = {k: f"{k}-{suffix}" for k in ss.TOPIC_KEYS}
    path = ss.write_config(tmp_path, bootstrap, topics, metrics_port=0, consumer_group=f"g-{suffix}")
    if client:
        raw = yaml.safe_load(path.read_text())
        raw["kafka"]["client"].update(client)
        path.write_text(yaml.safe_dump(raw))
    return path


def _assert_clean(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]
    assert "%3|" not in text and "%4|" not in text, "raw librdkafka lines on stderr"


def test_unreachable_broker_waits_not_ready_with_a_bounded_log_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    worker = ss.WorkerProcess(_config(tmp_path, f"127.0.0.1:{port}"), tmp_path / "worker.log")
    try:
        _status, body = ss.wait_for(
            lambda: (r := _readyz(worker))[0] == 503 and "waiting for Kafka" in r[1] and r,
            30,
            "/readyz 503 waiting for Kafka",
        )
        assert f"waiting for Kafka at 127.0.0.1:{port}" in body and "Connection refused" in body
        before = len(worker.log().splitlines())
        started = time.monotonic()
        ss.wait_for(lambda: time.monotonic() - started >= LOG_WINDOW_S, LOG_WINDOW_S + 5, "the log window")
        window = worker.log().splitlines()[before:]
        print(f"{len(window)} log lines in {LOG_WINDOW_S:.0f} s")
        assert len(window) <= MAX_LINES_IN_WINDOW, window
        assert worker.proc.poll() is None, "it must keep retrying"
        assert _readyz(worker)[0] == 503
        code, seconds = worker.terminate()
        assert code == 0 and seconds < 5, (code, seconds)
        _assert_clean(worker.log())
        assert "stopped cleanly" in worker.log()
    finally:
        worker.stop()


def test_service_becomes_ready_once_the_broker_appears_and_again_after_it_restarts(tmp_path: Path) -> None:
    """A broker with the topics, stopped; the service started; the broker started again on the same port, events
    processed; then the broker restarted under the running service."""
    port = _free_port()
    data = tmp_path / "broker-data"
    config_path = _config(tmp_path, f"127.0.0.1:{port}")
    broker = LocalBroker(die_with_parent=True)
    worker = None
    try:
        broker.start(port=port, data_dir=data)
        subprocess.run(
            [sys.executable, "-m", "stream_monitor.cli", "topics", "create", "--config", str(config_path)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        broker.stop()
        worker = ss.WorkerProcess(config_path, tmp_path / "worker.log")
        ss.wait_for(
            lambda: _readyz(worker)[0] == 503 and "waiting for Kafka" in _readyz(worker)[1], 30, "503"
        )
        broker.start(port=port, data_dir=data)
        appeared = time.monotonic()
        ss.wait_for(lambda: _readyz(worker) == (200, "ready\n"), 60, "/readyz 200 once the broker is back")
        ready_after = time.monotonic() - appeared
        print(f"ready {ready_after:.1f} s after the broker answered")
        assert ready_after < 30, ready_after
        deployment_topics = yaml.safe_load(config_path.read_text())["topics"]
        events = ss.live_events(500, drifting=False)
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}"})
        for e in events:
            producer.produce(deployment_topics["features"], orjson.dumps(e), partition=ss.partition_of(e, 3))
        assert producer.flush(30) == 0
        ss.wait_for(
            lambda: worker.metric("stream_monitor_events_total", outcome="accepted") >= len(events),
            60,
            "500 events accepted",
        )
        # The broker restarts under the running service: not ready meanwhile, ready again after.
        broker.stop()
        _, body = ss.wait_for(lambda: (r := _readyz(worker))[0] == 503 and r, 30, "503 with the broker down")
        assert body.startswith(f"Kafka at 127.0.0.1:{port} unreachable, retrying: "), body
        broker.start(port=port, data_dir=data)
        ss.wait_for(
            lambda: _readyz(worker) == (200, "ready\n"), 60, "/readyz 200 once the broker is back again"
        )
        assert worker.proc.poll() is None
        code, _ = worker.terminate()
        assert code == 0, worker.log()[-3000:]
        _assert_clean(worker.log())
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()


def _run_to_exit(config_path: Path, *args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stream_monitor.cli", *args, "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=FATAL_WITHIN_S + 30,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_sasl_against_a_plaintext_listener_stops_with_exit_4_naming_the_setting(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    secret = "s3cret-pa55word"
    client = {
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "monitor",
        "sasl.password": secret,
    }
    code, out, seconds = _run_to_exit(_config(tmp_path, kafka_bootstrap, client), "run")
    print(f"exit {code} after {seconds:.1f} s")
    assert code == 4, out
    assert seconds < FATAL_WITHIN_S
    paragraph = next(line for line in out.splitlines() if line.startswith("error: "))
    assert "kafka.client.sasl.password" in paragraph and "kafka.client.security.protocol" in paragraph
    assert "offers no SASL mechanism" in paragraph
    assert secret not in out
    _assert_clean(out)


def test_an_unknown_security_protocol_stops_with_exit_3_naming_the_setting(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    code, out, seconds = _run_to_exit(
        _config(tmp_path, kafka_bootstrap, {"security.protocol": "sasl_plain"}), "run"
    )
    assert code == 3, out
    assert seconds < FATAL_WITHIN_S
    assert re.search(r"error: .*Check kafka\.client\.security\.protocol in \S+config\.yaml", out), out
    _assert_clean(out)


def test_tls_against_a_plaintext_listener_stops_with_exit_5(tmp_path: Path, kafka_bootstrap: str) -> None:
    code, out, seconds = _run_to_exit(_config(tmp_path, kafka_bootstrap, {"security.protocol": "ssl"}), "run")
    assert code == 5, out
    assert seconds < FATAL_WITHIN_S
    assert "kafka.client.security.protocol" in out and "kafka.client.ssl.ca.location" in out
    _assert_clean(out)


def test_missing_topics_stop_run_with_exit_6(tmp_path: Path, kafka_bootstrap: str) -> None:
    code, out, seconds = _run_to_exit(_config(tmp_path, kafka_bootstrap), "run")
    assert code == 6, out
    assert seconds < FATAL_WITHIN_S
    assert "(topics.features)" in out and "stream-monitor topics create" in out
    _assert_clean(out)


def test_topics_create_against_nothing_exits_7_in_the_time_given(tmp_path: Path) -> None:
    config_path = _config(tmp_path, f"127.0.0.1:{_free_port()}")
    code, out, seconds = _run_to_exit(config_path, "topics", "create", "--wait", "3")
    assert code == 7, out
    assert 3 <= seconds < 3 + 10
    assert "No Kafka broker answered" in out and "kafka.bootstrap_servers" in out
    _assert_clean(out)


def test_topics_create_with_a_refused_setting_exits_3(tmp_path: Path) -> None:
    config_path = _config(tmp_path, f"127.0.0.1:{_free_port()}", {"security.protocol": "bogus"})
    code, out, _ = _run_to_exit(config_path, "topics", "create")
    assert code == 3 and "kafka.client.security.protocol" in out, out
    _assert_clean(out)
