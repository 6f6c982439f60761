"""``stream-monitor topics create``: every topic the config names, with explicit partitions and settings.

Topic auto-creation is relied on nowhere (it is off on the dev broker, and its defaults are wrong for the
state topic): topics are created in a deploy step, with confluent-kafka's ``AdminClient``. Running it again is
safe: a topic that exists is left as it is and reported (with a note if its partition count differs from the
config).

>>> from stream_monitor.config.loading import parse_config
>>> cfg = parse_config({"models": {"m": {"reference": "r.json"}}})
>>> [(t.name, t.partitions, t.config.get("cleanup.policy")) for t in topic_specs(cfg)][-2:]
[('stream-monitor-partials', 3, 'delete'), ('stream-monitor-state', 3, 'compact')]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from stream_monitor.config.schema import MonitorConfig

# The state topic keeps the newest snapshot per key (compaction); a snapshot of a wide model with long
# lateness is several MB even compressed, so the topic allows large records.
STATE_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
PARTIALS_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
PARTIALS_RETENTION_MS: Final = 7 * 24 * 3600 * 1000
# The dead-letter topic must take any message an input topic took, plus our headers.
DLQ_MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
CREATE_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    purpose: str
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    status: str  # "created", "exists" or "error"
    message: str = ""


def topic_specs(config: MonitorConfig) -> list[TopicSpec]:
    """Every topic of the deployment: inputs, outputs, then the service's internal topics."""
    t = config.topics
    n = t.partitions
    specs = [
        TopicSpec(t.features, n, "input: feature events"),
        TopicSpec(t.predictions, n, "input: prediction events"),
        TopicSpec(t.labels, n, "input: label events"),
        TopicSpec(t.features_batch, n, "input: batch-path feature events"),
        TopicSpec(t.alerts, n, "output: alert events (key = model_id)"),
        TopicSpec(
            t.dlq,
            n,
            "output: dead letters (original bytes, reason headers)",
            {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)},
        ),
    ]
    if t.retraining:
        specs.append(TopicSpec(t.retraining, n, "output: retraining triggers"))
    if t.window_stats:
        specs.append(TopicSpec(t.window_stats, n, "output: window statistics"))
    specs += [
        TopicSpec(
            t.partials,
            n,
            "internal: partial slice sketches (key = model_id)",
            {
                "cleanup.policy": "delete",
                "retention.ms": str(PARTIALS_RETENTION_MS),
                "max.message.bytes": str(PARTIALS_MAX_MESSAGE_BYTES),
            },
        ),
        TopicSpec(
            t.state,
            n,
            "internal: state snapshots (newest per key)",
            {
                "cleanup.policy": "compact",
                "min.cleanable.dirty.ratio": "0.1",
                "segment.ms": "600000",
                "max.message.bytes": str(STATE_MAX_MESSAGE_BYTES),
            },
        ),
    ]
    return specs


def create_topics(
    admin: Any, specs: Sequence[TopicSpec], replication_factor: int, timeout: float = CREATE_TIMEOUT_S
) -> list[TopicOutcome]:
    """Create what is missing; report what exists. ``admin`` is a confluent-kafka ``AdminClient``."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    existing = admin.list_topics(timeout=timeout).topics
    outcomes: dict[str, TopicOutcome] = {}
    missing: list[TopicSpec] = []
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            continue
        seen.add(spec.name)
        meta = existing.get(spec.name)
        if meta is not None and meta.error is None:
            have = len(meta.partitions)
            note = (
                ""
                if have == spec.partitions
                else f"has {have} partitions, config says {spec.partitions}; left as is"
            )
            outcomes[spec.name] = TopicOutcome(spec.name, "exists", note)
        else:
            missing.append(spec)
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=replication_factor,
                    config=dict(s.config),
                )
                for s in missing
            ],
            operation_timeout=timeout,
        )
        for spec in missing:
            try:
                futures[spec.name].result(timeout=timeout)
                outcomes[spec.name] = TopicOutcome(spec.name, "created", f"{spec.partitions} partitions")
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    outcomes[spec.name] = TopicOutcome(spec.name, "exists", "created concurrently")
                else:
                    text = err.str() if isinstance(err, KafkaError) else str(exc)
                    outcomes[spec.name] = TopicOutcome(spec.name, "error", text)
        _wait_for_leaders(admin, [s for s in missing if outcomes[s.name].status == "created"], timeout)
    return [outcomes[name] for name in dict.fromkeys(s.name for s in specs)]


def _wait_for_leaders(admin: Any, specs: Sequence[TopicSpec], timeout: float) -> None:
    """Return once every new partition has a leader, so the service can produce right away."""
    deadline = time.monotonic() + timeout
    pending = {s.name: s.partitions for s in specs}
    while pending and time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5).topics
        for name in list(pending):
            meta = topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) == pending[name]
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                del pending[name]
        if pending:
            time.sleep(0.05)  # metadata propagation has no notification to wait on


def create_all(
    config: MonitorConfig, source: str = "the config", wait_s: float = CREATE_TIMEOUT_S
) -> list[TopicOutcome]:
    """``topics create``: build an AdminClient from the config's client settings (SASL/TLS pass through), wait
    up to ``wait_s`` for the broker, then create what is missing.

    Raises :class:`~stream_monitor.core.errors.KafkaUnavailableError` (a paragraph naming the setting to check,
    and its exit code) when the broker does not answer in time or refuses us.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from stream_monitor.adapters.kafka.clients import Redactor, without_consumer_settings
    from stream_monitor.adapters.kafka.faults import KafkaWatch, kafka_error, wait_for_kafka

    redactor = Redactor(
        v.get_secret_value() for v in config.kafka.client.values() if hasattr(v, "get_secret_value")
    )
    bootstrap = config.kafka.bootstrap_servers
    watch = KafkaWatch(bootstrap, redactor.scrub)
    try:
        admin = AdminClient({**without_consumer_settings(config.kafka.client_settings()), **watch.hooks()})
        wait_for_kafka(admin, watch, [], source, deadline_s=wait_s)
        return create_topics(admin, topic_specs(config), config.topics.replication_factor)
    except KafkaException as exc:
        fatal = kafka_error(exc, source, bootstrap, redactor.scrub)
        if fatal is not None:
            raise fatal from None
        raise
