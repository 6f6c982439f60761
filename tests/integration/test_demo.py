"""``stream-monitor demo`` end to end on the real broker: the drift alert is printed, Ctrl-C stops it all."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.kafka


def test_demo_prints_the_drift_alert_and_stops_cleanly(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "PYTHONUNBUFFERED": "1"}
    work = tmp_path / "demo"
    command = ["demo", "--rate", "200", "--drift-after", "5", "--workdir", str(work)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_monitor.cli", *command],
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
            critical = any("CRITICAL" in ln and "num_00" in ln for ln in lines)
            if critical and any(ln.startswith("status: ") for ln in lines):
                break
        assert any("CRITICAL" in ln and "covariate_drift" in ln and "num_00" in ln for ln in lines), "".join(
            lines
        )
        assert any("/metrics" in ln for ln in lines)
        assert any("events' own time" in ln for ln in lines)  # the bracketed times are explained
        # every ~15 s while it runs: events in, windows tested, the signal nearest to its threshold
        status = [ln for ln in lines if ln.startswith("status: ")]
        assert status and " events in, " in status[0] and " windows tested" in status[0], "".join(lines)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0, out
        assert "demo stopped" in out
        # the demo keeps its files, and says where they are
        assert f"the demo's files are in {work}" in out
        alerts = [orjson.loads(x) for x in (work / "alerts.jsonl").read_bytes().splitlines()]
        assert any(a["signal"] == "num_00" and a["severity"] == "critical" for a in alerts)
        assert (work / "config.yaml").exists() and (work / "monitor.log").exists()
        # the HTML report of the alerts, listed with the other files
        page = (work / "report.html").read_text()
        assert "report.html" in out and 'data-signal="num_00"' in page
        # ... and of every tested window, from the monitor's window_stats topic
        stats = [orjson.loads(x) for x in (work / "window_stats.jsonl").read_bytes().splitlines()]
        assert any(r["signal"] == "num_00" and r["decision"] == "critical" for r in stats)
        assert "timelines show the alert events only" not in page
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_killed_demo_leaves_no_monitor_or_producer_behind(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_monitor.cli", "demo", "--rate", "50", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:  # the demo names the metrics URL once both children are started
            if "producing" in line:
                break
        children = _children(proc.pid)
        assert len(children) == 2, children  # the monitor and the producer
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
