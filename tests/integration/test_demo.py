"""``stream-monitor demo`` end to end on the real broker: the drift alert is printed, Ctrl-C stops it all."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.kafka


def test_demo_prints_the_drift_alert_and_stops_cleanly(kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_monitor.cli", "demo", "--rate", "200", "--drift-after", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines: list[str] = []
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=1.0):
                assert proc.poll() is None, "".join(lines)
                continue
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "CRITICAL" in line and "num_00" in line:
                break
        assert any("CRITICAL" in ln and "covariate_drift" in ln and "num_00" in ln for ln in lines), "".join(
            lines
        )
        assert any("/metrics" in ln for ln in lines)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0, out
        assert "demo stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
