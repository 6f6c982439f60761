"""The event-time screen, rule by rule: future timestamps refused before they move the watermark, events
behind the watermark they met refused as late (whatever the batches), repeated event ids suppressed within
the open slices and kept across a snapshot; both feature decode paths and the prediction path."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from stream_monitor.config.loading import parse_config
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import RejectReason, Stream
from stream_monitor.pipeline.assembly import build_models
from stream_monitor.pipeline.partition_fold import PartitionFolder
from stream_monitor.pipeline.recent_ids import RecentIds
from stream_monitor.pipeline.windows import ADMITTED, FUTURE, LATE, SliceFolder
from stream_monitor.stats.profiles import NumericProfile
from stream_monitor.stats.sketch_layout import NumericSignal, SketchLayout
from stream_monitor.stats.sketches import WindowSketch
from tests import event_time_hazards as hz
from tests import service_support as ss

PROF = NumericProfile(
    count=10, nulls=0, edges=np.array([0.0]), counts=np.array([5, 5]), mean=0, std=1, min=-1, max=1
)
LAYOUT = SketchLayout([NumericSignal("x", "feature", PROF)], [])


def _fold(folder: SliceFolder, ts: np.ndarray) -> np.ndarray:
    """Screen a batch, fold what it admits (as the partition fold does) and drain: the verdicts."""
    verdict = folder.screen(ts)
    ids, _ = folder.assign(ts[verdict == ADMITTED])
    for s in set(ids.tolist()):
        folder.sketch(s, lambda: WindowSketch(LAYOUT))
    folder.drain()
    return verdict


def test_a_future_timestamp_is_refused_before_it_moves_the_watermark() -> None:
    clock = ManualClock(1000.0)
    folder = SliceFolder(slice_seconds=1.0, allowed_lateness=2.0, max_future=300.0)
    verdict = folder.screen(np.array([990.0, 1000.0 + 3600.0, 996.0, 995.0]), wall=clock.now())
    assert verdict.tolist() == [ADMITTED, FUTURE, ADMITTED, ADMITTED]  # 995 is not late behind 4600
    assert folder.future_events == 1
    folder.assign(np.array([990.0, 996.0, 995.0]))
    assert folder.watermark == 994.0  # the hour-ahead event moved nothing
    clock.advance(3600.0)  # the same time is no longer ahead of the clock
    assert folder.screen(np.array([4600.0]), wall=clock.now()).tolist() == [ADMITTED]


def test_without_a_wall_clock_the_batch_median_and_the_latest_time_are_the_reference() -> None:
    folder = SliceFolder(slice_seconds=1.0, allowed_lateness=2.0, max_future=60.0)
    ts = np.array([100.0, 101.0, 4000.0, 102.0, 103.0])
    assert folder.screen(ts).tolist() == [ADMITTED, ADMITTED, FUTURE, ADMITTED, ADMITTED]
    folder.assign(np.array([100.0, 101.0, 102.0, 103.0]))
    # a batch mostly ahead of the stream is believed (a gap in a replayed file must not refuse the rest of it)
    assert folder.screen(np.array([104.0, 500.0, 501.0])).tolist() == [ADMITTED, ADMITTED, ADMITTED]
    off = SliceFolder(slice_seconds=1.0, allowed_lateness=2.0)  # no bound configured
    assert off.screen(np.array([100.0, 1e9])).tolist() == [ADMITTED, ADMITTED]


def test_an_event_behind_the_watermark_it_met_is_late_however_the_batches_are_cut() -> None:
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.exponential(0.05, 3000))
    back = rng.random(3000) < 0.1
    ts[back] -= rng.uniform(0.0, 5.0, back.sum())  # some within the 1 s bound, most beyond it
    whole = _fold(SliceFolder(0.5, 1.0), ts)
    assert 50 < (whole == LATE).sum() < back.sum()
    for cut in ([1], [7, 500, 501, 2999], sorted(rng.choice(3000, 40, replace=False).tolist())):
        folder = SliceFolder(0.5, 1.0)
        parts = [_fold(folder, part) for part in np.split(ts, cut)]
        assert np.concatenate(parts).tolist() == whole.tolist()
    # the rule itself: late exactly when its slice is below the one (max time before it - lateness) is in
    before = np.maximum.accumulate(np.concatenate(([-np.inf], ts[:-1])))
    expected = np.floor(ts / 0.5) < np.floor((before - 1.0) / 0.5 + 1e-9)
    assert (whole == LATE).tolist() == expected.tolist()


def test_repeated_ids_are_suppressed_while_their_slice_is_open_then_the_repeat_is_late() -> None:
    folder = SliceFolder(slice_seconds=1.0, allowed_lateness=0.5)
    ids = np.array([11, 12, 11, 13], dtype=np.uint64)
    ts = np.array([10.1, 10.2, 10.1, 10.3])
    assert folder.fresh(ids, ts).tolist() == [True, True, False, True]
    assert folder.fresh(np.array([12], np.uint64), np.array([10.2])).tolist() == [False]
    assert folder.duplicate_events == 2 and len(folder.recent) == 3
    folder.assign(np.array([10.1, 10.2, 10.3, 12.0]))
    folder.sketch(10, lambda: WindowSketch(LAYOUT))
    assert [c.slice_id for c in folder.drain()] == [10]
    assert len(folder.recent) == 0  # forgotten with their slice: memory is the open slices'
    assert folder.screen(np.array([10.2])).tolist() == [LATE]  # a later repeat is late, not folded


# ---- the partition fold: both decode paths, predictions, snapshots --------------------------------------
def _events(n: int = 400) -> list[dict[str, Any]]:
    return ss.live_events(n, drifting=False)


def _folder(cfg: Any, stream: Stream = Stream.FEATURES, profile: Any = None) -> PartitionFolder:
    models = build_models(cfg, (profile or ss.profile()).models, ManualClock(0.0))
    return models.partition_folder("features", 0, stream, 0.0)


def _hazards(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with an hour-ahead one at 100, a repeat of 150 at 160 and a 10 s late one at 390."""
    out = [dict(e) for e in events]
    out[100]["ts"] += 3600.0
    out[160] = {**out[150]}
    out[390]["ts"] -= 10.0
    return out


@pytest.mark.parametrize("path", ["typed", "orjson"])
def test_the_fold_dead_letters_skewed_and_late_events_at_their_positions(path: str) -> None:
    events = _hazards(_events())
    folder = _folder(hz.hazard_config())
    wall = events[0]["ts"] + 60.0
    offsets = list(range(1000, 1000 + len(events)))
    if path == "typed":
        values = [b"not json", *(orjson.dumps(e) for e in events)]
        result = folder.process([999, *offsets], values, 0.0, wall=wall)
        shift = 1
    else:
        result = folder.process_events(offsets, events, 0.0, wall=wall)
        shift = 0
    refused = {r.index - shift: r.reason for r in result.rejections if r.reason != RejectReason.NOT_JSON}
    assert refused == {100: RejectReason.FUTURE_TIMESTAMP, 390: RejectReason.LATE_EVENT}
    assert "ahead of the clock" in next(r.detail for r in result.rejections if r.index == 100 + shift)
    assert result.duplicates == {ss.MODEL: 1}
    assert result.accepted == {ss.MODEL: len(events) - 3}
    assert result.rejected_by_model[ss.MODEL] == 2
    assert folder.slices[ss.MODEL].max_ts < events[0]["ts"] + 10  # the future event moved no watermark


def test_predictions_are_screened_on_the_fold() -> None:
    cfg = ss.concept_config()
    streams = ss.concept_streams(400, switch=False)
    preds = [dict(p) for p in streams["predictions"][:400]]
    preds[50]["ts"] += 3600.0
    preds[300]["ts"] -= 60.0
    raw = cfg.model_dump()
    raw["models"][ss.MODEL]["window"]["max_future_seconds"] = 300.0
    folder = _folder(parse_config(raw), Stream.PREDICTIONS, ss.concept_profile())
    result = folder.process_events(list(range(len(preds))), preds, 0.0)
    assert {r.index: r.reason for r in result.rejections} == {
        50: RejectReason.FUTURE_TIMESTAMP,
        300: RejectReason.LATE_EVENT,
    }
    forwarded = result.forwarded[ss.MODEL]  # this model's predictions go to stage 2's join
    assert len(forwarded) == len(preds) - 2 and 50 not in forwarded.columns["offset"].tolist()


def test_the_repeat_filter_survives_a_snapshot_and_an_old_snapshot_restores() -> None:
    events = _events()
    folder = _folder(hz.hazard_config())
    folder.process_events(list(range(200)), events[:200], 0.0)
    state = orjson.loads(orjson.dumps(folder.snapshot()))
    resumed = _folder(hz.hazard_config())
    resumed.restore(state, 0.0)
    again = resumed.process_events([200, 201], [events[199], events[200]], 0.0)
    assert again.duplicates == {ss.MODEL: 1} and again.accepted == {ss.MODEL: 1}
    # a snapshot written before the screen existed: restores, with no ids remembered and counts from zero
    for key in ("future", "duplicates", "recent"):
        del state["models"][ss.MODEL]["slices"][key]
    old = _folder(hz.hazard_config())
    old.restore(state, 0.0)
    assert old.slices[ss.MODEL].duplicate_events == 0 and len(old.slices[ss.MODEL].recent) == 0
    assert old.process_events([200], [events[200]], 0.0).accepted == {ss.MODEL: 1}


def test_the_repeat_filter_agrees_with_a_dict_of_what_is_held() -> None:
    """Random batches of ids (many repeats, forgotten ids coming back) and floors that move on: the filter
    says "fresh" exactly when a plain dict of id -> slice holds no live copy, and its snapshot holds the
    live ones."""
    rng = np.random.default_rng(5)
    ids, held = RecentIds(), {}
    floor = 0
    for step in range(400):
        keys = rng.integers(2, 3000, int(rng.integers(1, 300))).astype(np.uint64)
        slices = np.full(len(keys), floor + int(rng.integers(0, 4)), np.int64)
        expected = []
        for k, s in zip(keys.tolist(), slices.tolist(), strict=True):
            live = k in held and held[k] >= floor
            expected.append(not live)
            if not live:
                held[k] = s
        assert ids.fresh(keys, slices).tolist() == expected, step
        if rng.random() < 0.3:
            floor += int(rng.integers(1, 3))
            ids.forget_before(floor)
        assert len(ids) == sum(s >= floor for s in held.values())
    snap = ids.snapshot()
    got = {int(h): int(s) for s, hexes in snap.items() for h in np.frombuffer(bytes.fromhex(hexes), "<u8")}
    assert got == {k: s for k, s in held.items() if s >= floor}
