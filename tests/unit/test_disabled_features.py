"""A feature disabled in the config but still sent is known, just not monitored: never an unknown field."""

from __future__ import annotations

from typing import Any

import orjson

from stream_monitor.config.loading import parse_config
from stream_monitor.core.alerts import AlertKind
from stream_monitor.core.typed_decoding import TypedFeatureDecoder
from stream_monitor.pipeline.folding import ModelFolder
from stream_monitor.pipeline.model_layout import ModelLayout
from tests import service_support as ss

DISABLED = "num_03"


def _config() -> Any:
    model = {**ss.model_config(), "features": {DISABLED: {"enabled": False}}}
    return parse_config({"models": {ss.MODEL: model}})


def _layout() -> ModelLayout:
    return ModelLayout.build(ss.MODEL, _config().models[ss.MODEL], ss.profile().models[ss.MODEL])


def test_the_parser_counts_a_disabled_feature_as_known_and_skips_its_values() -> None:
    events = ss.live_events(50, drifting=False)
    assert all(DISABLED in e["features"] for e in events)
    parser = ModelFolder(_layout()).features
    rows, rejected = parser.parse([{**e, "features": {**e["features"], "extra": 1}} for e in events])
    assert not rejected
    assert DISABLED not in parser.numeric
    assert {name for _, name in rows.unknown_fields} == {"extra"}


def test_the_typed_decoder_agrees_and_keeps_the_events_on_its_fast_path() -> None:
    events = ss.live_events(50, drifting=False)
    decoder = TypedFeatureDecoder.build({ss.MODEL: ModelFolder(_layout()).features})
    assert decoder is not None
    out = decoder.decode([orjson.dumps(e) for e in events])
    assert not out.rejections
    assert out.batches[ss.MODEL].rows.unknown_fields == []
    assert out.slow == 0


def test_a_stream_that_still_sends_a_disabled_feature_raises_no_schema_drift() -> None:
    _, alerts = ss.engine_run(ss.live_events(6000, drifting=False), cfg=_config())
    assert [a for a in alerts if a.kind is AlertKind.SCHEMA_DRIFT] == []
    # the same stream with the feature enabled but renamed in the events is caught, so the check can fail
    renamed = [
        {**e, "features": {**e["features"], "num_99": e["features"][DISABLED]}}
        for e in ss.live_events(6000, drifting=False)
    ]
    _, alerts = ss.engine_run(renamed, cfg=_config())
    assert any(a.kind is AlertKind.SCHEMA_DRIFT for a in alerts)
