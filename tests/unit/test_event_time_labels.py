"""Labels' event-time hazards, rule by rule: a label stamped ahead of the clock is refused before it moves its
partition's label clock, one older than the join's TTL behind the newest label is refused as late (however the
batches are cut), one merely behind the watermark still joins; a repeated label (a correction included)
counts once, the first wins; and the concept model's hazardous labels replayed through the engine leave the
join a plain-Python oracle computes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest

from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import RejectReason, Stream
from stream_monitor.pipeline.assembly import build_models
from stream_monitor.pipeline.joiner import PredictionLabelJoiner
from stream_monitor.pipeline.label_screen import screen_labels
from stream_monitor.pipeline.local import Engine
from stream_monitor.pipeline.partition_fold import PartitionFolder
from stream_monitor.pipeline.windows import SliceFolder
from tests import event_time_hazards as hz
from tests import service_support as ss

TTL = 60.0  # the concept model's labels.ttl_seconds


def _label_folder() -> PartitionFolder:
    models = build_models(hz.label_hazard_config(), ss.concept_profile().models, ManualClock(0.0))
    return models.partition_folder("labels", 0, Stream.LABELS, 0.0)


def _label(event_id: str, ts: float, label: int = 1) -> bytes:
    return orjson.dumps({"event_id": event_id, "model_id": ss.MODEL, "ts": ts, "label": label})


def test_a_label_ahead_of_the_clock_is_refused_before_it_moves_the_label_clock() -> None:
    slices = SliceFolder(slice_seconds=0.5, allowed_lateness=1.0, max_future=300.0)
    s = screen_labels(slices, np.array([1000.0, 1000.0 + 3600.0, 1001.0]), TTL, wall=1002.0)
    assert s.keep is not None and s.keep.tolist() == [True, False, True]
    assert [(row, reason) for row, reason, _ in s.rejected] == [(1, RejectReason.FUTURE_TIMESTAMP)]
    assert "window.max_future_seconds is 300" in s.rejected[0][2]
    slices.assign(np.array([1000.0, 1001.0]))
    assert slices.max_ts == 1001.0 and slices.future_events == 1
    # behind the clock's newest label by less than the TTL: admitted, though far behind the watermark
    assert screen_labels(slices, np.array([1001.0 - TTL + 1.0]), TTL, wall=1002.0).keep is None


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_a_label_older_than_the_ttl_behind_the_newest_label_is_late_however_the_batches_are_cut(
    cut: int,
) -> None:
    ts = np.array([100.0, 170.0, 105.0, 111.0, 171.0, 40.0])  # 105 is 65 s behind 170; 40 a minute and more
    slices = SliceFolder(slice_seconds=0.5, allowed_lateness=1.0)
    late: list[int] = []
    for lo in range(0, len(ts), cut):
        s = screen_labels(slices, ts[lo : lo + cut], TTL, wall=None)
        late.extend(lo + row for row, reason, _ in s.rejected if reason is RejectReason.LATE_EVENT)
        kept = ts[lo : lo + cut] if s.keep is None else ts[lo : lo + cut][s.keep]
        slices.assign(kept)
    assert late == [2, 5]
    assert slices.late_events >= 2


def test_the_fold_dead_letters_skewed_and_too_old_labels_and_forwards_the_rest() -> None:
    folder = _label_folder()
    t0 = 1763852400.0
    batch = [
        _label("a", t0),
        _label("b", t0 + 3600.0),  # an hour ahead of the wall clock
        _label("c", t0 + 1.0),
        _label("d", t0 + 1.0 - 30 * 86400.0),  # a month back
        _label("e", t0 + 2.0),
        _label("f", t0 - TTL - 5.0),  # older than the TTL behind "e"
        _label("a", t0, 0),  # a repeat (a correction): forwarded, the join suppresses it
    ]
    result = folder.process(list(range(100, 107)), batch, now=0.0, wall=t0 + 2.0)
    assert [(r.index, r.reason.value) for r in result.rejections] == [
        (1, "future_timestamp"),
        (3, "late_event"),
        (5, "late_event"),
    ]
    assert "labels.ttl_seconds is 60" in result.rejections[1].detail
    rows = result.forwarded[ss.MODEL]
    assert rows.event_ids == ["a", "c", "e", "a"]
    assert rows.columns["offset"].tolist() == [100, 102, 104, 106]
    assert result.accepted == {ss.MODEL: 4} and result.rejected_by_model == {ss.MODEL: 3}
    assert folder.slices[ss.MODEL].max_ts == t0 + 2.0  # the hour-ahead label moved nothing


def test_the_label_clock_survives_a_snapshot() -> None:
    folder = _label_folder()
    t0 = 1763852400.0
    folder.process([0], [_label("a", t0 + 100.0)], now=0.0)
    restored = _label_folder()
    restored.restore(orjson.loads(orjson.dumps(folder.snapshot())), now=0.0)
    result = restored.process([1], [_label("b", t0 + 100.0 - TTL - 1.0)], now=0.0)
    assert [r.reason.value for r in result.rejections] == ["late_event"]


@pytest.mark.parametrize("when", ["same_batch", "waiting", "joined"])
def test_a_repeated_label_counts_once_and_the_first_wins_even_when_corrected(when: str) -> None:
    j = PredictionLabelJoiner(ttl=3600.0)
    pairs: list[Any] = []
    if when != "waiting":
        j.add_predictions(["x"], [10.0], [1.0], [0.9])
    if when == "same_batch":
        pairs.append(j.add_labels(["x", "x"], [12.0, 13.0], [1.0, 0.0]))
    else:
        pairs.append(j.add_labels(["x"], [12.0], [1.0]))
        pairs.append(j.add_labels(["x"], [13.0], [0.0]))  # the correction comes second
    if when == "waiting":
        pairs.append(j.add_predictions(["x"], [10.0], [1.0], [0.9]))
    labels = [float(v) for b in pairs for v in b.label]
    assert labels == [1.0]
    s = j.stats()
    assert (s.joined, s.duplicate_labels) == (1, 1)


N_EVENTS = 8000  # 40 s of event time


def _hazardous_concept_stream() -> tuple[dict[str, list[dict[str, Any]]], hz.LabelHazards]:
    streams = ss.concept_streams(N_EVENTS, switch=False)
    return streams, hz.label_hazards(streams["labels"], TTL)


@pytest.mark.parametrize("batch", [400, 97])
def test_hazardous_labels_through_the_engine_leave_the_join_the_oracle_computes(batch: int) -> None:
    streams, lh = _hazardous_concept_stream()
    assert lh.reasons["late_event"] > 0 and lh.reasons["future_timestamp"] > 0
    assert lh.duplicates > 0.015 * len(lh.admitted) and lh.corrections > 0
    engine = Engine(hz.label_hazard_config(), ss.concept_profile().models, ManualClock(0.0))
    reasons: Counter[str] = Counter()
    arrived = hz.arrivals(streams, lh)
    for lo in range(0, len(arrived), batch):
        block = arrived[lo : lo + batch]
        for stream in ss.CONCEPT_STREAMS:
            events = [e for k, e in block if k == stream]
            if events:
                result = engine.process_events(Stream(stream), events)
                reasons.update(f"{stream}:{r.reason.value}" for r in result.rejections)
    engine.flush()
    assert reasons == Counter({f"labels:{k}": n for k, n in lh.reasons.items()})
    perf = engine.pipelines[ss.MODEL].performance
    assert perf is not None
    cfg = hz.label_hazard_config().models[ss.MODEL]
    oracle = hz.oracle_join(
        streams["predictions"], lh.admitted, cfg.performance.bucket_seconds, cfg.labels.freshness_sla_seconds
    )
    hz.assert_join_equals_oracle(perf, oracle, lh)
