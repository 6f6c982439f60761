"""Issue 13's event-time hazards against a batch oracle: the issue's mix (5% out of order within the lateness
bound, 1% later than it, 2% repeated event ids, 0.5% an hour ahead, 0.5% a month back) replayed through the
engine, and every window's size, span and per-bin counts recomputed in plain Python from the deduplicated,
in-bound events; the late and skewed events dead-lettered with their reason, the repeats suppressed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from stream_monitor.adapters.files.jsonl_blocks import DeadLetter, JsonlSource
from stream_monitor.adapters.files.replay import replay
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.local import Engine
from tests import event_time_hazards as hz
from tests import service_support as ss

N_EVENTS = 24_000


def _window_counts(engine: Engine) -> dict[tuple[float, float, int], dict[str, list[int]]]:
    out: dict[tuple[float, float, int], dict[str, list[int]]] = {}
    for r in engine.take_stats():
        if r.detector == "psi" and r.signal.startswith("num_"):
            w = r.window
            out.setdefault((w.start_ts, w.end_ts, w.events), {})[r.signal] = r.details["window_counts"]
    return out


@pytest.mark.parametrize("batch", [500, 137])
def test_the_windows_of_a_hazardous_stream_equal_the_batch_oracle(batch: int) -> None:
    hazards = hz.event_time_hazards(ss.live_events(N_EVENTS, drifting=True))
    assert hazards.reasons["late_event"] > 0 and hazards.reasons["future_timestamp"] > 0
    assert hazards.duplicates > 0.015 * N_EVENTS
    engine = Engine(hz.hazard_config(), ss.profile().models, ManualClock(0.0))
    engine.record_stats(True)
    reasons: Counter[str] = Counter()
    duplicates = 0
    for i in range(0, len(hazards.messages), batch):
        chunk = hazards.messages[i : i + batch]
        result = engine.process_events(Stream.FEATURES, chunk)
        reasons.update(r.reason.value for r in result.rejections)
        for r in result.rejections:  # each dead letter is one of the hazards it names
            e = chunk[r.index]
            assert (e["ts"] > e_nominal(e) + 1000) == (r.reason.value == "future_timestamp"), r
        duplicates += result.duplicates
    engine.flush()
    assert reasons == hazards.reasons
    assert duplicates == hazards.duplicates
    pipeline = engine.pipelines[ss.MODEL]
    assert pipeline.accepted["features"] == len(hazards.admitted)
    assert pipeline.suppressed["features"] == hazards.duplicates

    oracle = hz.oracle_windows(hazards.admitted, hz.hazard_layout())
    got = _window_counts(engine)
    assert len(oracle) > 20
    assert list(got) == [
        (w.start_ts, w.end_ts, w.events) for w in oracle if w.events >= ss.WINDOW["min_events"]
    ]
    for w in oracle:
        if w.events >= ss.WINDOW["min_events"]:
            assert got[(w.start_ts, w.end_ts, w.events)] == w.counts, w


def e_nominal(event: dict[str, object]) -> float:
    """The time the synthetic stream gave the event (its id numbers it, at ``RATE`` a second)."""
    return ss.LIVE_START + int(str(event["event_id"]).rsplit("-", 1)[1]) / ss.RATE


def test_a_replayed_file_dead_letters_the_hazards_with_their_lines(tmp_path: Path) -> None:
    hazards = hz.event_time_hazards(ss.live_events(6000, drifting=False))
    path = tmp_path / "features.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in hazards.messages))
    engine = Engine(hz.hazard_config(), ss.profile().models, ManualClock(0.0))
    dead: list[DeadLetter] = []
    report = replay(engine, [JsonlSource(path, Stream.FEATURES)], on_dead=dead.append)
    assert Counter(d.reason for d in dead) == hazards.reasons
    for d in dead:  # each names its line, whose event it carries
        assert orjson.loads(d.raw) == hazards.messages[d.line - 1]
    assert report.duplicates == {"features": hazards.duplicates}
    assert report.events["features"] == len(hazards.admitted)
    assert report.dead_letters == {f"features:{k}": n for k, n in hazards.reasons.items()}
