"""The replay source reads files in blocks of bytes: whole lines, their numbers, CRLF and blank lines kept
straight whatever the block size."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_monitor.adapters.replay import DeadLetter, JsonlSource, _lines
from stream_monitor.core.events import Stream


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1 << 20])
def test_lines_are_whole_whatever_the_block_size(tmp_path: Path, block_bytes: int) -> None:
    text = b'{"a": 1}\n\n{"b": "two"}\r\n   \n{"c": 3}'  # blank lines, a CRLF, no newline at the end
    path = tmp_path / "f.jsonl"
    path.write_bytes(text)
    lines = [line for _, block in _lines(path, block_bytes) for line in block]
    assert lines == text.split(b"\n")


def test_dead_letters_and_events_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "features.jsonl"
    rows = [b'{"event_id": "a", "ts": 1.0}', b"", b"not json", b'{"event_id": "b", "ts": 2.0}\r', b"[1]"]
    path.write_bytes(b"\n".join(rows) + b"\n")
    dead: list[DeadLetter] = []
    source = JsonlSource(path, Stream.FEATURES)
    blocks = list(source.blocks(dead.append))
    assert [line for b in blocks for line in b.lines] == [1, 4]
    assert [e["event_id"] for b in blocks for e in b.events or []] == ["a", "b"]
    assert [(d.line, d.reason) for d in dead] == [(3, "not_json"), (5, "not_object")]
    assert source.bytes_read == path.stat().st_size


def test_a_block_of_nothing_but_blank_or_dead_lines_does_not_stall_the_merge(tmp_path: Path) -> None:
    path = tmp_path / "features.jsonl"
    path.write_bytes(b"\n" * (1 << 21) + b"garbage\n" * 300_000 + b'{"event_id": "a", "ts": 1.0}\n')
    dead: list[DeadLetter] = []
    blocks = list(JsonlSource(path, Stream.FEATURES).blocks(dead.append))
    assert [e["event_id"] for b in blocks for e in b.events or []] == ["a"]
    assert len(dead) == 300_000


def test_the_alerts_of_a_replay_do_not_depend_on_how_the_files_are_cut_into_blocks(tmp_path: Path) -> None:
    from stream_monitor.adapters.replay import replay
    from stream_monitor.bootstrap import build_engine
    from stream_monitor.config_template import write_config
    from stream_monitor.settings import load_config
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
