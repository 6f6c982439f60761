"""Synthetic streams as JSON lines with orjson: one event as a Kafka message value, a stream as three files."""

from __future__ import annotations

from pathlib import Path

import orjson

from stream_monitor.devtools.synthetic import SyntheticStream
from stream_monitor.devtools.synthetic_spec import Event

__all__ = ["encode", "write_jsonl"]


def encode(event: Event) -> bytes:
    """Encode one event as compact JSON bytes, without a newline (the Kafka message value).

    Examples
    --------
    >>> encode({"event_id": "e-000000001", "ts": 1763766000.125, "label": 1})
    b'{"event_id":"e-000000001","ts":1763766000.125,"label":1}'
    """
    return orjson.dumps(event)


def write_jsonl(stream: SyntheticStream, out_dir: str | Path) -> dict[str, Path]:
    """Write ``features.jsonl``, ``predictions.jsonl`` and ``labels.jsonl`` into ``out_dir``.

    All three files are written (empty when the spec disables predictions or labels), so a directory never
    mixes files from two runs. ``out_dir`` is created when missing.

    Parameters
    ----------
    stream
        The generated stream.
    out_dir
        Target directory.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"features": ..., "predictions": ..., "labels": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, events in (
        ("features", stream.features),
        ("predictions", stream.predictions),
        ("labels", stream.labels),
    ):
        path = out / f"{name}.jsonl"
        with path.open("wb") as f:
            for start in range(0, len(events), 10_000):
                f.write(
                    b"".join(
                        orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE)
                        for e in events[start : start + 10_000]
                    )
                )
        paths[name] = path
    return paths
