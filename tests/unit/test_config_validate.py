"""``config validate``: every problem of a file in one pass, each with its line, and a hint for a misspelling."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from stream_monitor.cli import main


def _validate(path: Path) -> Result:
    return CliRunner().invoke(main, ["config", "validate", str(path)])


def _line(text: str, fragment: str) -> int:
    """The 1-based line of the only line of ``text`` holding ``fragment``."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(found) == 1, (fragment, found)
    return found[0]


def _problems(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if not line.endswith("problem(s)")]


def test_three_different_faults_are_all_reported_with_their_lines(workspace: Path) -> None:
    text = """\
version: 1
service:
  metrics_port: 9108
models:
  churn-v3:
    reference: no-such-reference.json
    window:
      max_event: 2000
      max_seconds: 300
    alerting:
      hysteresis: 1.5
"""
    path = workspace / "three.yaml"
    path.write_text(text)
    result = _validate(path)
    assert result.exit_code == 2
    src = str(path)
    reference, key, value = (
        _line(text, "reference:"),
        _line(text, "max_event:"),
        _line(text, "hysteresis:"),
    )
    assert _problems(result) == [
        f"{src}:{reference}: models.churn-v3.reference: cannot read reference profile "
        f"{workspace / 'no-such-reference.json'}: No such file or directory",
        f"{src}:{key}: models.churn-v3.window.max_event: unknown key (did you mean 'max_events'?)",
        f"{src}:{value}: models.churn-v3.alerting.hysteresis: must be at most 1.0 (got 1.5)",
    ]
    assert result.output.splitlines()[-1] == f"{src}: 3 problem(s)"


def test_an_unknown_feature_gets_its_line_and_the_closest_feature(workspace: Path) -> None:
    text = (workspace / "config.yaml").read_text().replace('"num_00": {enabled', '"num_000": {enabled')
    path = workspace / "feature.yaml"
    path.write_text(text)
    result = _validate(path)
    assert result.exit_code == 2
    assert _problems(result) == [
        f"{path}:{_line(text, 'num_000')}: models.churn-v3.features.num_000: "
        "not a feature of the reference profile (did you mean 'num_00'?)"
    ]


def test_reference_checks_run_although_the_schema_has_errors(workspace: Path) -> None:
    text = (
        (workspace / "config.yaml")
        .read_text()
        .replace(" max_events:", " max_evnts:")
        .replace('"num_01": {enabled', '"num_1": {enabled')
        .replace("segments: []", "segments: [cat_00, cat_0]")
    )
    path = workspace / "mixed.yaml"
    path.write_text(text)
    result = _validate(path)
    assert result.exit_code == 2
    feature = _line(text, '"num_1"')
    assert _problems(result) == [
        f"{path}:{_line(text, ' max_evnts:')}: models.churn-v3.window.max_evnts: unknown key "
        "(did you mean 'max_events'?)",
        f"{path}:{_line(text, 'segments:')}: models.churn-v3.segments[1]: not a feature of the reference "
        "profile (did you mean 'cat_00' or 'cat_01'?)",
        f"{path}:{feature}: models.churn-v3.features.num_1: not a feature of the reference "
        "profile (did you mean 'num_01'?)",
    ]


def test_a_categorical_feature_tested_with_an_ordinal_statistic_is_refused(workspace: Path) -> None:
    text = (
        (workspace / "config.yaml")
        .read_text()
        .replace(
            '"cat_00": {enabled: true, sequential: false, test: {statistic: psi}}',
            '"cat_00": {test: {statistic: ks}}',
        )
    )
    path = workspace / "ordinal.yaml"
    path.write_text(text)
    result = _validate(path)
    assert result.exit_code == 2
    line = _line(text, '"cat_00"')
    assert _problems(result) == [
        f"{path}:{line}: models.churn-v3.features.cat_00.test.statistic: "
        "ks needs ordered bins; use psi, js or chi2 for a categorical signal"
    ]


def test_a_valid_file_is_ok(workspace: Path) -> None:
    result = _validate(workspace / "config.yaml")
    assert result.exit_code == 0, result.output
    assert result.output == f"{workspace / 'config.yaml'}: OK (1 model(s))\n"


def test_an_unsafe_yaml_tag_is_refused_not_run(workspace: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = workspace / "unsafe.yaml"
    path.write_text(f"version: 1\nmodels: !!python/object/apply:os.system ['touch {marker}']\n")
    result = _validate(path)
    assert result.exit_code == 2
    assert _problems(result) == [
        f"{path}:2: unsafe or unknown YAML tag !!python/object/apply:os.system refused: "
        "a config holds plain data only"
    ]
    assert not marker.exists()


def test_a_missing_config_file_is_one_clear_problem(tmp_path: Path) -> None:
    result = _validate(tmp_path / "absent.yaml")
    assert result.exit_code == 2
    assert _problems(result) == [
        f"{tmp_path / 'absent.yaml'}: cannot read the file: No such file or directory"
    ]
