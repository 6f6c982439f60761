"""A real single-node Apache Kafka broker (KRaft) for development, tests, CI and the demo.

Docker is not available everywhere this project runs, and a mock broker hides exactly the behaviour
(rebalances, offsets, partitioning) a stream monitor depends on. So the broker is the real one: its jars
come from Maven Central through ``mvn`` (see ``pom.xml`` beside this file), and it runs as a plain JVM
bound to 127.0.0.1 only. This module is pure standard library: no Kafka client is needed to fetch,
start, probe or stop it.

Everything lives under :func:`cache_dir`::

    kafka-<version>/libs/          the jars (fetched once; ``libs.complete`` is written last)
    run/kafka-<port>/              one running broker: server.properties, broker.pid,
                                   server.log (log4j2), kafka.out (JVM stdout/stderr), data/ (temporary)

Examples
--------
Starting a broker takes seconds and a JVM, so this example is not run as a doctest (the integration tests
in ``tests/integration/test_local_broker.py`` exercise it)::

    from stream_monitor.devtools.kafka.broker import LocalBroker
    with LocalBroker() as broker:
        print(broker.bootstrap_servers)  # 127.0.0.1:40123
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "DevKafkaError",
    "LocalBroker",
    "broker_ready",
    "cache_dir",
    "ensure_jars",
    "running_brokers",
    "stop_broker",
]

DEFAULT_KAFKA_VERSION = "4.1.1"
HOST = "127.0.0.1"

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "pom.xml"
_LOG4J2_XML = _HERE / "log4j2.xml"
_MARKER = "libs.complete"
_PID_FILE = "broker.pid"
_SERVER_LOG = "server.log"
_JVM_OUT = "kafka.out"
_STALE_RUN_AGE_S = 24 * 3600


class DevKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why and what to do."""


class _PortTakenError(DevKafkaError):
    """The JVM could not bind a port that was free a moment before; worth a retry on other ports."""


# --------------------------------------------------------------------------------------------- locations


def _checkout_root() -> Path | None:
    """The repository root when this package runs from a git checkout (editable install), else None."""
    root = _HERE.parents[2]
    if (root / ".git").exists() and (root / "pyproject.toml").is_file():
        return root
    return None


def cache_dir() -> Path:
    """Where jars, broker logs and temporary broker data go.

    ``$STREAM_MONITOR_CACHE_DIR`` if set; else ``<repo>/.cache`` in a git checkout (git-ignored, so a fresh
    clone in CI fetches into its own tree); else ``$XDG_CACHE_HOME/stream-monitor`` (``~/.cache/...``).
    """
    env = os.environ.get("STREAM_MONITOR_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = _checkout_root()
    if root is not None:
        return root / ".cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "stream-monitor"


def _run_dir(port: int, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "run" / f"kafka-{port}"


# ------------------------------------------------------------------------------------------------- jars


def _require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise DevKafkaError(f"`{tool}` was not found on PATH; {hint}")
    return found


def _java() -> str:
    """JAVA_HOME's java if set (as Kafka's own scripts do), else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return _require("java", "the broker needs Java 17+ (Debian: apt-get install openjdk-17-jre-headless).")


def _fingerprint(version: str) -> str:
    """Identifies what a libs dir was fetched for, so editing pom.xml or the version refetches."""
    return hashlib.sha256(_POM.read_bytes() + version.encode()).hexdigest()


def ensure_jars(version: str = DEFAULT_KAFKA_VERSION, *, timeout: float = 900.0) -> Path:
    """Return the directory of jars for Kafka ``version``, fetching them with Maven if needed.

    The fetch goes to a temporary directory that is renamed into place, and the ``libs.complete`` marker
    is written last: an interrupted fetch is redone, never used half-done. A file lock makes concurrent
    callers (pytest-xdist workers, a CLI fetch beside a test run) wait for one fetch instead of racing.
    """
    home = cache_dir() / f"kafka-{version}"
    libs, marker = home / "libs", home / _MARKER
    want = _fingerprint(version)

    def complete() -> bool:
        return libs.is_dir() and marker.is_file() and marker.read_text().strip() == want

    if complete():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():  # another process fetched while we waited
            return libs
        mvn = _require("mvn", "fetching the Kafka jars needs Maven 3.6+ (Debian: apt-get install maven).")
        _java()  # fail early and clearly: mvn without java prints a less helpful error
        marker.unlink(missing_ok=True)
        shutil.copyfile(_POM, home / "pom.xml")  # the package may be read-only; Maven wants its own dir
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
        try:
            cmd = [
                mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(home / "pom.xml"),
                "dependency:copy-dependencies", f"-DoutputDirectory={staging}", f"-Dkafka.version={version}",
            ]  # fmt: skip
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as exc:
                raise DevKafkaError(f"fetching Kafka {version} jars took over {timeout:.0f} s") from exc
            if done.returncode != 0:
                output = _tail_text(done.stdout + done.stderr, 40)
                raise DevKafkaError(f"`{' '.join(cmd[:7])} ...` failed (exit {done.returncode}):\n{output}")
            for jar in (f"kafka_2.13-{version}.jar", f"kafka-clients-{version}.jar"):
                if not (staging / jar).is_file():
                    raise DevKafkaError(f"Maven finished but {jar} is missing from {staging}")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        tmp_marker = home / f"{_MARKER}.tmp"
        tmp_marker.write_text(want + "\n")
        tmp_marker.replace(marker)
    return libs


# ------------------------------------------------------------------------------------ readiness probe


def _kafka_request(
    sock: socket.socket, api_key: int, version: int, body: bytes, correlation_id: int
) -> bytes:
    """Send one request with a v1 (non-flexible) header; return the response body after its v0 header."""
    client_id = b"stream-monitor-devkafka"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    response = _recv_exactly(sock, size)
    (got_id,) = struct.unpack_from(">i", response, 0)
    if got_id != correlation_id:
        raise ConnectionError(f"correlation id {got_id} != {correlation_id}")
    return response[4:]


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _version(ranges: Mapping[int, tuple[int, int]], api_key: int, lowest: int, highest: int) -> int:
    """The newest version of ``api_key`` both the broker and this encoder (``lowest..highest``) speak."""
    lo, hi = ranges.get(api_key, (0, -1))
    version = min(hi, highest)
    if version < max(lo, lowest):
        raise ConnectionError(f"API {api_key}: broker speaks {lo}..{hi}, this probe {lowest}..{highest}")
    return version


def _probe(host: str, port: int, timeout: float) -> str:
    """Check with the raw Kafka protocol that the broker is ready for clients; "" if so, else what is not.

    Ready means: it answers Metadata listing a broker (a KRaft broker processes requests only once it
    has caught up with the metadata log and been unfenced), it names a group coordinator, and it hands
    out a producer id. The last two are not only checks: the first FindCoordinator creates
    ``__consumer_offsets`` and the first InitProducerId fetches a block of ids from the controller, and
    a client that finds them not ready yet backs off for seconds (librdkafka: about 3 s for the first
    consumer group, 1 s for the first idempotent producer). ApiVersions v0, which every broker answers,
    picks versions among the non-flexible ones this tiny encoder writes.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        body = _kafka_request(sock, 18, 0, b"", 1)  # ApiVersions
        error, count = struct.unpack_from(">hi", body, 0)
        if error != 0:
            return f"ApiVersions error {error}"
        ranges = {key: (lo, hi) for key, lo, hi in struct.iter_unpack(">hhh", body[6 : 6 + 6 * count])}

        version = _version(ranges, 3, 1, 8)  # Metadata, for no topics: just the brokers
        request = struct.pack(">i", 0)  # topics: none
        if version >= 4:
            request += b"\x00"  # allow_auto_topic_creation
        if version >= 8:
            request += b"\x00\x00"  # include cluster/topic authorized operations
        body = _kafka_request(sock, 3, version, request, 2)
        (brokers,) = struct.unpack_from(">i", body, 4 if version >= 3 else 0)
        if brokers < 1:
            return "Metadata lists no broker"

        version = _version(ranges, 10, 1, 2)  # FindCoordinator for a group (key type 0)
        key = b"stream-monitor-devkafka-probe"
        body = _kafka_request(sock, 10, version, struct.pack(">h", len(key)) + key + b"\x00", 3)
        (error,) = struct.unpack_from(">h", body, 4)
        if error != 0:
            return f"FindCoordinator error {error}"

        version = _version(ranges, 22, 0, 1)  # InitProducerId, idempotent (no transactional id)
        body = _kafka_request(sock, 22, version, struct.pack(">hi", -1, 60_000), 4)
        (error,) = struct.unpack_from(">h", body, 4)
        return f"InitProducerId error {error}" if error != 0 else ""


def broker_ready(bootstrap_servers: str, timeout: float = 2.0) -> bool:
    """True if the first broker in ``bootstrap_servers`` serves metadata, consumer groups and producer ids."""
    return _probe_status(bootstrap_servers, timeout) == ""


def _probe_status(bootstrap_servers: str, timeout: float) -> str:
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    try:
        return _probe(host or HOST, int(port), timeout)
    except (OSError, ValueError, struct.error) as exc:
        return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------------------- processes


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


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return _tail_text(f.read().decode("utf-8", "replace"), lines)
    except OSError:
        return "(missing)"


def _first_errors(path: Path, errors: int = 3) -> str:
    """The first ERROR lines of a Kafka log, each with the exception line under it."""
    found: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = iter(f)
            for line in lines:
                if "] ERROR " in line or "] FATAL " in line:
                    found += [line.rstrip(), next(lines, "").rstrip()]
                    if len(found) >= 2 * errors:
                        break
    except OSError:
        return "(missing)"
    return "\n".join(found) or "(none)"


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


def _cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 of 16 bytes, no padding, no leading '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _server_properties(port: int, controller_port: int, data: Path, extra: Mapping[str, str]) -> str:
    """A single-node KRaft config tuned for a fast, small, loopback-only test broker."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # A static single-voter quorum: the controller port can change between restarts of a kept data dir.
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        # One replica of everything: there is one broker.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Internal topics with 50 partitions each make the first consumer group or transaction slow.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # Tests and the demo create their topics explicitly; a typo must not silently create one.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # A joining consumer is assigned at once instead of after 3 s.
        "group.initial.rebalance.delay.ms": "0",
        # The log cleaner would reserve 128 MiB of a 512 MiB heap.
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    props.update(extra)
    lines = ["# Written by stream_monitor/devtools/kafka/broker.py for a local development/test broker."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def _jvm_options(heap: str, run_dir: Path) -> list[str]:
    return [
        f"-Xmx{heap}",
        "-Xss1m",
        # Serial GC and C1-only JIT start the JVM about a second faster; ample for test/demo traffic.
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:-UsePerfData",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={run_dir}",
        f"-Dlog4j2.configurationFile={_LOG4J2_XML}",
    ]


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


# ------------------------------------------------------------------------------------------ the broker


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
    ) -> None:
        if ready_timeout <= 0:
            raise ValueError(f"ready_timeout must be > 0, got {ready_timeout}")
        self.version = version
        self.heap = heap
        self.ready_timeout = ready_timeout
        self.die_with_parent = die_with_parent
        self.extra_properties = dict(extra_properties or {})
        self.extra_jvm_options = list(extra_jvm_options)
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
        props.write_text(_server_properties(port, controller_port, data, self.extra_properties))
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
