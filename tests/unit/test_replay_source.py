"""The replay source reads files in blocks of bytes: whole lines, their numbers, CRLF and blank lines kept
straight whatever the block size."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_monitor.adapters.files.jsonl_blocks import DeadLetter, JsonlSource, _lines
from stream_monitor.core.events import Stream


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1 << 20])
def test_lines_are_whole_whatever_the_block_size(tmp_path: Path, block_bytes: int) -> None:
    text = b'{"a": 1}\n\n{"b": "two"}\r\n   \n{"c": 3}'  # blank lines, a CRLF, no newline at the end
    path = tmp_path / "f.jsonl"
    path.write_bytes(text)
    blocks = list(_lines(path, block_bytes))
    lines = [line for _, block in blocks for line in block]
    assert lines == [line.removesuffix(b"\r") for line in text.split(b"\n")]  # a CRLF's CR goes too
    assert sum(size for size, _ in blocks) == len(text)  # the bytes each block took, for the progress bar


def test_dead_letters_and_events_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "features.jsonl"
    rows = [b'{"event_id": "a", "ts": 1.0}', b"", b"not json", b'{"event_id": "b", "ts": 2.0}\r', b"[1]"]
    path.write_bytes(b"\n".join(rows) + b"\n")
    dead: list[DeadLetter] = []
    source = JsonlSource(path, Stream.FEATURES)
    blocks = list(source.blocks(dead.append))
    dead += [d for b in blocks for d in b.dead]  # written with the block's events, in line order
    assert [line for b in blocks for line in b.lines] == [1, 4]
    assert [e["event_id"] for b in blocks for e in b.events or []] == ["a", "b"]
    assert [(d.line, d.reason) for d in dead] == [(3, "not_json"), (5, "not_object")]
    assert source.bytes_read == path.stat().st_size


def test_a_block_of_nothing_but_blank_or_dead_lines_does_not_stall_the_merge(tmp_path: Path) -> None:
    path = tmp_path / "features.jsonl"
    path.write_bytes(b"\n" * (1 << 21) + b"garbage\n" * 300_000 + b'{"event_id": "a", "ts": 1.0}\n')
    dead: list[DeadLetter] = []
    blocks = list(JsonlSource(path, Stream.FEATURES).blocks(dead.append))
    dead += [d for b in blocks for d in b.dead]
    assert [e["event_id"] for b in blocks for e in b.events or []] == ["a"]
    assert len(dead) == 300_000


def test_the_alerts_of_a_replay_do_not_depend_on_how_the_files_are_cut_into_blocks(tmp_path: Path) -> None:
    from stream_monitor.adapters.files.replay import replay
    from stream_monitor.app.compose import build_engine
    from stream_monitor.config.loading import load_config
    from stream_monitor.config.template import write_config
    from tests.engine_feed import EXAMPLE_STREAM, REPO

    ref = REPO / "config" / "reference.json"
    write_config(ref, tmp_path / "config.yaml")
    streams = (Stream.FEATURES, Stream.PREDICTIONS, Stream.LABELS)

    def alerts(block_bytes: int) -> list[tuple[str, str, str, float]]:
        engine = build_engine(load_config(tmp_path / "config.yaml"))
        sources = [
            JsonlSource(EXAMPLE_STREAM / f"{s.value}.jsonl", s, block_bytes=block_bytes) for s in streams
        ]
        return [
            (a.alert_id, a.status.value, a.severity.value, a.event_ts) for a in replay(engine, sources).alerts
        ]

    whole = alerts(1 << 24)
    assert whole, "the example stream drifts"
    assert alerts(4096) == alerts(100_000) == whole


def test_the_summary_counts_add_up_and_dead_letters_come_in_input_order(tmp_path: Path) -> None:
    import orjson
    from click.testing import CliRunner

    from stream_monitor.cli import main
    from stream_monitor.config.template import write_config
    from tests.engine_feed import EXAMPLE_STREAM, REPO

    write_config(REPO / "config" / "reference.json", tmp_path / "config.yaml")
    good = (EXAMPLE_STREAM / "predictions.jsonl").read_bytes().splitlines()[:3000]
    # predictions take the orjson path: undecodable lines (found when a block is read) and events the parser
    # refuses (found when it is processed) interleave, and must still come out in line order
    bad = [b"not json", b'{"event_id": "p", "model_id": "churn-v3", "ts": 1763766100.0}', b"[]", b"  "]
    lines: list[bytes] = []
    for i, line in enumerate(good):
        lines.append(line)
        if i % 500 == 7:
            lines.extend(bad)
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(b"\n".join(lines) + b"\n")
    dead = tmp_path / "dead.jsonl"
    args = [
        "replay",
        "--config",
        str(tmp_path / "config.yaml"),
        "--features",
        str(EXAMPLE_STREAM / "features.jsonl"),
    ]
    args += ["--predictions", str(predictions), "--alerts-out", str(tmp_path / "alerts.jsonl")]
    result = CliRunner().invoke(main, [*args, "--dead-letters-out", str(dead)])
    assert result.exit_code == 0, result.output
    records = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert [r["line"] for r in records] == sorted(r["line"] for r in records)
    assert {r["reason"] for r in records} == {"not_json", "missing_field", "not_object"}
    n_bad = sum(1 for i in range(len(good)) if i % 500 == 7)
    assert f"{len(lines):,} lines: {len(good):,} accepted, {3 * n_bad:,} dead-lettered, {n_bad:,} blank" in (
        result.output
    )
    assert len(records) == 3 * n_bad
    without = CliRunner().invoke(main, args)
    assert "rerun with --dead-letters-out FILE" in without.output
