"""The fault tests' final check on an at-least-once runtime: nothing lost, duplicates bounded and measured.

Such a runtime keeps no snapshot to compare whole, so the check reads what it published, as a user would:

* stage 1, the partials topic: every (source partition, slice) holds at least the events the oracle puts there
  (events re-read after a crash or rebalance show up as a surplus: the duplicates);
* stage 2, the window-statistics topic: every event the oracle tested lies in the span of a tested window, and
  the tested windows hold at least the oracle's events in all (duplicates again as a surplus);
* the alerts topic: every alert the oracle raises appears at least once, by kind, signal, severity and status
  (its id names the window the episode began in, and duplicates move window boundaries, so the id may differ).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.assembly import build_models
from stream_monitor.pipeline.partials import decode_partial
from stream_monitor.stats.sketches import WindowSketch
from tests import service_support as ss

SliceKey = tuple[int, int]  # (input partition, slice id)
Span = tuple[float, float, int]  # a tested window: first and last event time, events


@dataclass
class Oracle:
    """What a one-process recomputation says the service must have counted, tested and raised."""

    slices: Counter[SliceKey]
    windows: list[Span]
    alerts: set[tuple[str, str, str, str]]
    tested_ts: list[float]  # every event time in a window the oracle tested, sorted


@dataclass
class Measured:
    """What the service published, against the oracle."""

    missing_slices: dict[SliceKey, tuple[int, int]]  # (published, oracle) where published < oracle
    slice_duplicates: int  # events counted more than once at stage 1
    uncovered: int  # oracle-tested events in no published window
    window_events: int  # events in the distinct tested windows published
    oracle_window_events: int
    missing_alerts: set[tuple[str, str, str, str]]
    alerts: list[Alert]

    @property
    def window_duplicates(self) -> int:
        return self.window_events - self.oracle_window_events

    @property
    def complete(self) -> bool:
        return (
            not self.missing_slices
            and self.uncovered == 0
            and self.window_duplicates >= 0
            and not self.missing_alerts
        )


def identity(a: Alert) -> tuple[str, str, str, str]:
    return (a.kind.value, a.signal, a.severity.value, a.status.value)


def oracle(
    events: list[dict[str, Any]], clean: list[dict[str, Any]], n_partitions: int, cfg: MonitorConfig | None
) -> Oracle:
    """The oracle of ``events`` (with their sentinels appended) whose admitted events are ``clean``."""
    cfg = cfg or ss.config()
    boundary = ss.expected_boundary(clean)
    slice_s = ss.WINDOW["slice_seconds"]
    slices: Counter[SliceKey] = Counter()
    for e in clean:
        sid = math.floor(e["ts"] / slice_s)
        if sid < boundary:
            slices[(ss.partition_of(e, n_partitions), sid)] += 1
    eng = ss.engine(cfg)
    eng.record_stats(True)
    alerts: list[Alert] = []
    for i in range(0, len(events), 500):
        alerts.extend(eng.process_events(Stream.FEATURES, events[i : i + 500]).alerts)
    windows = sorted({(s.window.start_ts, s.window.end_ts, s.window.events) for s in eng.take_stats()})
    tested = sorted(e["ts"] for e in clean if any(lo <= e["ts"] <= hi for lo, hi, _ in windows))
    return Oracle(slices, windows, {identity(a) for a in alerts}, tested)


def published_slices(d: ss.Deployment, cfg: MonitorConfig | None) -> Counter[SliceKey]:
    """Events per (feature partition, slice) in every partial on the partials topic."""
    layout = build_models(cfg or ss.config(), ss.profile().models, ManualClock(0.0)).layouts[ss.MODEL]
    out: Counter[SliceKey] = Counter()
    prefix = d.topics["features"] + ":"
    for msg in d.read("partials"):
        p = decode_partial(msg.value() or b"")
        if not p.source.startswith(prefix):
            continue
        partition = int(p.source.rsplit(":", 1)[1])
        for sid, data in p.slices:
            assert isinstance(data, bytes)
            out[(partition, sid)] += WindowSketch.from_bytes(data, layout.sketch).total_events
    return out


def published_windows(d: ss.Deployment) -> list[Span]:
    return sorted(
        {
            (w["start_ts"], w["end_ts"], w["events"])
            for w in (orjson.loads(m.value())["window"] for m in d.read("window_stats"))
        }
    )


def _uncovered(tested_ts: list[float], windows: list[Span]) -> int:
    """How many of ``tested_ts`` lie in no window's span."""
    merged: list[list[float]] = []
    for lo, hi, _ in windows:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    starts = [m[0] for m in merged]
    out = 0
    for ts in tested_ts:
        i = bisect.bisect_right(starts, ts) - 1
        if i < 0 or ts > merged[i][1]:
            out += 1
    return out


def measure(d: ss.Deployment, want: Oracle, cfg: MonitorConfig | None) -> Measured:
    got = published_slices(d, cfg)
    windows = published_windows(d)
    alerts = d.alerts()
    return Measured(
        missing_slices={k: (got[k], n) for k, n in want.slices.items() if got[k] < n},
        slice_duplicates=sum(max(got[k] - want.slices[k], 0) for k in got),
        uncovered=_uncovered(want.tested_ts, windows),
        window_events=sum(n for _, _, n in windows),
        oracle_window_events=sum(n for _, _, n in want.windows),
        missing_alerts=want.alerts - {identity(a) for a in alerts},
        alerts=alerts,
    )


def assert_at_least_once(
    d: ss.Deployment,
    events: list[dict[str, Any]],
    clean: list[dict[str, Any]],
    n_partitions: int,
    cfg: MonitorConfig | None,
    max_duplicates: int,
    timeout: float = 120.0,
) -> Measured:
    """Wait until the service published everything the oracle of ``events`` (sentinels included; ``clean``:
    the admitted ones) counts, tests and raises; then hold its duplicates to ``max_duplicates`` events at
    each stage. Fails naming what is missing if it never does."""
    want = oracle(events, clean, n_partitions, cfg)
    last: list[Measured] = []

    def done() -> bool:
        last[:] = [measure(d, want, cfg)]
        return last[0].complete

    try:
        ss.wait_for(done, timeout, "every event, window and alert of the oracle published", every=2.0)
    except AssertionError:
        m = last[0]
        raise AssertionError(
            f"lost: {len(m.missing_slices)} slices short (published, oracle): "
            f"{dict(list(m.missing_slices.items())[:5])}; {m.uncovered} tested events in no window; "
            f"window events {m.window_events} against {m.oracle_window_events}; alerts missing "
            f"{sorted(m.missing_alerts)}"
        ) from None
    m = last[0]
    print(
        f"at least once: duplicates {m.slice_duplicates} events at stage 1, {m.window_duplicates} in windows "
        f"(bound {max_duplicates}); {len(m.alerts)} alerts for the oracle's {len(want.alerts)} kinds"
    )
    assert m.slice_duplicates <= max_duplicates, (m.slice_duplicates, max_duplicates)
    assert m.window_duplicates <= max_duplicates, (m.window_duplicates, max_duplicates)
    return m
