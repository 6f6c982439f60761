"""The metrics and health endpoints: ``/metrics`` (Prometheus text format, or OpenMetrics when asked),
``/healthz`` (200 while the process runs) and ``/readyz`` (200 when ready, else 503 and a reason), served from
a daemon thread, bound to the address it is given and to nothing else.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from stream_monitor.adapters.prometheus.metrics import create_registry
from stream_monitor.pipeline.counters import ServiceStats


def readiness(stats: ServiceStats, not_ready: Callable[[], str | None] | None = None) -> tuple[bool, str]:
    """``(ready, reason)`` for ``/readyz``: ready when ``not_ready`` (Kafka's account, e.g. ``waiting for Kafka
    at ...``) has no reason and :meth:`ServiceStats.ready`, else why not.

    Examples
    --------
    >>> stats = ServiceStats()
    >>> readiness(stats)
    (False, 'restoring state')
    >>> stats.set_restoring(False); stats.set_agent("fold", True); stats.set_agent("detect", False)
    >>> readiness(stats)
    (False, 'agent down: detect')
    >>> readiness(stats, lambda: "waiting for Kafka at b:9092: Connection refused")
    (False, 'waiting for Kafka at b:9092: Connection refused')
    """
    reason = not_ready() if not_ready is not None else None
    if reason:
        return False, reason
    if stats.ready():
        return True, "ready"
    snap = stats.snapshot()
    if snap.restoring:
        return False, "restoring state"
    down = sorted(name for name, up in snap.agents_up.items() if not up)
    if down:
        return False, f"agent down: {', '.join(down)}"
    if not snap.agents_up:
        return False, "no agent started yet"
    return False, "not ready"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        stats: ServiceStats,
        registry: CollectorRegistry,
        not_ready: Callable[[], str | None] | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.stats = stats
        self.not_ready = not_ready
        self.registry = registry
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "stream-monitor"
    sys_version = ""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            try:
                body = encoder(self.server.registry)
            except Exception as exc:  # a failing collector must not take the endpoint down
                self._reply(500, f"scrape failed: {type(exc).__name__}\n".encode())
                return
            self._reply(200, body, content_type)
        elif path == "/healthz":
            self._reply(200, b"ok\n")
        elif path == "/readyz":
            ready, reason = readiness(self.server.stats, self.server.not_ready)
            self._reply(200 if ready else 503, reason.encode() + b"\n")
        else:
            self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a scrape every few seconds is not worth a log line."""


class MetricsServer:
    """A running metrics endpoint; :meth:`stop` shuts it down and frees the port.

    Attributes
    ----------
    host
        The address it is bound to.
    port
        The port it listens on (the actual one when 0 was asked for).
    registry
        The registry it serves.
    """

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host: str = str(server.server_address[0])
        self.port: int = int(server.server_address[1])
        self.registry = server.registry

    @property
    def url(self) -> str:
        """``http://host:port`` of the server (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and join the thread (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_metrics_server(
    stats: ServiceStats,
    host: str = "127.0.0.1",
    port: int = 9108,
    *,
    registry: CollectorRegistry | None = None,
    not_ready: Callable[[], str | None] | None = None,
) -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread.

    Parameters
    ----------
    stats
        What ``/metrics`` and ``/readyz`` read.
    host
        The address to bind (``service.bind_host``; 127.0.0.1 by default, 0.0.0.0 only when asked for).
    port
        The port (``service.metrics_port``); 0 picks a free one, see :attr:`MetricsServer.port`.
    registry
        The registry to serve; by default :func:`create_registry` of ``stats``.
    not_ready
        Asked by ``/readyz`` first: a reason not to be ready that ``stats`` do not know (Kafka unreachable).

    Returns
    -------
    MetricsServer
        The running server.

    Raises
    ------
    OSError
        If the address cannot be bound (in use, or not an address of this host).
    """
    reg = registry if registry is not None else create_registry(stats)
    try:
        server = _Server((host, port), stats, reg, not_ready)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="stream-monitor-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
