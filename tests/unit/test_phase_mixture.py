"""Phase mixtures beyond one numeric feature: thin phases shrunk toward their neighbours (costing power, not
false alarms, and reported), a categorical feature's per-phase frequencies, several cycles judged jointly,
and the CUSUM's allowance for a cycle's movement within a phase."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_monitor.cli.reference_build import thin_phase_notes
from stream_monitor.config.loading import parse_config
from stream_monitor.detectors.calibration import MeanShiftCalibrator, ThresholdCalibrator
from stream_monitor.pipeline.mean_shift_cusums import MeanShiftCusums
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.seasonal_expectations import SeasonalExpectations, phase_coverage, phase_edges
from stream_monitor.pipeline.windows import ClosedWindow, WindowInfo
from stream_monitor.stats.phase_mixture import SHRINK_VALUES, expected_categories, expected_profile, shrinkage
from stream_monitor.stats.phase_model import JointPhaseModel
from stream_monitor.stats.phase_profiles import PhaseCounts, PhaseTable, SeasonalityProfile
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder
from stream_monitor.stats.sketches import WindowSketch

HOUR = 3600.0
NAN24 = np.full(24, np.nan)


def test_a_thin_phase_is_shrunk_toward_its_neighbours_by_how_few_values_it_holds() -> None:
    values = np.full(24, 5000.0)
    values[5], values[9] = 20.0, 0.0
    s = shrinkage(values)
    assert s.sum(axis=1) == pytest.approx(np.ones(24))
    assert s[5, 5] < 0.15 and s[5, 4] > 0.4 and s[5, 6] > 0.4  # thin: mostly its neighbours'
    assert s[0, 0] == pytest.approx(
        5000 / (5000 + SHRINK_VALUES) + SHRINK_VALUES / (5000 + SHRINK_VALUES) / 3
    )
    assert s[9].tolist() == np.eye(24)[9].tolist()  # a phase never seen is judged by the whole profile
    assert s[8, 9] == 0.0  # and lends nothing to its neighbours
    assert shrinkage(values, prior=0.0).tolist() == np.eye(24).tolist()


def _cycle_probs(bins: int = 10) -> np.ndarray[Any, Any]:
    """A smooth daily cycle of a binned signal: each phase's bin shares, the mode moving with the phase."""
    centre = 4.5 + 2.0 * np.sin(2 * np.pi * (np.arange(24) + 0.5) / 24)
    logits = -0.5 * (np.arange(bins)[None, :] - centre[:, None]) ** 2 / 4.0
    probs = np.exp(logits)
    return np.asarray(probs / probs.sum(axis=1, keepdims=True))


def test_a_thin_reference_costs_power_not_false_alarms() -> None:
    """References of 40 values a phase, shrunk and calibrated on the shrunk mixture: windows of the same
    process stay under their thresholds as often as the budget says, and the expectation is surer (larger
    effective size) than the thin phase alone."""
    truth = _cycle_probs()
    rng = np.random.default_rng(7)
    flagged = tested = 0
    for draw in range(12):
        counts = np.stack([rng.multinomial(40, p) for p in truth]).astype(np.int64)
        whole = NumericProfile(
            int(counts.sum()), 0, np.arange(1.0, 10.0), counts.sum(axis=0), 4.5, 2.0, 0.0, 10.0
        )
        pc = PhaseCounts(counts, np.full(24, 4.5), np.full(24, 2.0))
        phase = draw % 24
        signature = tuple(20 if k == phase else 0 for k in range(24))
        shrunk = expected_profile(whole, pc, signature)
        assert shrunk.count > 40  # the neighbourhood adds what the thin phase lacks
        cal = ThresholdCalibrator("psi", shrunk.counts, 1e-3, 1e-4, floors=(0.0, 0.0), seed=draw)
        warning = cal.thresholds(500).warning
        windows = rng.multinomial(500, truth[phase], size=200)
        flagged += sum(cal.statistic_of(w) >= warning for w in windows)
        tested += len(windows)
    assert flagged / tested <= 0.01  # at a budget of 1e-3 a window, with room for the chi-square tail fit


def test_a_categorical_feature_is_judged_by_its_per_phase_frequencies() -> None:
    """The reference counts a categorical feature per phase on its profile's categories (and "other"),
    ``reference build`` finds its cycle, and a window is judged by the mixture of its phases."""
    builder = ReferenceBuilder(seed=0)
    rng = np.random.default_rng(3)
    ts = 1_763_766_000.0 + np.sort(rng.uniform(0, 6 * HOUR, 20_000))
    busy = np.sin(2 * np.pi * ts / HOUR) > 0  # "a" in the first half of each hour, "b" in the second
    plan = np.where(rng.random(ts.size) < 0.8, np.where(busy, "a", "b"), "c")
    builder.add_features(
        {"event_id": str(i), "model_id": "m", "ts": t, "features": {"plan": p, "x": float(rng.normal())}}
        for i, (t, p) in enumerate(zip(ts.tolist(), plan.tolist(), strict=True))
    )
    profile = builder.build().models["m"]
    assert profile.seasonality is not None
    assert ("plan", HOUR) in [(f.signal, f.period_seconds) for f in profile.seasonality.found]
    table = profile.seasonality.table(HOUR)
    assert table is not None
    pc = table.features["plan"]
    whole = profile.features["plan"]
    assert isinstance(whole, CategoricalProfile) and pc.counts.shape == (24, whole.n_bins)
    assert pc.values.sum() == 20_000 and not np.isfinite(pc.mean).any()
    a = whole.categories.index("a")
    assert pc.counts[2, a] / pc.values[2] > 0.7 and pc.counts[20, a] / pc.values[20] < 0.1

    first_hour = tuple(20 if k == 2 else 0 for k in range(24))
    expected = expected_categories(whole, pc, first_hour, prior=0.0)
    assert expected.counts.tolist() == pc.counts[2].tolist() and expected.count == pc.values[2]
    mixed = expected_categories(whole, pc, tuple(10 if k in (2, 20) else 0 for k in range(24)), prior=0.0)
    want = 0.5 * pc.counts[2] / pc.values[2] + 0.5 * pc.counts[20] / pc.values[20]
    assert mixed.counts / mixed.counts.sum() == pytest.approx(want, abs=2e-3)

    cfg = parse_config(
        {
            "models": {
                "m": {"reference": "r.json", "features": {"plan": {"seasonality": {"period_seconds": HOUR}}}}
            }
        }
    ).models["m"]
    layout = ModelLayout.build("m", cfg, profile)
    seasonal = SeasonalExpectations(layout, lambda role, name, prof, seed: name)
    sk = WindowSketch(layout.sketch)
    window = ClosedWindow(WindowInfo(0.0, 150.0, 100), sk, ((round(2 * HOUR / 24 / 150.0), 100),), 150.0)
    numeric, categorical = seasonal.for_window(window)
    j = layout.categorical_features.index("plan")
    assert numeric == {} and categorical[j].calibrator == "plan"
    assert (
        categorical[j].profile.counts.tolist() == expected_categories(whole, pc, first_hour).counts.tolist()
    )


def test_several_cycles_judged_jointly_reproduce_each_cycles_phases() -> None:
    """A signal moved by a slow and a fast cycle at once: the joint law's average over a slow phase gives
    that phase's profile back, and a window at one time sees both cycles' effects."""
    slow = _cycle_probs()
    fast = np.roll(_cycle_probs(), 6, axis=0)  # another cycle of the same shape, a quarter out of step
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 3 * 86400, 200_000))
    k_slow = np.floor((t % 86400) / 3600).astype(int)
    k_fast = np.floor((t % 900) / 37.5).astype(int)
    logits = np.log(slow[k_slow]) + np.log(fast[k_fast])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    bins = (probs.cumsum(axis=1) < rng.random(len(t))[:, None]).sum(axis=1)
    counts = [np.zeros((24, 10), dtype=np.int64) for _ in range(2)]
    np.add.at(counts[0], (k_slow, bins), 1)
    np.add.at(counts[1], (k_fast, bins), 1)
    profiles = [PhaseCounts(c, NAN24, NAN24) for c in counts]
    model = JointPhaseModel.fit(profiles, [(86400.0, 24), (900.0, 24)], (0.0, 3 * 86400.0))
    at = np.array([10 * 3600.0 + 37.5 * 3 + 1.0])  # 10:00, the fast cycle's phase 3
    expected, size = model.expected(at, np.ones(1))
    truth = np.exp(np.log(slow[10]) + np.log(fast[3]))
    assert expected == pytest.approx(truth / truth.sum(), abs=0.02)
    assert 1000 < size < min(c[10].sum() for c in counts)  # no surer than either cycle's phase alone
    alone = counts[0][10] / counts[0][10].sum()  # the slow cycle's phase: the fast cycle averaged out
    assert np.abs(alone - truth / truth.sum()).max() > 0.05


def test_the_cusum_allows_a_slow_cycles_movement_within_a_phase_a_window_covers_in_part() -> None:
    """A daily cycle of 2 sd in hour-long phases: a 5-minute window at the end of the steepest phase sits
    about a quarter sd off the phase's average, and the CUSUM allows that much; at the crest, or for a window
    of whole phases, it allows nothing more."""
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 86400, 400_000)
    x = 2.0 * np.sin(2 * np.pi * t / 86400) + rng.normal(size=t.size)
    edges = np.quantile(x, np.linspace(0, 1, 21)[1:-1])
    k = np.floor(t / 3600).astype(int)
    counts = np.zeros((24, 20), dtype=np.int64)
    np.add.at(counts, (k, np.searchsorted(edges, x, side="right")), 1)
    pc = PhaseCounts(counts, np.zeros(24), np.ones(24))
    cusums = MeanShiftCusums({}, 1e-6, 0.05)
    window = (np.array([3300.0]), np.array([300.0]))  # the last 5 minutes of phase 0, the sine's steepest
    dawn = np.eye(24)[0]
    uncovered = float(dawn @ (1.0 - phase_coverage(*window, 86400.0, 24)))
    assert uncovered == pytest.approx(11 / 12)
    calibrator = MeanShiftCalibrator(counts[0], seed=0)
    slack = cusums.within_phase(calibrator, phase_edges(pc, dawn), uncovered, 1500)
    end_of_phase = (t % 86400 >= 3300) & (t % 86400 < 3600)
    window_counts = np.bincount(np.searchsorted(edges, x[end_of_phase], side="right"), minlength=20)
    actual = calibrator.shift(window_counts).effect  # what such windows really show
    assert 0.15 < actual < slack * 1.3 and slack < 0.4
    assert cusums.within_phase(calibrator, phase_edges(pc, dawn), 0.0, 1500) == 0.0  # whole phases
    noon = np.eye(24)[6]  # the crest: flat
    crest = cusums.within_phase(MeanShiftCalibrator(counts[6], seed=0), phase_edges(pc, noon), 11 / 12, 1500)
    assert crest < slack / 3


def test_reference_build_says_when_a_cycles_phase_profiles_are_thin() -> None:
    thin = PhaseCounts(np.array([[500, 400], [30, 20], [600, 300]]), np.full(3, np.nan), np.full(3, np.nan))
    thick = PhaseCounts(np.full((3, 2), 5000), np.full(3, np.nan), np.full(3, np.nan))
    season = SeasonalityProfile(
        (),
        (
            PhaseTable(HOUR, 3, np.array([900, 50, 900]), {"c": thin}),
            PhaseTable(60.0, 3, np.full(3, 1e4), {"c": thick}),
        ),
    )
    (note,) = thin_phase_notes(season)
    assert "3600 s cycle: as few as 50 values of c in one of its 3 phases" in note
