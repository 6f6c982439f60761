"""confluent-kafka producers of the service: alerts, dead letters, internal partials and state snapshots.

Everything the service writes goes through one :class:`TrackedProducer`, which follows the client's protocol
exactly: a delivery callback on every message and ``poll(0)`` after each ``produce``; on ``BufferError`` it
polls and retries; ``flush`` only at shutdown or at a partition handoff. It numbers messages in produce order,
so the service can ask :meth:`TrackedProducer.delivered_through` whether everything produced before a state
snapshot is durable before it writes that snapshot (the *snapshot barrier*: a snapshot never covers output
that could still be lost).

A delivery that fails is counted and produced again (never silently dropped); only a fatal producer error
stops the service, as the client's documentation requires. The producer is idempotent
(``enable.idempotence=true``, which implies ``acks=all``) and partitions keys with ``murmur2_random``, the
Java client's hash, so a key lands on the same partition whichever client produced it.

The caller's settings are never mutated; secrets in them are never logged: :class:`Redactor` scrubs every
configured secret value from text that leaves the process (log lines, dead-letter headers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream_monitor.core.alerts import Alert, encode_alert
from stream_monitor.pipeline.counters import ServiceStats

log = logging.getLogger(__name__)

# Settings the service needs whatever the user configured: an alert must never be written twice by a producer
# retry, nor land on another partition than a Java client would choose for the same key.
PRODUCER_REQUIRED: Final[Mapping[str, Any]] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
}
# Defaults the user may override through ``kafka.client``.
PRODUCER_DEFAULTS: Final[Mapping[str, Any]] = {
    "linger.ms": 5,
    # No compression by default: every client reads uncompressed records, while aiokafka (Faust) cannot read
    # lz4/zstd/snappy without extra packages. Set compression.type in kafka.client if your readers support it.
    "compression.type": "none",
    # State snapshots of wide models are large; they are zlib-compressed by the service, but still may pass 1
    # MB.
    "message.max.bytes": 16 * 1024 * 1024,
}
# Consumer-only librdkafka properties: users put them in ``kafka.client`` for the service's consumer; a
# producer
# or admin client would only warn about each of them, so they are left out of those clients' settings.
CONSUMER_ONLY: Final = frozenset(
    {
        "group.id",
        "group.instance.id",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "partition.assignment.strategy",
        "auto.offset.reset",
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "max.partition.fetch.bytes",
        "isolation.level",
        "enable.partition.eof",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "check.crcs",
        "group.protocol",
        "group.remote.assignor",
    }
)
MAX_DETAIL_CHARS: Final = 500
# A dead letter's value is kept whole up to this size: under Kafka's default message.max.bytes (1,048,588), so
# any dead-letter topic takes it. A larger one (a 10 MB message on an input topic that allows it) is cut to its
# first DEAD_LETTER_SAMPLE_BYTES, with its length in a ``value_bytes`` header: sent whole, the broker would
# refuse it at every retry and the snapshot barrier behind it would never pass.
MAX_DEAD_LETTER_VALUE_BYTES: Final = 1_000_000
DEAD_LETTER_SAMPLE_BYTES: Final = 64 * 1024
BUFFER_FULL_POLL_S: Final = 0.05
MAX_DELIVERY_ATTEMPTS: Final = 1_000_000  # effectively forever: an alert is retried until the broker takes it

DeliveryHook = Callable[[int, int], None]  # (partition, offset) once the broker has the message


class ProducerFatalError(RuntimeError):
    """The producer hit a fatal error (e.g. idempotence broken): the process must stop and restart."""


class Redactor:
    """Replaces every configured secret value in a text with ``***``.

    >>> Redactor(["hunter2"]).scrub("login failed for password hunter2")
    'login failed for password ***'
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is scrubbed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def producer_settings(
    client_settings: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A new settings dict: our defaults, then the user's client settings, then what the service requires."""
    settings: dict[str, Any] = dict(PRODUCER_DEFAULTS)
    settings.update(without_consumer_settings(client_settings))
    settings.update(overrides or {})
    settings.update(PRODUCER_REQUIRED)
    return settings


def without_consumer_settings(client_settings: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict of the settings a producer or admin client understands (security settings all pass)."""
    return {k: v for k, v in client_settings.items() if k not in CONSUMER_ONLY}


@dataclass
class _Outgoing:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]] | None
    partition: int | None
    on_delivered: DeliveryHook | None
    on_failure: Callable[[], None] | None
    attempts: int = 0


class TrackedProducer:
    """One idempotent confluent-kafka producer that numbers, tracks and retries every message.

    Parameters
    ----------
    settings
        librdkafka settings (copied, never mutated), usually from :func:`producer_settings`.
    redactor
        Scrubs secrets from the error text this class logs.
    producer
        An already-built producer (tests pass a fake); built from ``settings`` when omitted.
    """

    def __init__(
        self,
        settings: Mapping[str, Any],
        redactor: Redactor | None = None,
        producer: Any | None = None,
    ) -> None:
        self._producer = producer if producer is not None else Producer(dict(settings))
        self._redactor = redactor or Redactor(())
        self._seq = 0
        self._pending: dict[
            int, _Outgoing
        ] = {}  # insertion order = produce order, so the first key is the oldest
        self._fatal: str | None = None
        self.delivery_failures = 0
        self.delivered = 0

    # ---- producing ----------------------------------------------------------------------------------------
    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        on_delivered: DeliveryHook | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> int:
        """Queue one message and return its sequence number (produce order, starting at 1)."""
        self.raise_if_fatal()
        self._seq += 1
        out = _Outgoing(
            topic,
            value,
            key.encode() if isinstance(key, str) else key,
            headers,
            partition,
            on_delivered,
            on_failure,
        )
        self._pending[self._seq] = out
        self._send(self._seq, out)
        return self._seq

    def _send(self, seq: int, out: _Outgoing) -> None:
        out.attempts += 1
        kwargs: dict[str, Any] = {"key": out.key, "on_delivery": self._callback(seq)}
        if out.headers:
            kwargs["headers"] = out.headers
        if out.partition is not None:
            kwargs["partition"] = out.partition
        while True:
            try:
                self._producer.produce(out.topic, out.value, **kwargs)
                break
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then try again.
                self._producer.poll(BUFFER_FULL_POLL_S)
        self._producer.poll(0)

    def _callback(self, seq: int) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            out = self._pending.get(seq)
            if out is None:
                return
            if err is None:
                del self._pending[seq]
                self.delivered += 1
                if out.on_delivered is not None:
                    out.on_delivered(int(msg.partition() or 0), int(msg.offset() or 0))
                return
            self.delivery_failures += 1
            if out.on_failure is not None:
                out.on_failure()
            if err.fatal():
                self._fatal = self._redactor.scrub(f"{err.name()}: {err.str()}")
                log.error("fatal producer error on %s: %s", out.topic, self._fatal)
                return
            log.warning(
                "delivery to %s failed (%s), producing it again (attempt %d)",
                out.topic,
                self._redactor.scrub(err.str()),
                out.attempts + 1,
            )
            if out.attempts < MAX_DELIVERY_ATTEMPTS:
                self._send(seq, out)

        return delivered

    # ---- progress -----------------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """Sequence number of the newest message produced (0 before the first)."""
        return self._seq

    def delivered_through(self, seq: int) -> bool:
        """Whether every message up to and including ``seq`` is acknowledged by the broker."""
        oldest = next(iter(self._pending), None)
        return oldest is None or oldest > seq

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)
        self.raise_if_fatal()

    def flush(self, timeout: float) -> int:
        """Wait for every delivery (at shutdown or a partition handoff only); return what is in flight."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            self._producer.flush(min(0.2, max(deadline - time.monotonic(), 0.0)))
            self.raise_if_fatal()
        return len(self._pending)

    def raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise ProducerFatalError(self._fatal)


class AlertPublisher:
    """Alert events onto the alerts topic: key = model_id, value = the alert schema (docs/formats.md)
    (:func:`encode_alert`).

    Remembers, per partition, the offset just past the newest alert the broker acknowledged: where a restarted
    stage 2 starts reading the topic's tail to learn what was already emitted.
    """

    def __init__(self, producer: TrackedProducer, topic: str, stats: ServiceStats | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.stats = stats
        self.delivered_offsets: dict[int, int] = {}

    def publish(self, alerts: Iterable[Alert]) -> int:
        n = 0
        for alert in alerts:
            self.producer.produce(
                self.topic,
                encode_alert(alert),
                key=alert.model_id,
                on_delivered=self._delivered,
                on_failure=self._failed,
            )
            n += 1
        return n

    def _delivered(self, partition: int, offset: int) -> None:
        self.delivered_offsets[partition] = max(self.delivered_offsets.get(partition, 0), offset + 1)

    def _failed(self) -> None:
        if self.stats is not None:
            self.stats.count_delivery_failure()


class DeadLetterPublisher:
    """Messages the core refused, onto the dead-letter topic: original key and bytes untouched, plus headers.

    Headers: ``reason`` (a :class:`~stream_monitor.core.events.RejectReason` value), ``detail`` (short,
    scrubbed of secrets), ``source_topic``, ``source_partition``, ``source_offset``, ``time`` (epoch
    milliseconds at which the service dead-lettered it), and ``value_bytes`` (the original length) when a value
    over :data:`MAX_DEAD_LETTER_VALUE_BYTES` was cut to its first :data:`DEAD_LETTER_SAMPLE_BYTES`. Headers of
    the original message are kept after ours.
    """

    def __init__(self, producer: TrackedProducer, topic: str, redactor: Redactor | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.redactor = redactor or Redactor(())

    def send(
        self,
        value: bytes | None,
        key: bytes | None,
        reason: str,
        detail: str,
        source_topic: str,
        source_partition: int,
        source_offset: int,
        original_headers: list[tuple[str, bytes]] | None = None,
        now: float | None = None,
    ) -> int:
        value, headers = dead_letter_record(
            value,
            reason,
            detail,
            source_topic,
            source_partition,
            source_offset,
            time.time() if now is None else now,
            self.redactor.scrub,
            original_headers,
        )
        return self.producer.produce(self.topic, value, key=key, headers=headers)


def dead_letter_record(
    value: bytes | None,
    reason: str,
    detail: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    now: float,
    scrub: Callable[[str], str],
    original_headers: list[tuple[str, bytes]] | None = None,
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers of a dead-letter record (see :class:`DeadLetterPublisher`), for every runtime."""
    headers = [
        ("reason", reason.encode()),
        ("detail", scrub(detail[:MAX_DETAIL_CHARS]).encode("utf-8", "replace")),
        ("source_topic", source_topic.encode()),
        ("source_partition", str(source_partition).encode()),
        ("source_offset", str(source_offset).encode()),
        ("time", str(int(now * 1000)).encode()),
    ]
    if value is not None and len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers.append(("value_bytes", str(len(value)).encode()))
        value = value[:DEAD_LETTER_SAMPLE_BYTES]
    if original_headers:
        headers.extend((k, v if v is not None else b"") for k, v in original_headers)
    return value, headers


def raise_for_error(err: KafkaError | None, redactor: Redactor, what: str) -> None:
    """Turn a client error into an exception whose text carries no secret."""
    if err is not None:
        raise KafkaException(KafkaError(err.code(), redactor.scrub(f"{what}: {err.str()}")))
