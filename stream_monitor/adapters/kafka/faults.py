"""What librdkafka's errors mean for us: transient or fatal, which setting to check, which exit code.

Every Kafka client of the service reports to one :class:`KafkaWatch`, passed as the clients' ``logger``,
``error_cb`` and (for the main consumer) ``stats_cb``. It routes librdkafka's log through Python logging at one
line per distinct cause per interval (the repeats counted, the count told with the cause's next line), keeps
the newest error for :func:`classify`, and gives ``/readyz`` its reason while Kafka cannot be used.

:func:`wait_for_kafka` is the start-up probe of ``run``, ``topics create`` and the demo: it asks the broker
for metadata with backoff until it answers and every topic the command needs exists. A *transient* cause (no
broker listening yet, a broker restarting, a name that does not resolve yet) is retried; a cause no retry can
fix stops the command with :class:`~stream_monitor.core.errors.KafkaUnavailableError`: one paragraph naming
the setting to check, and a distinct exit code per class (:data:`EXIT_CODES`, listed in docs/operations.md).

>>> from confluent_kafka import KafkaError
>>> classify(KafkaError._TRANSPORT, "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused")
<Fault.TRANSIENT: 'transient'>
>>> classify(KafkaError._AUTHENTICATION, "SASL SCRAM-SHA-256 mechanism handshake failed")
<Fault.AUTHENTICATION: 'authentication'>
>>> cause_key("[thrd:b:9092/bootstrap]: b:9092/bootstrap: Connection refused (after 0ms in state CONNECT)")
'b:9092/bootstrap: Connection refused'
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson
from confluent_kafka import KafkaError, KafkaException

from stream_monitor.core.clock import Clock, MonotonicClock
from stream_monitor.core.errors import KafkaUnavailableError
from stream_monitor.core.rate_limit import RateLimiter

log = logging.getLogger("stream_monitor.kafka")
librdkafka_log = logging.getLogger("stream_monitor.librdkafka")

LOG_INTERVAL_S: Final = 30.0  # one line per distinct cause per this many seconds
PROBE_TIMEOUT_S: Final = 2.0  # one metadata request of the start-up probe
BACKOFF_START_S: Final = 0.5
BACKOFF_MAX_S: Final = 8.0
STATS_INTERVAL_MS: Final = 2000  # how soon a recovered broker is noticed while Kafka is down


class Fault(StrEnum):
    TRANSIENT = "transient"  # retried: no broker yet, a broker restarting, a name not resolving yet
    CLIENT_CONFIG = "client_config"  # librdkafka refused a kafka.client setting
    AUTHENTICATION = "authentication"  # SASL refused
    AUTHORIZATION = "authorization"  # an ACL denies us a topic, the group or the cluster
    TLS = "tls"  # the TLS handshake failed (verification, or TLS against a plaintext listener)
    MISSING_TOPICS = "missing_topics"
    UNREACHABLE = "unreachable"  # one-shot commands only: no broker answered in the time given


# Exit codes of the CLI (2 stays the config error of every command; 1 any other failure).
EXIT_CODES: Final[Mapping[Fault, int]] = {
    Fault.CLIENT_CONFIG: 3,
    Fault.AUTHENTICATION: 4,
    Fault.TLS: 5,
    Fault.MISSING_TOPICS: 6,
    Fault.UNREACHABLE: 7,
    Fault.AUTHORIZATION: 8,
}

_CONFIG_CODES: Final = frozenset({KafkaError._INVALID_ARG, KafkaError._INVALID_TYPE})
_AUTHENTICATION_CODES: Final = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.ILLEGAL_SASL_STATE,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
    }
)
_AUTHORIZATION_CODES: Final = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
_TLS_TEXT: Final = re.compile(r"SSL handshake failed|certificate verify failed|ssl\.ca\.location", re.I)
_THREAD_PREFIX: Final = re.compile(r"^\[thrd:[^\]]*\]:\s*")
_AFTER_SUFFIX: Final = re.compile(
    r"\s*\(after \d+ms in state \w+(?:, \d+ identical error\(s\) suppressed)?\)\s*$"
)
_PROPERTY: Final = re.compile(r'property:?\s*"?([\w.]+)"?', re.I)
_MECHANISMS: Final = re.compile(r"broker's supported mechanisms:\s*([\w\-, ]*)")


def classify(code: int, text: str) -> Fault:
    """The class of a librdkafka error (its code and text): transient, or which kind of fatal."""
    if code in _CONFIG_CODES:
        return Fault.CLIENT_CONFIG
    if code in _AUTHENTICATION_CODES:
        return Fault.AUTHENTICATION
    if code in _AUTHORIZATION_CODES:
        return Fault.AUTHORIZATION
    if code == KafkaError._SSL or _TLS_TEXT.search(text):
        return Fault.TLS
    return Fault.TRANSIENT


def cause_key(text: str) -> str:
    """A librdkafka message without what changes between repeats of one cause (thread, elapsed time)."""
    return _AFTER_SUFFIX.sub("", _THREAD_PREFIX.sub("", text)).strip()


def explain(fault: Fault, text: str, source: str, bootstrap: str) -> str:
    """One paragraph: what failed, the setting(s) of ``source`` (the config file) to check, the exit code."""
    why = cause_key(text).rstrip(" :.")
    code = EXIT_CODES.get(fault, 1)
    if fault is Fault.CLIENT_CONFIG:
        found = _PROPERTY.search(text)
        setting = f"kafka.client.{found.group(1)}" if found else "the settings under kafka.client"
        body = (
            f"librdkafka refused a Kafka client setting: {why}. Check {setting} in {source}: everything "
            "under kafka.client goes to librdkafka unchanged, so names and values are librdkafka's "
            "(security.protocol is one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL; see librdkafka's "
            "CONFIGURATION.md)."
        )
    elif fault is Fault.AUTHENTICATION:
        offered = _MECHANISMS.search(text)
        hint = ""
        if offered is not None:
            names = offered.group(1).strip()
            hint = (
                f" The broker offers {names} on this listener."
                if names
                else " The broker offers no SASL mechanism on this listener: it is probably a PLAINTEXT or "
                "SSL listener, so kafka.client.security.protocol should not be SASL_*."
            )
        body = (
            f"Kafka at {bootstrap} refused to authenticate us: {why}.{hint} Check kafka.client.sasl.mechanism, "
            f"kafka.client.sasl.username and kafka.client.sasl.password in {source} (a ${{ENV}} reference "
            "reads the environment at start-up), and kafka.client.security.protocol against the broker's "
            "listener."
        )
    elif fault is Fault.AUTHORIZATION:
        body = (
            f"Kafka at {bootstrap} denied access: {why}. The principal of kafka.client.sasl.username in "
            f"{source} needs ACLs to describe, read and write the configured topics and to join "
            "service.consumer_group; ask the cluster's operator, or check the user name."
        )
    elif fault is Fault.TLS:
        body = (
            f"The TLS handshake with Kafka at {bootstrap} failed: {why}. If that listener is not TLS, set "
            f"kafka.client.security.protocol in {source} to PLAINTEXT or SASL_PLAINTEXT; if it is, check "
            "kafka.client.ssl.ca.location (the CA that signed the broker's certificate) and that the host "
            "name in kafka.bootstrap_servers matches the certificate "
            "(kafka.client.ssl.endpoint.identification.algorithm)."
        )
    elif fault is Fault.UNREACHABLE:
        body = (
            f"No Kafka broker answered at {bootstrap}: {why}. Check kafka.bootstrap_servers in {source}, "
            "that the broker runs and that this host can reach that address and port."
        )
    else:  # MISSING_TOPICS and TRANSIENT are worded by their callers
        body = why
    return f"{body} (exit {code})"


def fault_error(
    fault: Fault, text: str, source: str, bootstrap: str, redact: Callable[[str], str]
) -> KafkaUnavailableError:
    return KafkaUnavailableError(
        fault.value, redact(explain(fault, text, source, bootstrap)), EXIT_CODES[fault]
    )


@dataclass(frozen=True)
class Cause:
    code: int
    text: str


class KafkaWatch:
    """The clients' ``logger``, ``error_cb`` and ``stats_cb``; the Kafka part of ``/readyz``.

    Parameters
    ----------
    bootstrap
        ``kafka.bootstrap_servers``, for the readiness reason.
    redact
        Scrubs configured secrets from every text that leaves (log lines, reasons).
    clock
        For the log rate limit (monotonic in the service).
    interval_s
        One log line per distinct cause per this many seconds.
    """

    def __init__(
        self,
        bootstrap: str,
        redact: Callable[[str], str] = str,
        clock: Clock | None = None,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self.bootstrap = bootstrap
        self.redact = redact
        self.limiter = RateLimiter(interval_s, clock or MonotonicClock())
        self._lock = threading.Lock()
        self._latest: Cause | None = None
        self._fatal: Cause | None = None  # the newest cause of a fatal class since forget()
        self._reason: str | None = "connecting to Kafka"
        self._down = False  # all brokers down while running: cleared by the next statistics with one up

    # ---- librdkafka's callbacks (from poll/consume, or from its threads) ------------------------------------
    def log(self, level: int, fmt: str, *args: Any) -> None:
        """confluent-kafka's ``logger`` interface: ``log(level, "%s [%s] %s", facility, client, message)``."""
        facility, message = (str(args[0]), str(args[2])) if len(args) == 3 else ("", fmt % args)
        self._emit(level, facility, message)

    def error(self, err: KafkaError) -> None:
        """``error_cb``: remember the newest cause; a broker gone (all of them) makes us not ready."""
        text = str(err.str())
        with self._lock:
            if err.code() == KafkaError._ALL_BROKERS_DOWN:
                self._down = True  # says only that; the cause is the error before it
            else:
                self._latest = Cause(int(err.code()), text)
                if classify(err.code(), text) is not Fault.TRANSIENT:
                    self._fatal = self._latest
                    self._down = True
        level = logging.ERROR if err.fatal() else logging.WARNING
        self._emit(level, err.name(), text)

    def stats(self, raw: str) -> None:
        """``stats_cb``: while Kafka is down, one broker up again makes us ready again."""
        if not self._down:
            return
        try:
            brokers = orjson.loads(raw).get("brokers", {})
        except (orjson.JSONDecodeError, AttributeError):
            return
        if any(isinstance(b, dict) and b.get("state") == "UP" for b in brokers.values()):
            with self._lock:
                self._down = False
            log.info("Kafka at %s answers again", self.bootstrap)

    def hooks(self) -> dict[str, Any]:
        """Settings that route a client's log and errors here (merged into its settings; the main consumer also
        takes :meth:`stats` as ``stats_cb``)."""
        return {"logger": self, "error_cb": self.error}

    def _emit(self, level: int, facility: str, message: str) -> None:
        key = cause_key(message)
        suppressed = self.limiter.admit(key)
        if suppressed is None:
            return
        more = (
            f" (and {suppressed} more like it in the last {self.limiter.interval_s:.0f} s)"
            if suppressed
            else ""
        )
        librdkafka_log.log(level, "%s: %s%s", facility, self.redact(key), more)

    # ---- state ------------------------------------------------------------------------------------------------
    def latest(self) -> Cause | None:
        """The newest cause of a fatal class since :meth:`forget`, else the newest cause."""
        with self._lock:
            return self._fatal or self._latest

    def forget(self) -> None:
        with self._lock:
            self._latest = self._fatal = None

    def waiting(self, reason: str) -> None:
        with self._lock:
            self._reason = self.redact(reason)

    def connected(self) -> None:
        with self._lock:
            self._reason = None
            self._down = False

    def not_ready(self) -> str | None:
        """Why ``/readyz`` must answer 503 on Kafka's account, or None."""
        with self._lock:
            if self._reason is not None:
                return self._reason
            if self._down:
                latest = cause_key(self._latest.text) if self._latest else "all brokers down"
                return self.redact(f"Kafka at {self.bootstrap} unreachable, retrying: {latest}")
            return None


def wait_for_kafka(
    admin: Any,
    watch: KafkaWatch,
    topics: Sequence[tuple[str, str]],
    source: str,
    stop: threading.Event | None = None,
    deadline_s: float | None = None,
    clock: Clock | None = None,
) -> bool:
    """Ask for metadata with backoff until the broker answers and every topic exists.

    Parameters
    ----------
    admin
        A confluent-kafka ``AdminClient`` built with ``watch.hooks()``.
    topics
        ``(config key, topic name)`` of every topic the command needs (``[]``: none).
    source
        The config file, named in the messages.
    stop
        Set to give up quietly (a signal): returns False.
    deadline_s
        Seconds after which a transient cause is given up as :attr:`Fault.UNREACHABLE`; None retries forever.

    Returns True once connected; raises :class:`KafkaUnavailableError` for a cause no retry can fix.
    """
    clock = clock or MonotonicClock()
    started = clock.now()
    delay = BACKOFF_START_S
    attempt = 0
    while stop is None or not stop.is_set():
        attempt += 1
        watch.forget()
        timeout = PROBE_TIMEOUT_S
        if deadline_s is not None:
            timeout = min(timeout, max(deadline_s - (clock.now() - started), 0.1))
        try:
            meta = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            admin.poll(0)  # an AdminClient hands its log and errors over only here
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            cause = watch.latest() or Cause(
                err.code() if err else KafkaError._TRANSPORT, str(err.str() if err else exc)
            )
            fault = classify(cause.code, cause.text)
            if fault is not Fault.TRANSIENT:
                raise fault_error(fault, cause.text, source, watch.bootstrap, watch.redact) from None
            waited = clock.now() - started
            if deadline_s is not None and waited >= deadline_s:
                raise fault_error(
                    Fault.UNREACHABLE,
                    f"{cause_key(cause.text)} (gave up after {waited:.0f} s)",
                    source,
                    watch.bootstrap,
                    watch.redact,
                ) from None
            reason = (
                f"waiting for Kafka at {watch.bootstrap}: {cause_key(cause.text)} "
                f"(attempt {attempt}, next in {delay:g} s)"
            )
            watch.waiting(reason)
            log.warning("%s", watch.redact(reason))
            pause = delay if deadline_s is None else min(delay, max(deadline_s - waited, 0.0))
            _pause(admin, pause, stop, clock)
            delay = min(delay * 2, BACKOFF_MAX_S)
            continue
        admin.poll(0)
        present = {name for name, t in meta.topics.items() if t.error is None}
        missing = [(key, name) for key, name in topics if name not in present]
        if missing:
            named = ", ".join(f"{name} (topics.{key})" for key, name in missing)
            raise KafkaUnavailableError(
                Fault.MISSING_TOPICS.value,
                f"Kafka at {watch.bootstrap} has no topic {named}. Create them with `stream-monitor topics "
                f"create --config {source}`, or correct the names under topics: in {source} "
                f"(exit {EXIT_CODES[Fault.MISSING_TOPICS]})",
                EXIT_CODES[Fault.MISSING_TOPICS],
            )
        watch.connected()
        if attempt > 1:
            log.info("Kafka at %s answers (after %d attempts)", watch.bootstrap, attempt)
        return True
    return False


def _pause(admin: Any, seconds: float, stop: threading.Event | None, clock: Clock) -> None:
    """Wait ``seconds`` (or until ``stop``), serving the client's log and error callbacks meanwhile."""
    until = clock.now() + seconds
    while (left := until - clock.now()) > 0 and (stop is None or not stop.is_set()):
        admin.poll(min(left, 0.25))


def kafka_error(
    exc: KafkaException, source: str, bootstrap: str, redact: Callable[[str], str]
) -> KafkaUnavailableError | None:
    """The fatal error a client constructor's or call's exception stands for; None if it is transient."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return None
    fault = classify(err.code(), str(err.str()))
    if fault is Fault.TRANSIENT:
        return None
    return fault_error(fault, str(err.str()), source, bootstrap, redact)
