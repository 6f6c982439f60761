"""The broker's processes and ports: finding a running broker by its PID file, stopping it, free loopback ports,
and having Linux stop a broker whose starter dies.

A PID file can outlive its process and a PID can be reused, so every signal goes only to a process whose
command line names the run dir's ``server.properties``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stream_monitor.devtools.kafka.errors import DevKafkaError
from stream_monitor.devtools.kafka.locations import _PID_FILE, _STALE_RUN_AGE_S, HOST, _run_dir, cache_dir

__all__ = ["running_brokers", "stop_broker"]


def _read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / _PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (a zombie still answers ``kill(pid, 0)``)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _is_our_broker(pid: int, run_dir: Path) -> bool:
    """True if ``pid`` is alive and is the broker of ``run_dir``: a PID file can outlive its process,
    and the PID can be reused by something we must not signal."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return _alive(pid) and str(run_dir / "server.properties").encode() in cmdline


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the broker's process group (it leads its own session), or just the process if that fails."""
    with contextlib.suppress(ProcessLookupError):
        try:
            os.killpg(pid, sig)
        except PermissionError:
            os.kill(pid, sig)


def _terminate(pid: int, wait: Callable[[float], bool], timeout: float) -> None:
    """SIGTERM (Kafka shuts down cleanly in about a second), then SIGKILL if it is still there."""
    _signal_group(pid, signal.SIGTERM)
    if not wait(timeout):
        _signal_group(pid, signal.SIGKILL)
        if not wait(10.0):
            raise DevKafkaError(f"broker pid {pid} survived SIGKILL")


def _wait_gone(pid: int) -> Callable[[float], bool]:
    """A waiter for a process that is not our child (started by another CLI call): poll /proc."""

    def wait(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)  # no wait primitive exists for a non-child process
        return True

    return wait


def _port_is_free(port: int) -> bool:
    """Whether the JVM can listen on ``port``; SO_REUSEADDR as Kafka sets it, so TIME_WAIT is no obstacle."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1, held open together so the kernel cannot hand one out twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]


def _die_with_parent() -> Callable[[], None]:
    """A preexec_fn asking Linux to SIGTERM the broker when the process that started it dies.

    This is what keeps a crashed or SIGKILLed test session from leaving a broker behind, where atexit
    handlers never run. Linux only; elsewhere a no-op.
    """
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _prune_stale_runs(cache: Path) -> None:
    """Drop run dirs of brokers that are gone and were last touched over a day ago (random test ports)."""
    now = time.time()
    for run_dir in (cache / "run").glob("kafka-*"):
        pid = _read_pid(run_dir)
        if pid is not None and _is_our_broker(pid, run_dir):
            continue
        with contextlib.suppress(OSError):
            if now - run_dir.stat().st_mtime > _STALE_RUN_AGE_S:
                shutil.rmtree(run_dir, ignore_errors=True)


def running_brokers(cache: Path | None = None) -> dict[int, int]:
    """Brokers started from this cache dir that are still running, as ``{port: pid}``."""
    found: dict[int, int] = {}
    for run_dir in sorted((cache or cache_dir()).glob("run/kafka-*")):
        pid = _read_pid(run_dir)
        port = run_dir.name.removeprefix("kafka-")
        if pid is not None and port.isdigit() and _is_our_broker(pid, run_dir):
            found[int(port)] = pid
    return found


def stop_broker(port: int, *, timeout: float = 30.0, cache: Path | None = None) -> bool:
    """Stop the broker on ``port`` started from this cache dir (by any process), by its PID file.

    Returns False if none was running. Its temporary data (``run/kafka-<port>/data``) is removed; a
    ``data_dir`` given to :meth:`LocalBroker.start` is kept.
    """
    run_dir = _run_dir(port, cache)
    pid = _read_pid(run_dir)
    stopped = False
    if pid is not None and _is_our_broker(pid, run_dir):
        _terminate(pid, _wait_gone(pid), timeout)
        stopped = True
    (run_dir / _PID_FILE).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "data", ignore_errors=True)
    return stopped
