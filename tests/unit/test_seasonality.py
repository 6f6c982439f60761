"""Seasonality, mechanism by mechanism: finding cycles, phase tables, the phase mixture a window is compared
with, thresholds calibrated on that mixture, the config that turns it on, and the slices a window remembers."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from stream_monitor.config.loading import parse_config
from stream_monitor.core.alerts import WindowInfo
from stream_monitor.core.errors import ConfigError
from stream_monitor.detectors.calibration import ThresholdCalibrator
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.seasonal_expectations import SeasonalExpectations
from stream_monitor.pipeline.windows import ClosedSlice, ClosedWindow, WindowAssembler
from stream_monitor.stats.phase_mixture import expected_profile, phase_weights, weight_signature
from stream_monitor.stats.phase_profiles import (
    PhaseCounts,
    PhaseTable,
    SeasonalityProfile,
    build_phase_table,
    phase_of,
)
from stream_monitor.stats.profiles import CategoricalProfile, ModelProfile, NumericProfile, ReferenceProfile
from stream_monitor.stats.reference_tallies import numeric_profile
from stream_monitor.stats.seasonality import find_periods
from stream_monitor.stats.sketch_layout import NumericSignal, SketchLayout
from stream_monitor.stats.sketches import WindowSketch

DAY = 86400.0
HOUR = 3600.0


def _times(days: float, n: int, seed: int) -> np.ndarray[Any, Any]:
    return np.sort(np.random.default_rng(seed).uniform(0.0, days * DAY, n))


# ---- finding cycles --------------------------------------------------------------------------------------------
def test_a_daily_cycle_in_ten_days_is_found_and_white_noise_has_none() -> None:
    rng = np.random.default_rng(3)
    ts = _times(10, 40_000, seed=3)
    daily = 0.5 * np.sin(2 * np.pi * ts / DAY) + rng.normal(0.0, 1.0, ts.size)
    found = find_periods(ts, daily, "x")
    assert [(f.signal, f.period_seconds) for f in found] == [("x", DAY)]
    assert found[0].autocorrelation > 0.8 and found[0].half_period_autocorrelation < -0.5
    assert find_periods(ts, rng.normal(0.0, 1.0, ts.size), "noise") == []
    assert find_periods(ts) == []  # a uniform event rate


def test_a_trend_is_not_a_cycle_and_a_daily_cycle_is_not_also_weekly() -> None:
    rng = np.random.default_rng(4)
    ts = _times(10, 40_000, seed=4)
    walk = np.cumsum(rng.normal(0.0, 0.05, ts.size))  # slow wandering: high autocorrelation at every lag
    assert find_periods(ts, walk, "walk") == []
    long = _times(22, 60_000, seed=5)  # three weeks: a week is a candidate, and a multiple of the day
    daily = np.sin(2 * np.pi * long / DAY) + rng.normal(0.0, 1.0, long.size)
    assert [f.period_seconds for f in find_periods(long, daily, "x")] == [DAY]


def test_the_event_rate_cycle_is_found_from_event_times_alone() -> None:
    rng = np.random.default_rng(6)
    candidates = _times(10, 200_000, seed=6)
    busy_by_day = 0.5 + 0.5 * np.sin(2 * np.pi * candidates / DAY)  # thinning: more events at the peak
    ts = candidates[rng.uniform(size=candidates.size) < busy_by_day]
    assert [f.period_seconds for f in find_periods(ts)] == [DAY]


def test_a_cycle_covered_fewer_than_three_times_is_not_tried() -> None:
    rng = np.random.default_rng(7)
    ts = _times(2.5, 20_000, seed=7)
    daily = np.sin(2 * np.pi * ts / DAY) + rng.normal(0.0, 0.1, ts.size)
    assert DAY not in [f.period_seconds for f in find_periods(ts, daily, "x")]


# ---- phase tables ----------------------------------------------------------------------------------------------
def test_phase_of_is_epoch_aligned_and_in_range() -> None:
    ts = np.array([0.0, HOUR - 1e-9, HOUR, 23.5 * HOUR, DAY, 3 * DAY + 5 * HOUR])
    assert phase_of(ts, DAY, 24).tolist() == [0, 0, 1, 23, 0, 5]


def test_phase_tables_count_on_the_whole_profiles_edges_and_coarsen_exactly() -> None:
    rng = np.random.default_rng(8)
    ts = _times(6, 30_000, seed=8)
    x = np.sin(2 * np.pi * ts / DAY) + rng.normal(0.0, 0.5, ts.size)
    x[::50] = np.nan  # missing values are left out
    whole = numeric_profile(x, nulls=int(np.isnan(x).sum()))
    table = build_phase_table(ts, {"x": (x, whole.edges)}, DAY, 24)
    pc = table.features["x"]
    assert pc.counts.shape == (24, whole.n_bins)
    assert np.array_equal(pc.counts.sum(axis=0), whole.counts)  # the phases partition the whole profile
    assert table.events.sum() == ts.size
    noon = phase_of(np.array([12 * HOUR]), DAY, 24)[0]
    assert abs(pc.mean[6] - 1.0) < 0.1 and abs(pc.mean[18] + 1.0) < 0.1 and noon == 12
    direct = build_phase_table(ts, {"x": (x, whole.edges)}, DAY, 6)
    coarse = table.coarsen(6)
    assert np.array_equal(coarse.features["x"].counts, direct.features["x"].counts)
    assert np.allclose(coarse.features["x"].mean, direct.features["x"].mean)
    assert np.allclose(coarse.features["x"].std, direct.features["x"].std)
    with pytest.raises(ValueError, match="do not divide"):
        table.coarsen(5)


def test_within_phase_correlations_leave_out_what_a_shared_cycle_adds() -> None:
    rng = np.random.default_rng(11)
    ts = _times(6, 30_000, seed=11)
    cycle = 2 * np.sin(2 * np.pi * ts / DAY)
    common = rng.normal(0.0, 1.0, ts.size)  # a, b also share a within-phase component; c only the cycle
    z = np.stack([cycle + common + rng.normal(0, 1, ts.size), cycle + common + rng.normal(0, 1, ts.size)], 1)
    z = np.column_stack([z, cycle + rng.normal(0.0, 1.0, ts.size)])
    valid = np.ones_like(z, dtype=bool)
    valid[::7, 0] = False  # a missing value is left out of its pairs
    whole = np.corrcoef(z.T)
    table = build_phase_table(ts, {}, DAY, 24, (z, valid))
    assert table.correlation is not None
    assert whole[0, 2] > 0.5 and abs(table.correlation[0, 2]) < 0.05  # the cycle only
    assert table.correlation[0, 1] == pytest.approx(0.5, abs=0.03)  # within a phase: 1 / (1 + 1)
    coarse = table.coarsen(4)
    assert coarse.correlation is table.correlation


def test_a_reference_round_trips_its_seasonality_and_an_old_one_loads_without() -> None:
    ts = _times(4, 4_000, seed=9)
    x = np.sin(2 * np.pi * ts / DAY)
    whole = numeric_profile(x, nulls=0)
    found = tuple(find_periods(ts, x, "x"))
    pair = np.column_stack([x, x + np.random.default_rng(9).normal(0.0, 1.0, ts.size)])
    scores = (pair, np.ones_like(pair, dtype=bool))
    season = SeasonalityProfile(found, (build_phase_table(ts, {"x": (x, whole.edges)}, DAY, 24, scores),))
    model = ModelProfile("m", ts.size, float(ts[0]), float(ts[-1]), {"x": whole}, seasonality=season)
    back = ReferenceProfile.from_json(ReferenceProfile({"m": model}).to_json()).models["m"]
    assert back.seasonality is not None and len(found) == 1
    assert [(f.signal, f.period_seconds) for f in back.seasonality.found] == [("x", DAY)]
    assert back.seasonality.found[0].autocorrelation == pytest.approx(found[0].autocorrelation, abs=1e-4)
    table = back.seasonality.table(DAY)
    assert table is not None and np.array_equal(
        table.features["x"].counts, season.tables[0].features["x"].counts
    )
    assert table.correlation is not None and season.tables[0].correlation is not None
    assert table.correlation == pytest.approx(season.tables[0].correlation, abs=1e-6)
    old = ModelProfile("m", ts.size, float(ts[0]), float(ts[-1]), {"x": whole}).to_dict()
    del old["seasonality"]
    raw = b'{"format": "stream-monitor.reference/v1", "models": {"m": %s}}' % orjson.dumps(old)
    assert ReferenceProfile.from_json(raw).models["m"].seasonality is None


# ---- the phase mixture -----------------------------------------------------------------------------------------
def test_phase_weights_follow_the_slices_events_and_split_a_slice_that_straddles_phases() -> None:
    # two 150 s slices in phase 0 (of 24 one-hour phases), one in phase 1
    w = phase_weights(np.array([0.0, 150.0, HOUR]), np.full(3, 150.0), np.array([10, 30, 60]), DAY, 24)
    assert w[0] == pytest.approx(0.4) and w[1] == pytest.approx(0.6) and w.sum() == pytest.approx(1.0)
    # a slice from 45 to 75 minutes: half its events in each phase
    w = phase_weights(np.array([45 * 60.0]), np.array([1800.0]), np.array([80]), DAY, 24)
    assert w[0] == pytest.approx(0.5) and w[1] == pytest.approx(0.5)
    assert weight_signature(np.array([0.34, 0.33, 0.33])) == (7, 7, 6)  # twentieths, still summing to 20


def _two_phase_table() -> tuple[NumericProfile, PhaseTable]:
    """Phase 0 of a 2-phase cycle puts its values in bin 0 mostly, phase 1 in bin 2."""
    counts = np.array([[800, 150, 50], [100, 300, 600]], dtype=np.int64)
    whole = NumericProfile(
        count=2000,
        nulls=0,
        edges=np.array([0.0, 1.0]),
        counts=counts.sum(axis=0),
        mean=0.6,
        std=1.0,
        min=-3.0,
        max=4.0,
    )
    table = PhaseTable(HOUR, 2, counts.sum(axis=1), {"x": _phase_counts(counts, [-0.5, 1.7], [0.6, 0.8])})
    return whole, table


def _phase_counts(counts: Any, mean: list[float], std: list[float]) -> PhaseCounts:
    return PhaseCounts(np.asarray(counts, dtype=np.int64), np.array(mean), np.array(std))


def test_the_expected_profile_is_the_event_weighted_mixture_of_the_phases() -> None:
    whole, table = _two_phase_table()
    pc = table.features["x"]
    only_first = expected_profile(whole, pc, (20, 0), prior=0.0)  # thin phases are not shrunk here
    assert only_first.counts.tolist() == [800, 150, 50] and only_first.count == 1000
    assert only_first.mean == pytest.approx(-0.5) and only_first.std == pytest.approx(0.6)
    mixed = expected_profile(
        whole, pc, (15, 5), prior=0.0
    )  # three quarters of the window's events in phase 0
    probs = 0.75 * np.array([0.8, 0.15, 0.05]) + 0.25 * np.array([0.1, 0.3, 0.6])
    assert mixed.counts / mixed.counts.sum() == pytest.approx(probs, abs=1e-3)
    assert mixed.count == round(1 / (0.75**2 / 1000 + 0.25**2 / 1000))  # effective reference size
    assert mixed.mean == pytest.approx(0.75 * -0.5 + 0.25 * 1.7)
    second = 0.75 * (0.6**2 + 0.25) + 0.25 * (0.8**2 + 1.7**2)
    assert mixed.std == pytest.approx(np.sqrt(second - mixed.mean**2))
    assert (mixed.min, mixed.max, mixed.nulls) == (
        whole.min,
        whole.max,
        whole.nulls,
    )  # the rest is the whole's


def test_a_phase_the_reference_never_saw_is_judged_by_the_whole_profile() -> None:
    whole, _ = _two_phase_table()
    pc = _phase_counts(np.array([[800, 150, 50], [0, 0, 0]]), [-0.5, float("nan")], [0.6, float("nan")])
    gap = expected_profile(whole, pc, (0, 20))
    assert gap.counts / gap.counts.sum() == pytest.approx(whole.counts / whole.counts.sum(), abs=1e-3)
    assert gap.mean == pytest.approx(whole.mean)


def test_thresholds_calibrated_on_the_mixture_hold_the_budget_where_the_whole_profile_fires() -> None:
    """Windows drawn from phase 0 are normal for phase 0: the mixture's calibrator passes nearly all, the
    whole profile's flags every one."""
    whole, table = _two_phase_table()
    expected = expected_profile(whole, table.features["x"], (20, 0))
    kw: dict[str, Any] = {"alpha_warning": 1e-3, "alpha_critical": 1e-4, "floors": (0.1, 0.25), "seed": 0}
    matched, unmatched = (
        ThresholdCalibrator("psi", expected.counts, **kw),
        ThresholdCalibrator("psi", whole.counts, **kw),
    )
    rng = np.random.default_rng(10)
    windows = rng.multinomial(1000, [0.8, 0.15, 0.05], size=300)
    flagged_matched = sum(matched.statistic_of(c) >= matched.thresholds(1000).warning for c in windows)
    flagged_whole = sum(unmatched.statistic_of(c) >= unmatched.thresholds(1000).warning for c in windows)
    assert flagged_matched <= 3 and flagged_whole == 300


def _layout(seasonality: Any, features: dict[str, Any] | None = None) -> ModelLayout:
    whole, table = _two_phase_table()
    cat = CategoricalProfile(count=10, nulls=0, categories=("a",), counts=np.array([10, 0]), distinct=1)
    profile = ModelProfile(
        "m",
        2000,
        0.0,
        4 * HOUR,
        {"x": whole, "y": whole, "c": cat},
        seasonality=SeasonalityProfile(
            (), (PhaseTable(HOUR, 2, table.events, {"x": table.features["x"], "y": table.features["x"]}),)
        ),
    )
    raw: dict[str, Any] = {"reference": "r.json", "features": features or {}}
    if seasonality is not None:
        raw["seasonality"] = seasonality
    cfg = parse_config({"models": {"m": raw}}).models["m"]
    return ModelLayout.build("m", cfg, profile)


def test_windows_of_the_same_phase_mix_share_one_expected_profile_and_calibrator() -> None:
    layout = _layout({"period_seconds": HOUR, "phases": 2}, {"y": {"seasonality": False}})
    made: list[NumericProfile] = []

    def make(role: str, name: str, prof: NumericProfile, seed: int) -> ThresholdCalibrator:
        made.append(prof)
        return ThresholdCalibrator("psi", prof.counts, 1e-3, 1e-4, (0.1, 0.25), seed=seed)

    seasonal = SeasonalExpectations(layout, make)
    assert seasonal.cyclic == {0}  # x only: y is off, c is categorical
    sk = WindowSketch(layout.sketch)
    morning = ClosedWindow(WindowInfo(0.0, 600.0, 100), sk, ((0, 100),), 600.0)
    next_hour = ClosedWindow(WindowInfo(HOUR, HOUR + 600.0, 50), sk, ((6, 50),), 600.0)
    evening = ClosedWindow(WindowInfo(1800.0, 2400.0, 100), sk, ((3, 100),), 600.0)
    a, b, c = (seasonal.for_window(w)[0][0] for w in (morning, next_hour, evening))
    assert a.profile is b.profile and a.calibrator is b.calibrator and len(made) == 2
    whole, table = _two_phase_table()
    for window, signature in ((a, (20, 0)), (c, (0, 20))):  # each phase's own profile (thin ones shrunk)
        assert (
            window.profile.counts.tolist()
            == expected_profile(whole, table.features["x"], signature).counts.tolist()
        )
    assert a.profile.counts.argmax() == 0 and c.profile.counts.argmax() == 2
    assert a.details["phase_weights"] == {"0": 1.0} and a.details["period_seconds"] == HOUR


# ---- the config ------------------------------------------------------------------------------------------------
def test_a_feature_setting_overrides_the_models_and_off_turns_it_off() -> None:
    layout = _layout({"period_seconds": HOUR, "phases": 2}, {"y": {"seasonality": "off"}})
    assert set(layout.phase_tables) == {"x"} and layout.phase_tables["x"].phases == 2
    assert set(_layout(None, {"y": {"seasonality": {"period_seconds": HOUR, "phases": 1}}}).phase_tables) == {
        "y"
    }
    assert _layout("off").phase_tables == {} and _layout(False).phase_tables == {}  # YAML's bare `off`


@pytest.mark.parametrize(
    ("seasonality", "features", "where", "says"),
    [
        ({"period_seconds": DAY}, None, "models.m.seasonality", "no phase profiles for a 86400 s cycle"),
        ({"period_seconds": HOUR, "phases": 4}, None, "models.m.seasonality", "4 phases do not divide"),
        (
            None,
            {"c": {"seasonality": {"period_seconds": HOUR}}},
            "models.m.features.c.seasonality",
            "no phase profiles of c",
        ),
    ],
)
def test_a_cycle_the_reference_cannot_serve_is_a_config_error(
    seasonality: Any, features: Any, where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _layout(seasonality, features)
    assert [p for p, _ in err.value.problems] == [where] and says in err.value.problems[0][1]


def test_the_seasonality_keys_are_validated() -> None:
    for bad in ({"period_seconds": 0}, {"period_seconds": HOUR, "phases": 0}, {"phases": 24}, "on"):
        with pytest.raises(ConfigError, match="seasonality"):
            parse_config({"models": {"m": {"reference": "r.json", "seasonality": bad}}})


# ---- the slices a window remembers -----------------------------------------------------------------------------
def _slice(layout: SketchLayout, slice_id: int, events: int) -> ClosedSlice:
    sk = WindowSketch(layout)
    sk.count_events("features", np.full(events, slice_id + 0.5))
    return ClosedSlice(slice_id, sk)


def test_a_closed_window_knows_its_slices_events_across_a_snapshot() -> None:
    prof = NumericProfile(
        count=10, nulls=0, edges=np.array([0.0]), counts=np.array([5, 5]), mean=0, std=1, min=-1, max=1
    )
    layout = SketchLayout([NumericSignal("x", "feature", prof)], [])
    asm = WindowAssembler(slice_seconds=1.0, max_events=100, max_seconds=10.0)
    asm.add(_slice(layout, 3, 20))
    again = WindowAssembler(slice_seconds=1.0, max_events=100, max_seconds=10.0)
    again.restore(asm.snapshot(), layout)
    (window,) = again.add(_slice(layout, 4, 90))
    assert window.slices == ((3, 20), (4, 90)) and window.slice_seconds == 1.0
    starts, lengths, events = window.spans()
    assert starts.tolist() == [3.0, 4.0] and lengths.tolist() == [1.0, 1.0] and events.tolist() == [20, 90]
    # a snapshot from before slices were recorded: the window is judged by its whole span
    old = asm.snapshot()
    del old["slices"]
    before = WindowAssembler(slice_seconds=1.0, max_events=100, max_seconds=10.0)
    before.restore(old, layout)
    (window,) = before.add(_slice(layout, 4, 90))
    starts, lengths, events = window.spans()
    assert (
        window.slices == ()
        and starts.tolist() == [3.0]
        and lengths.tolist() == [2.0]
        and events.tolist() == [110]
    )
