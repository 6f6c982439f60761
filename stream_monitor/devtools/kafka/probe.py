"""The readiness probe: a tiny raw-protocol Kafka client (standard library only) asking the broker whether it
serves metadata, consumer groups and producer ids yet."""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping

from stream_monitor.devtools.kafka.locations import HOST

__all__ = ["broker_ready"]


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
