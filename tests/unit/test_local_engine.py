"""The in-process engine is the service's two halves joined: how its input is cut into batches, and in which
order its streams' batches come, changes nothing once it knows which streams will come; a snapshot resumes it
exactly; the end of input closes everything.
"""

from __future__ import annotations

from typing import Any

import pytest

from stream_monitor.core.alerts import Alert
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine
from tests import service_support as ss

STREAMS = [Stream(s) for s in ss.CONCEPT_STREAMS]


@pytest.fixture(scope="module")
def streams() -> dict[str, list[dict[str, Any]]]:
    return ss.concept_streams(16_000, switch=True)


def _engine() -> Engine:
    return Engine(ss.concept_config(), ss.concept_profile().models, ManualClock(0.0))


def _interleaved(engine: Engine, streams: dict[str, list[dict[str, Any]]], batch: int) -> list[Alert]:
    """Every stream in event-time order, a small batch of each in turn (as replay feeds it)."""
    merged = sorted(((e["ts"], k, e) for k, evs in streams.items() for e in evs), key=lambda t: t[0])
    alerts: list[Alert] = []
    for i in range(0, len(merged), batch):
        block = merged[i : i + batch]
        for stream in STREAMS:
            events = [e for _, k, e in block if k == stream.value]
            if events:
                alerts += engine.process_events(stream, events).alerts
    return alerts + engine.flush()


def _stream_after_stream(engine: Engine, streams: dict[str, list[dict[str, Any]]]) -> list[Alert]:
    """Each stream whole, one after the other: every prediction comes after every feature."""
    alerts: list[Alert] = []
    for stream in STREAMS:
        alerts += engine.process_events(stream, streams[stream.value]).alerts
    return alerts + engine.flush()


def _outcome(engine: Engine, alerts: list[Alert]) -> tuple[Any, ...]:
    p = engine.pipelines[ss.MODEL]
    return (
        sorted(ss.wire(alerts), key=repr),
        p.monitor.windows_tested,
        p.performance_observations,
        p.merger.late_slices,
        p.merger.late_rows,
    )


def test_expected_streams_make_batching_and_stream_order_irrelevant(
    streams: dict[str, list[dict[str, Any]]],
) -> None:
    small = _engine()
    small.expect(STREAMS)
    reference = _outcome(small, _interleaved(small, streams, 200))
    assert reference[1] > 0 and reference[3] == 0 and reference[4] == 0
    assert any(a[3] == "concept_drift" for a in reference[0]), "the switch is detected"

    whole = _engine()
    whole.expect(STREAMS)
    assert _outcome(whole, _stream_after_stream(whole, streams)) == reference


def test_an_unexpected_stream_that_runs_behind_arrives_late(streams: dict[str, list[dict[str, Any]]]) -> None:
    """Without :meth:`Engine.expect` nothing waits for a stream before its first batch: fed after the
    others, its events miss the slices already completed, and are counted late (never dropped)."""
    engine = _engine()
    _, _, _, late_slices, late_rows = _outcome(engine, _stream_after_stream(engine, streams))
    assert late_slices + late_rows > 0
    p = engine.pipelines[ss.MODEL]
    assert p.accepted["predictions"] == len(streams["predictions"])


def test_a_snapshot_resumes_exactly(streams: dict[str, list[dict[str, Any]]]) -> None:
    first = _engine()
    first.expect(STREAMS)
    whole = _outcome(first, _interleaved(first, streams, 300))

    half = {k: v[: len(v) // 2] for k, v in streams.items()}
    rest = {k: v[len(v) // 2 :] for k, v in streams.items()}
    before = _engine()
    before.expect(STREAMS)
    merged = sorted(((e["ts"], k, e) for k, evs in half.items() for e in evs), key=lambda t: t[0])
    alerts: list[Alert] = []
    for i in range(0, len(merged), 300):
        for stream in STREAMS:
            events = [e for _, k, e in merged[i : i + 300] if k == stream.value]
            if events:
                alerts += before.process_events(stream, events).alerts
    after = _engine()
    after.restore(before.snapshot())
    resumed = _interleaved(after, rest, 300)
    got = _outcome(after, alerts + resumed)
    # same alerts and counts; the split point only moves which batch saw the boundary (lateness is 0 either way)
    assert got[0] == whole[0] and got[1:] == whole[1:]


def test_flush_closes_every_slice_and_window(streams: dict[str, list[dict[str, Any]]]) -> None:
    engine = _engine()
    for stream in STREAMS:
        engine.process_events(stream, streams[stream.value][:3_000])
    p = engine.pipelines[ss.MODEL]
    assert p.unwindowed_events() > 0
    engine.flush()
    assert p.unwindowed_events() == 0
    assert p.assembler.current is None
    assert not p.merger.pending and not p.merger.rows
