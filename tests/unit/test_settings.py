"""Config: every problem reported with its path, unsafe YAML refused, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_monitor.config.loading import load_config, parse_config
from stream_monitor.core.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    text = """
models:
  churn:
    reference: ref.json
    windw: {max_events: 10}
    window: {max_events: 5, min_events: 0}
    default_test: {statistic: hellinger}
    budget: {false_alerts_per_day: -1}
"""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    paths = {p for p, _ in info.value.problems}
    assert "models.churn.windw" in paths
    assert "models.churn.window.max_events" in paths
    assert "models.churn.window.min_events" in paths
    assert "models.churn.default_test.statistic" in paths
    assert "models.churn.budget.false_alerts_per_day" in paths
    assert dict(info.value.problems)["models.churn.windw"] == "unknown key (did you mean 'window'?)"
    lines = dict(zip(info.value.problems, info.value.lines, strict=True))
    assert lines[("models.churn.windw", "unknown key (did you mean 'window'?)")] == 5
    assert f"{info.value.source}:8: models.churn.budget.false_alerts_per_day: must be greater than 0" in str(
        info.value
    )


def test_a_config_not_from_a_file_has_paths_but_no_lines() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"models": {"m": {"reference": "r", "window": {"max_events": 1}}}})
    assert info.value.problems == [("models.m.window.max_events", "must be at least 10 (got 1)")]
    assert info.value.lines == [None]
    assert (
        str(info.value) == "config: 1 problem(s)\n  models.m.window.max_events: must be at least 10 (got 1)"
    )


def test_unsafe_yaml_is_rejected_not_executed(tmp_path: Path) -> None:
    text = "models: !!python/object/apply:os.system ['echo pwned > /tmp/pwned']\n"
    with pytest.raises(ConfigError, match="unsafe or unknown YAML tag"):
        load_config(_write(tmp_path, text))


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.yaml:2: invalid YAML: .*\(column 7\)"):
        load_config(_write(tmp_path, "models:\n  a: b: c\n"))


def test_secrets_come_from_the_environment_and_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASSWORD", "hunter2")
    cfg = parse_config(
        {
            "kafka": {"client": {"sasl.password": "${KAFKA_PASSWORD}", "security.protocol": "SASL_SSL"}},
            "models": {"m": {"reference": "r.json"}},
        }
    )
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.kafka)
    settings = cfg.kafka.client_settings()
    assert settings["sasl.password"] == "hunter2" and settings["security.protocol"] == "SASL_SSL"
    assert settings is not cfg.kafka.client_settings()  # a new dict each time: callers may not mutate ours


def test_a_missing_environment_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        parse_config(
            {
                "kafka": {"client": {"sasl.password": "${NOT_SET_ANYWHERE}"}},
                "models": {"m": {"reference": "r"}},
            }
        )


def test_defaults_are_complete() -> None:
    cfg = parse_config({"models": {"m": {"reference": "r.json"}}}, base_dir="/etc/sm")
    m = cfg.models["m"]
    assert (m.window.max_events, m.window.max_seconds, m.thresholds) == (5000, 300.0, "calibrated")
    assert m.default_test.levels() == (0.1, 0.25)
    assert cfg.service.bind_host == "127.0.0.1"
    assert str(cfg.reference_path("m")) == "/etc/sm/r.json"


def test_a_feature_listed_without_a_test_of_its_own_takes_default_test() -> None:
    from stream_monitor.pipeline.model_layout import ModelLayout
    from tests import service_support as ss

    model = {
        **ss.model_config(),
        "default_test": {"statistic": "js", "warning": 0.2},
        "features": {"num_00": {"sequential": False}, "num_01": {"test": {"statistic": "ks"}}},
    }
    cfg = parse_config({"models": {ss.MODEL: model}}).models[ss.MODEL]
    layout = ModelLayout.build(ss.MODEL, cfg, ss.profile().models[ss.MODEL])
    assert layout.test_for("feature", "num_00").statistic == "js"  # listed to set sequential only
    assert layout.test_for("feature", "num_01").statistic == "ks"  # its own test
    assert layout.test_for("feature", "num_02").statistic == "js"  # not listed
