"""The score and prediction judged against the phases of the cycle they inherit from their features, from
reference to alerts: ``reference build`` keeps their phase profiles and finds their cycle, ``config init``
writes it under ``prediction.seasonality``, and a replay whose predictions follow a cyclic feature raises
nothing, while the same replay with the predictions judged against the whole reference fires.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import yaml

from stream_monitor.config.loading import parse_config
from stream_monitor.config.template import render_config
from stream_monitor.core.alerts import Alert, AlertKind
from stream_monitor.core.clock import ManualClock
from stream_monitor.core.events import Stream
from stream_monitor.devtools import synthetic_cycles
from stream_monitor.pipeline.local import Engine
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.seasonal_expectations import SeasonalExpectations
from stream_monitor.pipeline.windows import ClosedWindow, WindowInfo
from stream_monitor.stats.phase_mixture import expected_categories, expected_profile
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile, ReferenceProfile
from stream_monitor.stats.reference_builder import ReferenceBuilder
from stream_monitor.stats.sketches import WindowSketch

MODEL = "cyclic"
PERIOD = 3600.0
RATE = 5.0
START = 1_763_766_000.0


def events(seed: int, start: float, seconds: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Feature events of the cyclic stream and a prediction per event: a logistic score of ``x``, which
    carries the cycle (at twice the noise's sd), and the class it gives."""
    features = synthetic_cycles.cyclic_events(seed, start, seconds, PERIOD, RATE, 2.0, MODEL)
    predictions = []
    for e in features:
        score = round(1.0 / (1.0 + math.exp(-0.8 * e["features"]["x"])), 4)
        predictions.append(
            {
                "event_id": e["event_id"],
                "model_id": MODEL,
                "ts": e["ts"] + 0.01,
                "prediction": int(score >= 0.5),
                "score": score,
            }
        )
    return features, predictions


@functools.cache
def reference() -> ReferenceProfile:
    """Six whole cycles of the same process."""
    builder = ReferenceBuilder(seed=0)
    features, predictions = events(1, START, 6 * PERIOD)
    builder.add_features(features)
    builder.add_predictions(predictions)
    return builder.build()


def init_config() -> dict[str, Any]:
    raw = yaml.safe_load(render_config(reference(), "reference.json"))
    assert isinstance(raw, dict)
    return raw


def replay(config: dict[str, Any], live: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> list[Alert]:
    engine = Engine(parse_config(config), reference().models, ManualClock(0.0))
    features, predictions = live
    alerts: list[Alert] = []
    for i in range(0, len(features), 250):  # the two streams in step, as a replay interleaves them
        alerts += engine.process_events(Stream.FEATURES, features[i : i + 250]).alerts
        alerts += engine.process_events(Stream.PREDICTIONS, predictions[i : i + 250]).alerts
    alerts += engine.flush()
    assert engine.pipelines[MODEL].monitor.windows_tested >= 30
    return alerts


def test_reference_build_keeps_the_outcomes_phases_and_config_init_writes_their_cycle() -> None:
    model = reference().models[MODEL]
    assert model.seasonality is not None
    assert ("predictions.score", PERIOD) in [(f.signal, f.period_seconds) for f in model.seasonality.found]
    table = model.seasonality.table(PERIOD)
    assert table is not None and set(table.predictions) == {"score", "prediction"}
    assert table.predictions["score"].values.sum() == model.predictions.events  # every timed prediction
    share_of_ones = table.predictions["prediction"].counts[:, 0] / table.predictions["prediction"].values
    assert share_of_ones.max() - share_of_ones.min() > 0.5  # the class balance follows the cycle
    assert init_config()["models"][MODEL]["prediction"]["seasonality"] == [
        {"period_seconds": PERIOD, "phases": 24}
    ]


def test_the_score_and_the_class_are_judged_against_the_phases_the_window_covers() -> None:
    config = parse_config(init_config()).models[MODEL]
    profile = reference().models[MODEL]
    layout = ModelLayout.build(MODEL, config, profile)
    (table,) = layout.outcome_phase_tables
    assert table.period_seconds == PERIOD
    seasonal = SeasonalExpectations(layout, lambda role, name, prof, seed: (role, name))
    sk = WindowSketch(layout.sketch)
    slice_s = PERIOD / 24
    window = ClosedWindow(
        WindowInfo(START, START + 300.0, 100), sk, ((round(START / slice_s), 100),), slice_s
    )
    numeric, categorical = seasonal.for_window(window)
    phase = int((START % PERIOD) // slice_s)
    signature = tuple(20 if k == phase else 0 for k in range(24))
    assert layout.score_index is not None and layout.prediction_categorical_index is not None
    score = numeric[layout.score_index]
    assert score.calibrator == ("score", "score")
    assert isinstance(score.profile, NumericProfile) and isinstance(profile.predictions.score, NumericProfile)
    want = expected_profile(profile.predictions.score, table.predictions["score"], signature)
    assert score.profile.counts.tolist() == want.counts.tolist()
    assert score.profile.counts.tolist() != profile.predictions.score.counts.tolist()
    label = categorical[layout.prediction_categorical_index]
    assert isinstance(label.profile, CategoricalProfile) and label.calibrator == ("prediction", "prediction")
    assert isinstance(profile.predictions.prediction, CategoricalProfile)
    want_c = expected_categories(profile.predictions.prediction, table.predictions["prediction"], signature)
    assert label.profile.counts.tolist() == want_c.counts.tolist()
    assert label.details["period_seconds"] == PERIOD


def test_predictions_that_inherit_the_cycle_raise_nothing_and_judged_whole_fire() -> None:
    live = events(2, START + 6 * PERIOD, 3 * PERIOD)
    config = init_config()
    assert replay(config, live) == []
    config["models"][MODEL]["prediction"]["seasonality"] = "off"
    fired = {(a.kind, a.signal) for a in replay(config, live)}
    assert fired == {(AlertKind.PREDICTION_DRIFT, "score"), (AlertKind.PREDICTION_DRIFT, "prediction")}
