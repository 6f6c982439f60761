"""Read one model's reference events as the service reads its streams: its field paths, timestamp format and
positive class (``fields``, ``timestamp_format``, ``positive_class`` of the model's config).

The timestamps go through the pipeline's own :func:`~stream_monitor.core.events.parse_timestamps` and the
fields through :class:`~stream_monitor.core.events.FieldPath`, so a file the service can read is a file
``reference build`` can read.

>>> fmt = EventFormat(FieldPaths(ts="meta.at", features="x"), "epoch_millis")
>>> event = {"model_id": "m", "meta": {"at": 1_763_766_000_125}, "x": {"age": 41}}
>>> fmt.timestamp(event), fmt.features(event)
(1763766000.125, {'age': 41})
>>> fmt.timestamp({"meta": {"at": "2025-11-21T23:00:00Z"}})
"timestamp '2025-11-21T23:00:00Z' is a string; config says epoch_millis"
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stream_monitor.core.envelope import FieldPaths
from stream_monitor.core.errors import ReferenceProfileError
from stream_monitor.core.events import MISSING, FieldPath, TimestampFormat, parse_timestamps
from stream_monitor.core.outcome_parsing import positive_class, score_key, score_of
from stream_monitor.stats.reference_tallies import infer_task


class EventFormat:
    """Where one model's fields live and how its time is written; the defaults are docs/formats.md's."""

    def __init__(
        self,
        paths: FieldPaths | None = None,
        ts_format: TimestampFormat = "auto",
        positive_class: Any = None,
    ) -> None:
        self.paths = paths or FieldPaths()
        self.ts_format: TimestampFormat = ts_format
        self.positive_class = positive_class
        p = self.paths
        self._event_id, self._ts, self._features = (
            FieldPath(p.event_id),
            FieldPath(p.ts),
            FieldPath(p.features),
        )
        self._prediction, self._label = FieldPath(p.prediction), FieldPath(p.label)
        self._score, self._scores = FieldPath(p.score), FieldPath(p.scores)

    def event_id(self, event: dict[str, Any]) -> str | None:
        """The id that joins an event to the others of its model; None when it has none (absent or null)."""
        value = self._event_id.get(event)
        return None if value is MISSING or value is None else str(value)

    def timestamp(self, event: dict[str, Any]) -> float | str | None:
        """Epoch seconds; None when the event has no time; why, when it has one the service would refuse."""
        value = self._ts.get(event)
        if value is MISSING or value is None:
            return None
        seconds, errors = parse_timestamps([value], self.ts_format)
        return errors[0][1] if errors else float(seconds[0])

    def features(self, event: dict[str, Any]) -> Any:
        return self._features.get(event)

    def prediction(self, event: dict[str, Any]) -> Any:
        """The predicted value, None when absent."""
        value = self._prediction.get(event)
        return None if value is MISSING else value

    def label(self, event: dict[str, Any]) -> Any:
        """The label, None when absent."""
        value = self._label.get(event)
        return None if value is MISSING else value

    def raw_score(self, event: dict[str, Any]) -> Any:
        """The single ``score`` when there is one, else the ``scores`` object (resolved once the classes are
        known, :func:`~stream_monitor.core.outcome_parsing.score_of`), else None."""
        value = self._score.get(event)
        if value is MISSING or value is None:
            multi = self._scores.get(event)
            return multi if type(multi) is dict and multi else None
        return value


def resolve_scores(
    model_id: str, predictions: dict[Any, tuple[Any, Any]], fmt: EventFormat
) -> tuple[Any, Counter[str]]:
    """Turn each kept ``scores`` object into the score the service reads from it, in place: the positive
    class's probability for a binary classifier, the top confidence otherwise. Returns the positive class
    (None unless binary) and the ``skipped`` counts of the ``scores`` objects the service would refuse (their
    predictions keep no score)."""
    values = [p for p, _ in predictions.values()]
    classes = list(Counter(values))
    positive = None
    if values and infer_task(values) == "classification" and len(classes) == 2:
        try:
            positive = positive_class(classes, fmt.positive_class)
        except ValueError as exc:
            raise ReferenceProfileError(f"models.{model_id}.positive_class: {exc}") from None
    elif fmt.positive_class is not None:
        raise ReferenceProfileError(
            f"models.{model_id}.positive_class: only for a binary classifier; "
            f"the reference's predictions have {len(classes)} distinct values"
        )
    key = None if positive is None else score_key(positive)
    refused: Counter[str] = Counter()
    for event_id, (prediction, score) in predictions.items():
        if type(score) is dict:
            resolved = score_of(score, key, fmt.paths.scores)
            if not isinstance(resolved, float):
                refused[f"predictions: score left out: {resolved[1]}"] += 1
            predictions[event_id] = (prediction, resolved if isinstance(resolved, float) else None)
    return positive, refused
