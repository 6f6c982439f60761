"""SASL/SCRAM and TLS against real listeners of the test's own broker.

SASL: a SASL_PLAINTEXT listener whose SCRAM credentials are written when the broker's storage is formatted.
The service connects through its config and the environment alone (``sasl.password: "${KAFKA_PASSWORD}"``),
does its job, and the password appears nowhere it writes: its log, ``/metrics``, the dead-letter topic, the
alerts. A wrong password stops it with exit 4, the setting named and the password not printed.

TLS: an SSL listener with a certificate for 127.0.0.1 signed by a CA the test makes (openssl). With that CA
in ``ssl.ca.location`` the service verifies the broker (hostname included) and runs; with another CA it stops
with exit 5 naming the TLS settings."""

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

TLS_PASSWORD = "keystore-pass"
USER = "monitor"
SECRET = "s3ntinel-Pa55word-7f3a"  # a value to search for: it must never leave the process
N_EVENTS = 8_000


@pytest.fixture(scope="module")
def scram_broker() -> Iterator[LocalBroker]:
    broker = LocalBroker(die_with_parent=True, scram_users={USER: SECRET}).start()
    yield broker
    broker.stop()


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
    )
    return key, cert


def _server_keystore(directory: Path, ca_key: Path, ca_cert: Path) -> Path:
    """A PKCS12 keystore with a certificate for IP 127.0.0.1 signed by the CA."""
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.pem"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca_cert,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        ext,
    )
    keystore = directory / "broker.p12"
    _openssl(
        "pkcs12",
        "-export",
        "-in",
        cert,
        "-inkey",
        key,
        "-certfile",
        ca_cert,
        "-out",
        keystore,
        "-passout",
        f"pass:{TLS_PASSWORD}",
    )
    return keystore


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, Path, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = _make_ca(directory, "test-ca")
    _, other_ca = _make_ca(directory, "other-ca")
    keystore = _server_keystore(directory, ca_key, ca_cert)
    broker = LocalBroker(
        die_with_parent=True, tls_keystore=keystore, tls_keystore_password=TLS_PASSWORD
    ).start()
    yield broker, ca_cert, other_ca
    broker.stop()


def _tls_config(d: ss.Deployment, broker: LocalBroker, ca: Path) -> None:
    raw = yaml.safe_load(d.config_path.read_text())
    raw["kafka"]["bootstrap_servers"] = broker.tls_bootstrap_servers
    raw["kafka"]["client"].update({"security.protocol": "SSL", "ssl.ca.location": str(ca)})
    d.config_path.write_text(yaml.safe_dump(raw))


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_the_service_runs_over_tls_verifying_the_broker(
    tmp_path: Path, tls_broker: tuple[LocalBroker, Path, Path], runtime: str
) -> None:
    broker, ca, _ = tls_broker
    d = ss.Deployment(tmp_path, broker.bootstrap_servers, runtime=runtime)
    try:
        d.create_topics()
        _tls_config(d, broker, ca)
        worker = d.start_worker()
        ss.wait_for(lambda: "assigned" in worker.log(), 60, "the worker assigned over TLS")
        d.produce_events(ss.live_events(N_EVENTS, drifting=True))
        ss.wait_for(
            lambda: any(a.signal == "num_00" for a in d.alerts()), 90, "the drift alert, produced over TLS"
        )
        code, _ = worker.terminate()
        assert code == 0, worker.log()[-3000:]
    finally:
        d.close()


def test_a_broker_certificate_from_another_ca_stops_run_with_exit_5(
    tmp_path: Path, tls_broker: tuple[LocalBroker, Path, Path]
) -> None:
    broker, _, other_ca = tls_broker
    d = ss.Deployment(tmp_path, broker.bootstrap_servers)
    d.create_topics()
    _tls_config(d, broker, other_ca)
    done = subprocess.run(
        [sys.executable, "-m", "stream_monitor.cli", "run", "--config", str(d.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 5, out[-3000:]
    assert "ssl.ca.location" in out and "Traceback" not in out


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


@pytest.mark.parametrize("runtime", ss.runtimes())
def test_the_service_runs_over_sasl_scram_and_never_shows_the_password(
    tmp_path: Path, scram_broker: LocalBroker, runtime: str
) -> None:
    # the test's own clients (producer, readers) use the plaintext listener; only the service uses SASL
    d = ss.Deployment(tmp_path, scram_broker.bootstrap_servers, runtime=runtime)
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
