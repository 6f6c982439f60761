"""A real single-node Apache Kafka broker (KRaft) for development, tests, CI and the demo.

Docker is not available everywhere this project runs, and a mock broker hides exactly the behaviour
(rebalances, offsets, partitioning) a stream monitor depends on. So the broker is the real one: its jars
come from Maven Central through ``mvn`` (see ``pom.xml`` beside this file), and it runs as a plain JVM
bound to 127.0.0.1 only. The package is pure standard library: no Kafka client is needed to fetch,
start, probe or stop it.

This module holds :class:`LocalBroker`; its parts are beside it: where its files live
(:mod:`~stream_monitor.devtools.kafka.locations`), the jars (:mod:`~stream_monitor.devtools.kafka.jars`), its
configuration (:mod:`~stream_monitor.devtools.kafka.server_config`), the readiness probe
(:mod:`~stream_monitor.devtools.kafka.probe`), its processes and ports
(:mod:`~stream_monitor.devtools.kafka.processes`) and reading its logs
(:mod:`~stream_monitor.devtools.kafka.logs`).

Examples
--------
Starting a broker takes seconds and a JVM, so this example is not run as a doctest (the integration tests
in ``tests/integration/test_local_broker.py`` exercise it)::

    from stream_monitor.devtools.kafka.broker import LocalBroker
    with LocalBroker() as broker:
        print(broker.bootstrap_servers)  # 127.0.0.1:40123
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from stream_monitor.devtools.kafka.errors import DevKafkaError, _PortTakenError
from stream_monitor.devtools.kafka.jars import _java, ensure_jars
from stream_monitor.devtools.kafka.locations import (
    _JVM_OUT,
    _PID_FILE,
    _SERVER_LOG,
    DEFAULT_KAFKA_VERSION,
    HOST,
    _run_dir,
    cache_dir,
)
from stream_monitor.devtools.kafka.logs import _first_errors, _tail, _tail_text
from stream_monitor.devtools.kafka.probe import _probe_status
from stream_monitor.devtools.kafka.processes import (
    _die_with_parent,
    _free_ports,
    _is_our_broker,
    _port_is_free,
    _prune_stale_runs,
    _read_pid,
    _terminate,
)
from stream_monitor.devtools.kafka.server_config import (
    SCRAM_MECHANISM,
    _cluster_id,
    _jvm_options,
    _server_properties,
    extra_listener_properties,
)

__all__ = ["LocalBroker"]


class LocalBroker:
    """A real single-node Kafka broker (KRaft, broker and controller in one JVM) on 127.0.0.1.

    Parameters
    ----------
    version
        Kafka version; its jars are fetched into the cache by :func:`ensure_jars` on first use.
    heap
        JVM ``-Xmx``.
    ready_timeout
        Seconds to wait for the broker to answer a Metadata request before giving up.
    die_with_parent
        Have Linux stop the broker when the process that started it dies, even by SIGKILL. Leave False
        for a broker meant to outlive its starter (the CLI's background start); with True, start it from
        the main thread (the kernel ties it to the starting thread).
    extra_properties
        ``server.properties`` entries added to, or overriding, the test-tuned defaults.
    extra_jvm_options
        JVM flags placed after the defaults, so they win: e.g. ``["-XX:TieredStopAtLevel=4"]`` restores
        the optimising JIT for a throughput benchmark (the default C1-only JIT starts about 1 s faster).

    Examples
    --------
    ::

        broker = LocalBroker().start()
        broker.bootstrap_servers  # '127.0.0.1:40123'
        broker.stop()
    """

    def __init__(
        self,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        heap: str = "512m",
        ready_timeout: float = 90.0,
        die_with_parent: bool = False,
        extra_properties: Mapping[str, str] | None = None,
        extra_jvm_options: Sequence[str] = (),
        scram_users: Mapping[str, str] | None = None,
        tls_keystore: str | Path | None = None,
        tls_keystore_password: str = "",
    ) -> None:
        if ready_timeout <= 0:
            raise ValueError(f"ready_timeout must be > 0, got {ready_timeout}")
        self.version = version
        self.heap = heap
        self.ready_timeout = ready_timeout
        self.die_with_parent = die_with_parent
        self.extra_properties = dict(extra_properties or {})
        self.extra_jvm_options = list(extra_jvm_options)
        # user -> password: a second listener, SASL_PLAINTEXT with SCRAM-SHA-512, whose credentials are
        # written into the storage when it is formatted (tests of the service's SASL settings)
        self.scram_users = dict(scram_users or {})
        self._sasl_port: int | None = None
        # a PKCS12 keystore (server certificate and key): a third listener, SSL (tests of the TLS settings)
        self.tls_keystore = None if tls_keystore is None else Path(tls_keystore).resolve()
        self.tls_keystore_password = tls_keystore_password
        self._tls_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._run_dir: Path | None = None
        self._temp_data: Path | None = None

    # -- state

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, for ``bootstrap.servers``."""
        if self._port is None:
            raise DevKafkaError("the broker is not started")
        return f"{HOST}:{self._port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` of the SASL/SCRAM listener (``scram_users`` given)."""
        if self._sasl_port is None:
            raise DevKafkaError("the broker has no SASL listener (give scram_users) or is not started")
        return f"{HOST}:{self._sasl_port}"

    @property
    def tls_bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` of the SSL listener (``tls_keystore`` given)."""
        if self._tls_port is None:
            raise DevKafkaError("the broker has no SSL listener (give tls_keystore) or is not started")
        return f"{HOST}:{self._tls_port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def run_dir(self) -> Path | None:
        """Holds server.properties, broker.pid, server.log and kafka.out of the current/last start."""
        return self._run_dir

    @property
    def log_file(self) -> Path | None:
        return None if self._run_dir is None else self._run_dir / _SERVER_LOG

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle

    def start(self, port: int = 0, data_dir: str | Path | None = None) -> LocalBroker:
        """Start the broker and return once it serves metadata.

        ``port=0`` picks a free port. ``data_dir=None`` uses a fresh temporary directory in the cache,
        removed by :meth:`stop`; a given ``data_dir`` is formatted on first use and kept, so topics survive
        a restart. Raises :class:`DevKafkaError` with the tail of the broker's log if it does not start.
        """
        if self._proc is not None:
            raise DevKafkaError(f"already started at {self.bootstrap_servers}")
        attempts = 3 if port == 0 else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(port, data_dir)
            except _PortTakenError:
                # A free port can be taken (e.g. as a client's source port) before the JVM binds it.
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, port: int, data_dir: str | Path | None) -> LocalBroker:
        libs = ensure_jars(self.version)
        java = _java()
        cache = cache_dir()
        _prune_stale_runs(cache)
        if port == 0:
            port, controller_port = _free_ports(2)
        else:
            (controller_port,) = _free_ports(1)
        run_dir = _run_dir(port, cache)
        other = _read_pid(run_dir)
        if other is not None and _is_our_broker(other, run_dir):
            raise DevKafkaError(
                f"a broker from {cache} already runs on port {port} (pid {other}); "
                f"stop it with `python scripts/kafka_local.py stop --port {port}`"
            )
        for wanted in (port, controller_port):
            if not _port_is_free(wanted):
                raise _PortTakenError(f"port {wanted} on {HOST} is in use by another process")
        run_dir.mkdir(parents=True, exist_ok=True)
        if data_dir is None:
            data = run_dir / "data"
            shutil.rmtree(data, ignore_errors=True)  # left by a broker that was killed
            self._temp_data = data
        else:
            data = Path(data_dir).expanduser().resolve()
            self._temp_data = None
        data.mkdir(parents=True, exist_ok=True)
        for old in run_dir.glob(f"{_SERVER_LOG}*"):
            old.unlink()
        props = run_dir / "server.properties"
        extra = dict(self.extra_properties)
        if self.scram_users or self.tls_keystore is not None:
            self._sasl_port = _free_ports(1)[0] if self.scram_users else None
            self._tls_port = _free_ports(1)[0] if self.tls_keystore is not None else None
            listeners = extra_listener_properties(
                port,
                controller_port,
                self._sasl_port,
                self._tls_port,
                self.tls_keystore,
                self.tls_keystore_password,
            )
            extra = {**listeners, **extra}
        props.write_text(_server_properties(port, controller_port, data, extra))
        self._port, self._run_dir = port, run_dir
        try:
            jvm = [java, *_jvm_options(self.heap, run_dir), *self.extra_jvm_options, "-cp", str(libs / "*")]
            if not (data / "meta.properties").exists():
                self._format(jvm, props)
            with open(run_dir / _JVM_OUT, "wb") as out:
                self._proc = subprocess.Popen(
                    [*jvm, "kafka.Kafka", str(props)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: Ctrl-C in a terminal does not reach it
                    preexec_fn=_die_with_parent() if self.die_with_parent else None,
                )
            pid_file = run_dir / f"{_PID_FILE}.tmp"
            pid_file.write_text(f"{self._proc.pid}\n")
            pid_file.replace(run_dir / _PID_FILE)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _format(self, jvm: list[str], props: Path) -> None:
        """Format KRaft storage (``kafka-storage.sh format``): a broker refuses to start on a blank dir."""
        cmd = [*jvm, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(props)]
        for user, password in self.scram_users.items():
            cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DevKafkaError("formatting KRaft storage took over 120 s") from exc
        if done.returncode != 0:
            raise DevKafkaError(
                f"formatting KRaft storage failed (exit {done.returncode}):\n"
                f"{_tail_text(done.stdout + done.stderr, 30)}"
            )

    def _wait_ready(self) -> None:
        """Poll, with a deadline, until the broker is ready for clients (see :func:`_probe`)."""
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            status = _probe_status(self.bootstrap_servers, timeout=2.0)
            if not status:
                return
            try:
                code = self._proc.wait(timeout=0.2)  # doubles as the poll interval
            except subprocess.TimeoutExpired:
                pass
            else:
                logs = self._logs()
                error = _PortTakenError if "Address already in use" in logs else DevKafkaError
                raise error(f"the Kafka broker exited with code {code} while starting\n{logs}")
            if time.monotonic() > deadline:
                raise DevKafkaError(
                    f"the Kafka broker on {self.bootstrap_servers} was not ready within "
                    f"{self.ready_timeout:.0f} s (last probe: {status})\n{self._logs()}"
                )

    def _logs(self) -> str:
        """What explains a failed start: the first errors (a broker's own shutdown buries the cause at
        the end of its log), then the tails of the broker log and of the JVM's output."""
        assert self._run_dir is not None
        server_log, jvm_out = self._run_dir / _SERVER_LOG, self._run_dir / _JVM_OUT
        return (
            f"--- first errors in {server_log} ---\n{_first_errors(server_log)}\n"
            f"--- {server_log} (tail) ---\n{_tail(server_log, 15)}\n"
            f"--- {jvm_out} (tail) ---\n{_tail(jvm_out)}"
        )

    def wait(self, timeout: float | None = None) -> int:
        """Block until the broker process exits (for a foreground run); return its exit code."""
        if self._proc is None:
            raise DevKafkaError("the broker is not started")
        return self._proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ``timeout`` s) and remove its temporary data.

        Idempotent, so it can be both a fixture finalizer and an atexit handler.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:

                def wait(t: float) -> bool:
                    try:
                        proc.wait(t)
                    except subprocess.TimeoutExpired:
                        return False
                    return True

                _terminate(proc.pid, wait, timeout)
            if self._run_dir is not None:
                (self._run_dir / _PID_FILE).unlink(missing_ok=True)
        if self._temp_data is not None:
            shutil.rmtree(self._temp_data, ignore_errors=True)
            self._temp_data = None
        self._port = None

    def __enter__(self) -> LocalBroker:
        return self if self._proc is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self._port is not None else "stopped"
        return f"LocalBroker(version={self.version!r}, {where}, pid={self.pid})"
