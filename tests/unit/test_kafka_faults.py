"""Classifying librdkafka's errors, the log rate limit, readiness on Kafka's account and the start-up probe,
without a broker (a fake AdminClient stands in for one; the real broker's answers are in
tests/integration/test_service_kafka_faults.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException

from stream_monitor.adapters.kafka.faults import (
    EXIT_CODES,
    Fault,
    KafkaWatch,
    cause_key,
    classify,
    explain,
    kafka_error,
    wait_for_kafka,
)
from stream_monitor.adapters.prometheus.metrics_server import readiness
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.errors import KafkaUnavailableError
from stream_monitor.core.rate_limit import RateLimiter
from stream_monitor.pipeline.counters import ServiceStats

REFUSED = (
    "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: "
    "Connection refused (after {ms}ms in state CONNECT)"
)
SASL_ON_PLAINTEXT = (
    "sasl_plaintext://b:9092/bootstrap: SASL SCRAM-SHA-256 mechanism handshake failed: Broker: Request not "
    "valid in current SASL state: broker's supported mechanisms:  (after 0ms in state AUTH_HANDSHAKE)"
)


# ---- classification ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "text", "fault"),
    [
        (KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:1 failed: Connection refused", Fault.TRANSIENT),
        (KafkaError._RESOLVE, "Failed to resolve 'kafka:9092': Name or service not known", Fault.TRANSIENT),
        (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down", Fault.TRANSIENT),
        (KafkaError._TIMED_OUT, "Failed to get metadata: Local: Timed out", Fault.TRANSIENT),
        (KafkaError._AUTHENTICATION, SASL_ON_PLAINTEXT, Fault.AUTHENTICATION),
        (KafkaError.SASL_AUTHENTICATION_FAILED, "Invalid username or password", Fault.AUTHENTICATION),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed", Fault.AUTHORIZATION),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, "Group authorization failed", Fault.AUTHORIZATION),
        (KafkaError._SSL, "SSL handshake failed: certificate verify failed", Fault.TLS),
        (
            KafkaError._TRANSPORT,
            "ssl://b:9092/bootstrap: SSL handshake failed: Disconnected: connecting to a PLAINTEXT broker listener?",
            Fault.TLS,
        ),
        (
            KafkaError._INVALID_ARG,
            'Invalid value "bogus" for configuration property "security.protocol"',
            Fault.CLIENT_CONFIG,
        ),
        (KafkaError._INVALID_ARG, 'No such configuration property: "no.such.prop"', Fault.CLIENT_CONFIG),
    ],
)
def test_classify(code: int, text: str, fault: Fault) -> None:
    assert classify(code, text) is fault


def test_every_fatal_class_has_its_own_exit_code_and_config_errors_keep_2() -> None:
    fatal = [f for f in Fault if f is not Fault.TRANSIENT]
    assert sorted(EXIT_CODES) == sorted(fatal)
    codes = list(EXIT_CODES.values())
    assert len(set(codes)) == len(codes)
    assert not {0, 1, 2} & set(codes)


def test_cause_key_drops_thread_and_elapsed_time() -> None:
    keys = {cause_key(REFUSED.format(ms=ms)) for ms in (0, 1, 57, 1000)}
    assert keys == {"127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"}
    assert cause_key(
        "b: Connection refused (after 3ms in state CONNECT, 4 identical error(s) suppressed)"
    ) == ("b: Connection refused")


@pytest.mark.parametrize(
    ("fault", "text", "names"),
    [
        (
            Fault.AUTHENTICATION,
            SASL_ON_PLAINTEXT,
            ["kafka.client.sasl.password", "kafka.client.security.protocol"],
        ),
        (
            Fault.CLIENT_CONFIG,
            'Invalid value "bogus" for configuration property "security.protocol"',
            ["kafka.client.security.protocol"],
        ),
        (
            Fault.CLIENT_CONFIG,
            'No such configuration property: "no.such.prop"',
            ["kafka.client.no.such.prop"],
        ),
        (
            Fault.TLS,
            "SSL handshake failed",
            ["kafka.client.ssl.ca.location", "kafka.client.security.protocol"],
        ),
        (Fault.UNREACHABLE, "Connection refused", ["kafka.bootstrap_servers"]),
        (Fault.AUTHORIZATION, "Topic authorization failed", ["kafka.client.sasl.username"]),
    ],
)
def test_explain_names_the_setting_the_file_and_the_exit_code(
    fault: Fault, text: str, names: list[str]
) -> None:
    paragraph = explain(fault, text, "conf.yaml", "b:9092")
    for name in names:
        assert name in paragraph
    assert "conf.yaml" in paragraph
    assert paragraph.endswith(f"(exit {EXIT_CODES[fault]})")
    assert "\n" not in paragraph


def test_sasl_against_a_listener_without_sasl_says_so() -> None:
    assert "offers no SASL mechanism" in explain(Fault.AUTHENTICATION, SASL_ON_PLAINTEXT, "c", "b:9092")


def test_kafka_error_of_an_exception_is_none_when_transient() -> None:
    refused = KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
    assert kafka_error(refused, "c", "b", str) is None
    bad = KafkaException(
        KafkaError(KafkaError._INVALID_ARG, 'Invalid value for configuration property "x.y"')
    )
    err = kafka_error(bad, "c", "b", str)
    assert err is not None and err.exit_code == 3 and "kafka.client.x.y" in str(err)


# ---- the rate limiter ----------------------------------------------------------------------------------------
def test_rate_limiter_admits_one_line_per_cause_per_interval_and_counts_the_rest() -> None:
    clock = ManualClock(0.0)
    limiter = RateLimiter(10.0, clock)
    admitted = []
    for _ in range(2000):  # 20 reports a second for 100 s, two causes interleaved
        clock.advance(0.05)
        for cause in ("refused", "all down"):
            n = limiter.admit(cause)
            if n is not None:
                admitted.append((cause, n))
    assert len(admitted) == 2 * 10  # one per cause per 10 s
    assert sum(n for _, n in admitted) + len(admitted) + sum(limiter.pending().values()) == 4000
    assert admitted[2:4] == [("refused", 199), ("all down", 199)]


def test_rate_limiter_bounds_the_causes_it_remembers() -> None:
    limiter = RateLimiter(10.0, ManualClock(0.0), max_causes=8)
    assert all(limiter.admit(f"cause {i}") == 0 for i in range(100))
    assert len(limiter._causes) == 8
    with pytest.raises(ValueError, match="interval_s"):
        RateLimiter(0.0, ManualClock(0.0))


# ---- the watch: log, errors, readiness ---------------------------------------------------------------------
def test_watch_logs_a_storm_of_one_cause_as_one_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(0.0)
    watch = KafkaWatch("b:9092", clock=clock, interval_s=10.0)
    with caplog.at_level(logging.INFO, logger="stream_monitor.librdkafka"):
        for i in range(200):  # what one client reports in 10 s with no broker, via log and error_cb
            clock.advance(0.049)
            watch.log(
                logging.ERROR, "%s [%s] %s", "FAIL", f"rdkafka#consumer-{i % 3}", REFUSED.format(ms=i % 7)
            )
            watch.error(
                KafkaError(
                    KafkaError._TRANSPORT, REFUSED.format(ms=i % 5)[len("[thrd:127.0.0.1:1/bootstrap]: ") :]
                )
            )
        clock.advance(1.0)
        watch.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED.format(ms=0))
    lines = [r.getMessage() for r in caplog.records if r.name == "stream_monitor.librdkafka"]
    assert lines == [
        "FAIL: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused",
        "FAIL: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
        " (and 399 more like it in the last 10 s)",
    ]


def test_watch_scrubs_secrets_from_what_it_logs(caplog: pytest.LogCaptureFixture) -> None:
    watch = KafkaWatch("b:9092", redact=lambda s: s.replace("hunter2", "***"))
    with caplog.at_level(logging.INFO, logger="stream_monitor.librdkafka"):
        watch.log(
            logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "password hunter2 rejected"
        )
    assert "hunter2" not in caplog.text and "***" in caplog.text


def test_watch_is_not_ready_while_all_brokers_are_down_and_ready_once_one_is_up() -> None:
    stats = ServiceStats()
    stats.set_restoring(False)
    stats.set_agent("stage1", True)
    watch = KafkaWatch("b:9092")
    assert readiness(stats, watch.not_ready) == (False, "connecting to Kafka")
    watch.connected()
    assert readiness(stats, watch.not_ready) == (True, "ready")
    watch.error(
        KafkaError(
            KafkaError._TRANSPORT, "b:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
        )
    )
    assert readiness(stats, watch.not_ready) == (
        True,
        "ready",
    )  # one connection failing is librdkafka's business
    watch.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    ready, reason = readiness(stats, watch.not_ready)
    assert not ready
    assert (
        reason
        == "Kafka at b:9092 unreachable, retrying: b:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
    )
    watch.stats(orjson.dumps({"brokers": {"b:9092/1": {"state": "TRY_CONNECT"}}}).decode())
    assert not readiness(stats, watch.not_ready)[0]
    watch.stats("not json")
    watch.stats(orjson.dumps({"brokers": {"b:9092/1": {"state": "UP"}}}).decode())
    assert readiness(stats, watch.not_ready) == (True, "ready")


# ---- the start-up probe -------------------------------------------------------------------------------------
class _Meta:
    def __init__(self, topics: list[str]) -> None:
        self.topics = {name: type("T", (), {"error": None})() for name in topics}


class FakeAdmin:
    """``list_topics`` fails (reporting ``errors`` to the watch on the next ``poll``) ``failures`` times, then
    answers with ``topics``; ``poll(t)`` moves the manual clock by ``t``."""

    def __init__(
        self,
        watch: KafkaWatch,
        clock: ManualClock,
        failures: int,
        errors: list[KafkaError],
        topics: list[str],
        on_list: Callable[[int], None] | None = None,
    ) -> None:
        self.watch, self.clock, self.failures, self.errors, self.topics = (
            watch,
            clock,
            failures,
            errors,
            topics,
        )
        self.calls = 0
        self.on_list = on_list
        self._queued: list[KafkaError] = []

    def list_topics(self, timeout: float) -> _Meta:
        self.calls += 1
        if self.on_list is not None:
            self.on_list(self.calls)
        if self.calls <= self.failures:
            self.clock.advance(timeout)
            self._queued = list(self.errors)
            raise KafkaException(
                KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Local: Broker transport failure")
            )
        return _Meta(self.topics)

    def poll(self, timeout: float) -> int:
        for err in self._queued:
            self.watch.error(err)
        self._queued = []
        self.clock.advance(timeout)
        return 0


def _probe(
    failures: int, errors: list[KafkaError], topics: list[str], **kwargs: Any
) -> tuple[bool, FakeAdmin, KafkaWatch]:
    clock = ManualClock(0.0)
    watch = KafkaWatch("b:9092", clock=clock)
    admin = FakeAdmin(watch, clock, failures, errors, topics)
    needed = [("features", "f"), ("alerts", "a")]
    return wait_for_kafka(admin, watch, needed, "conf.yaml", clock=clock, **kwargs), admin, watch


REFUSED_ERROR = KafkaError(
    KafkaError._TRANSPORT, "b:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
)


def test_probe_retries_transient_causes_with_backoff_until_the_broker_answers() -> None:
    reasons: list[str | None] = []
    clock = ManualClock(0.0)
    watch = KafkaWatch("b:9092", clock=clock)
    admin = FakeAdmin(
        watch, clock, 6, [REFUSED_ERROR], ["f", "a"], on_list=lambda _: reasons.append(watch.not_ready())
    )
    assert wait_for_kafka(admin, watch, [("features", "f")], "conf.yaml", clock=clock)
    assert admin.calls == 7
    assert reasons[0] == "connecting to Kafka"
    assert reasons[-1] == (
        "waiting for Kafka at b:9092: b:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
        " (attempt 6, next in 8 s)"
    )
    assert watch.not_ready() is None
    # attempts of 2 s, pauses of 0.5, 1, 2, 4, 8, 8 s
    assert clock.now() == pytest.approx(6 * 2.0 + 0.5 + 1 + 2 + 4 + 8 + 8)


@pytest.mark.parametrize(
    ("error", "code", "setting"),
    [
        (KafkaError(KafkaError._AUTHENTICATION, SASL_ON_PLAINTEXT), 4, "kafka.client.sasl.password"),
        (
            KafkaError(KafkaError._TRANSPORT, "ssl://b:9092/bootstrap: SSL handshake failed: Disconnected"),
            5,
            "kafka.client.ssl.ca.location",
        ),
        (
            KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed"),
            8,
            "kafka.client.sasl.username",
        ),
    ],
)
def test_probe_stops_at_the_first_attempt_for_a_cause_no_retry_fixes(
    error: KafkaError, code: int, setting: str
) -> None:
    # the fatal cause is followed by a transient one, as librdkafka reports them: the fatal one still counts
    with pytest.raises(KafkaUnavailableError) as caught:
        _probe(
            100, [error, KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"), REFUSED_ERROR], []
        )
    assert caught.value.exit_code == code
    assert setting in str(caught.value) and "conf.yaml" in str(caught.value)


def test_probe_names_missing_topics_with_their_config_keys() -> None:
    with pytest.raises(KafkaUnavailableError) as caught:
        _probe(0, [], ["f"])
    assert caught.value.exit_code == 6
    assert "a (topics.alerts)" in str(caught.value) and "stream-monitor topics create" in str(caught.value)


def test_probe_with_a_deadline_gives_up_as_unreachable_in_time() -> None:
    clock = ManualClock(0.0)
    watch = KafkaWatch("b:9092", clock=clock)
    admin = FakeAdmin(watch, clock, 1000, [REFUSED_ERROR], [])
    with pytest.raises(KafkaUnavailableError) as caught:
        wait_for_kafka(admin, watch, [], "conf.yaml", deadline_s=5.0, clock=clock)
    assert caught.value.exit_code == 7 and "kafka.bootstrap_servers" in str(caught.value)
    assert 5.0 <= clock.now() <= 5.5


def test_probe_returns_false_when_stopped() -> None:
    stop = threading.Event()
    clock = ManualClock(0.0)
    watch = KafkaWatch("b:9092", clock=clock)
    admin = FakeAdmin(watch, clock, 1000, [REFUSED_ERROR], [], on_list=lambda n: n == 3 and stop.set())
    assert wait_for_kafka(admin, watch, [], "conf.yaml", stop=stop, clock=clock) is False
    assert admin.calls == 3
