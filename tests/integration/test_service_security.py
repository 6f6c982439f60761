"""SASL/SCRAM against a real listener: the test's own broker gets a SASL_PLAINTEXT listener whose SCRAM
credentials are written when its storage is formatted. The service connects through its config and the
environment alone (``sasl.password: "${KAFKA_PASSWORD}"``), does its job, and the password appears nowhere
it writes: its log, ``/metrics``, the dead-letter topic, the alerts. A wrong password stops it with exit 4,
the setting named and the password not printed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stream_monitor.devtools.kafka import LocalBroker
from tests import service_support as ss

pytestmark = pytest.mark.kafka

USER = "monitor"
SECRET = "s3ntinel-Pa55word-7f3a"  # a value to search for: it must never leave the process
N_EVENTS = 8_000


@pytest.fixture(scope="module")
def scram_broker() -> Iterator[LocalBroker]:
    broker = LocalBroker(die_with_parent=True, scram_users={USER: SECRET}).start()
    yield broker
    broker.stop()


def _sasl_config(d: ss.Deployment, broker: LocalBroker) -> None:
    """Point the deployment's config at the SASL listener, the password from the environment."""
    raw = yaml.safe_load(d.config_path.read_text())
    raw["kafka"]["bootstrap_servers"] = broker.sasl_bootstrap_servers
    raw["kafka"]["client"].update(
        {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": USER,
            "sasl.password": "${KAFKA_PASSWORD}",
        }
    )
    d.config_path.write_text(yaml.safe_dump(raw))
    assert SECRET not in d.config_path.read_text()


def test_the_service_runs_over_sasl_scram_and_never_shows_the_password(
    tmp_path: Path, scram_broker: LocalBroker
) -> None:
    # the test's own clients (producer, readers) use the plaintext listener; only the service uses SASL
    d = ss.Deployment(tmp_path, scram_broker.bootstrap_servers)
    try:
        d.create_topics()
        _sasl_config(d, scram_broker)
        worker = d.start_worker(env={"KAFKA_PASSWORD": SECRET})
        ss.wait_for(lambda: "assigned" in worker.log(), 60, "the worker assigned over SASL")
        d.produce_events(ss.live_events(N_EVENTS, drifting=True))
        d.produce("features", [b"not json", b'{"model_id": "' + SECRET.encode()[:4] + b'"}'])
        ss.wait_for(
            lambda: any(a.signal == "num_00" for a in d.alerts()), 90, "the drift alert, produced over SASL"
        )
        ss.wait_for(
            lambda: worker.metric("stream_monitor_dead_letters_total") >= 2, 60, "the two dead letters"
        )
        written = [worker.log(), worker.scrape(), worker.scrape("/readyz")]
        for m in d.read("dlq", timeout=30):
            written.append((m.value() or b"").decode(errors="replace"))
            written += [f"{k}={v.decode(errors='replace')}" for k, v in (m.headers() or [])]
        written += [m.value().decode() for m in d.read("alerts", timeout=30)]
        assert not [text[:200] for text in written if SECRET in text], "the password leaked"
        code, _ = worker.terminate()
        assert code == 0, worker.log()[-3000:]
    finally:
        d.close()


def test_a_wrong_password_stops_run_with_exit_4_without_printing_it(
    tmp_path: Path, scram_broker: LocalBroker
) -> None:
    d = ss.Deployment(tmp_path, scram_broker.bootstrap_servers)
    d.create_topics()
    _sasl_config(d, scram_broker)
    wrong = "wr0ng-" + SECRET
    done = subprocess.run(
        [sys.executable, "-m", "stream_monitor.cli", "run", "--config", str(d.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KAFKA_PASSWORD": wrong},
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 4, out[-3000:]
    assert "sasl.password" in out or "sasl.username" in out, out[-3000:]
    assert wrong not in out and SECRET not in out
    assert "Traceback" not in out
