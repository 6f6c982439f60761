"""Build a :class:`~stream_monitor.stats.profiles.ReferenceProfile` from training or validation events.

Memory is bounded: numeric values and correlation rows come from a seeded reservoir sample of ``max_rows`` events per
model (exact below that), categorical frequencies from a pruned counter, counts and null rates are exact.

>>> b = ReferenceBuilder(seed=0)
>>> b.add_features([{"event_id": str(i), "model_id": "m", "ts": 1.7e9 + i,
...                  "features": {"x": float(i % 7), "c": "ab"[i % 2]}} for i in range(100)])
>>> prof = b.build().models["m"]
>>> prof.features["x"].type, prof.features["c"].type, prof.features["c"].categories
('numeric', 'categorical', ('a', 'b'))
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_monitor.core.errors import ReferenceProfileError
from stream_monitor.core.events import FieldPath
from stream_monitor.stats.correlation import correlations, normal_scores, pair_sums
from stream_monitor.stats.profiles import (
    CategoricalProfile,
    LabelProfile,
    ModelProfile,
    MultivariateProfile,
    NumericProfile,
    PredictionProfile,
    ReferenceProfile,
    SignalProfile,
)
from stream_monitor.stats.reference_events import EventFormat, resolve_scores
from stream_monitor.stats.reference_seasonality import seasonality_profile
from stream_monitor.stats.reference_tallies import (
    DEFAULT_BINS,
    DEFAULT_MAX_ROWS,
    DEFAULT_PHASES,
    DEFAULT_TOP_K,
    MAX_CORRELATED,
    PredictionKey,
    _as_float,
    _expected_accuracy,
    _FeatureTally,
    _is_number,
    _lag_percentiles,
    _ModelAccumulator,
    _Reservoir,
    categorical_profile,
    infer_task,
    numeric_profile,
)


class ReferenceBuilder:
    """Accumulates reference events of any number of models; :meth:`build` returns the profile.

    Each model's events are read with its :class:`EventFormat` in ``formats`` (the field paths, timestamp
    format and positive class of its config; docs/formats.md's defaults for a model not named), its id at
    ``model_id_field`` (``service.model_id_field``). Events with no model id, no ``features`` object or a
    timestamp the service would refuse are counted in ``skipped`` (with a reason) and left out, never silently.
    """

    def __init__(
        self,
        bins: int = DEFAULT_BINS,
        top_k: int = DEFAULT_TOP_K,
        max_rows: int = DEFAULT_MAX_ROWS,
        seed: int = 0,
        max_joined: int = 1_000_000,
        periods: tuple[float, ...] = (),
        phases: int = DEFAULT_PHASES,
        formats: Mapping[str, EventFormat] | None = None,
        model_id_field: str = "model_id",
    ) -> None:
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if phases < 1 or any(not p > 0 for p in periods):
            raise ValueError(f"periods must be > 0 and phases >= 1, got {list(periods)} and {phases}")
        self.periods, self.phases = tuple(float(p) for p in periods), phases
        self.bins, self.top_k, self.max_rows, self.seed, self.max_joined = (
            bins,
            top_k,
            max_rows,
            seed,
            max_joined,
        )
        self.formats = dict(formats or {})
        self._model_id = FieldPath(model_id_field)
        self._default_format = EventFormat()
        self._rng = random.Random(seed)
        self._models: dict[str, _ModelAccumulator] = {}
        self.skipped: Counter[str] = Counter()

    def _model(self, event: dict[str, Any], stream: str) -> tuple[_ModelAccumulator, EventFormat] | None:
        """The event's model: its accumulator and how its events are read (None, counted, without one)."""
        mid = self._model_id.get(event)
        if type(mid) is not str:
            self.skipped[f"{stream}: missing {self._model_id.path}"] += 1
            return None
        acc = self._models.get(mid)
        if acc is None:
            acc = self._models[mid] = _ModelAccumulator(_Reservoir(self.max_rows, self._rng))
        return acc, self.formats.get(mid, self._default_format)

    def _time(self, fmt: EventFormat, event: dict[str, Any], stream: str) -> float | bool | None:
        """The event's time (None: it has none); False, counted in ``skipped``, when the service refuses it."""
        ts = fmt.timestamp(event)
        if isinstance(ts, str):
            self.skipped[f"{stream}: {fmt.paths.ts!r} is not a timestamp in {fmt.ts_format} format"] += 1
            return False
        return ts

    def add_features(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            found = self._model(event, "features")
            if found is None:
                continue
            acc, fmt = found
            feats = fmt.features(event)
            if type(feats) is not dict:
                self.skipped[f"features: {fmt.paths.features!r} is not an object"] += 1
                continue
            ts = self._time(fmt, event, "features")
            if ts is False:
                continue
            if ts is not None:
                acc.ts_min = min(acc.ts_min, ts)
                acc.ts_max = max(acc.ts_max, ts)
            acc.events += 1
            for name, value in feats.items():
                tally = acc.tallies.get(name)
                if tally is None:
                    tally = acc.tallies[name] = _FeatureTally(nulls=acc.events - 1)  # absent before = missing
                tally.add(value)
            for name, tally in acc.tallies.items():
                if name not in feats:
                    tally.nulls += 1
            acc.reservoir.add((fmt.event_id(event), feats, ts))

    def add_predictions(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            found = self._model(event, "predictions")
            if found is None:
                continue
            acc, fmt = found
            prediction = fmt.prediction(event)
            if prediction is None:
                self.skipped["predictions: missing prediction"] += 1
                continue
            ts = self._time(fmt, event, "predictions")
            if ts is False:
                continue
            score = fmt.raw_score(event)  # a scores object is resolved in build, once the classes are known
            acc.prediction_count += 1
            if len(acc.predictions) < self.max_joined:
                event_id = fmt.event_id(event)
                key: PredictionKey = event_id if event_id is not None else (None, acc.prediction_count)
                keep = _is_number(score) or type(score) is dict
                acc.predictions[key] = (prediction, score if keep else None)
                if ts is not None and event_id is not None:
                    acc.prediction_ts[event_id] = ts

    def add_labels(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            found = self._model(event, "labels")
            if found is None:
                continue
            acc, fmt = found
            label = fmt.label(event)
            if label is None:
                self.skipped["labels: missing label"] += 1
                continue
            event_id = fmt.event_id(event)
            if event_id is None:
                self.skipped[
                    f"labels: missing {fmt.paths.event_id!r} (a label meets its prediction by it)"
                ] += 1
                continue
            ts = self._time(fmt, event, "labels")
            if ts is False:
                continue
            acc.label_count += 1
            if len(acc.labels) < self.max_joined:
                acc.labels[event_id] = label
                if ts is not None:
                    acc.label_ts[event_id] = ts

    # ---- finalisation ---------------------------------------------------------------------------------------
    def build(self) -> ReferenceProfile:
        if not self._models:
            raise ReferenceProfileError(
                "no usable reference events (is the file empty or of the wrong shape?)"
            )
        # A model that only its predictions or labels name, or whose every feature event was refused, would be
        # written as a profile with no features: the monitor could test nothing of it.
        featureless = sorted(mid for mid, acc in self._models.items() if acc.events == 0)
        if featureless:
            raise ReferenceProfileError(
                f"no usable feature events for model(s) {', '.join(map(repr, featureless))} "
                "(a model id in the predictions or labels only, or every feature event refused)"
            )
        return ReferenceProfile(
            models={mid: self._build_model(mid, acc) for mid, acc in sorted(self._models.items())}
        )

    def _build_model(self, model_id: str, acc: _ModelAccumulator) -> ModelProfile:
        features: dict[str, SignalProfile] = {}
        sampled: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}  # numeric values of the sampled rows
        for name, tally in sorted(acc.tallies.items()):
            kind = tally.inferred_type()
            if kind == "empty":
                continue
            if kind == "numeric":
                values = sampled[name] = np.array(
                    [_as_float(row.get(name)) for _, row, _ in acc.reservoir.rows], dtype=np.float64
                )
                invalid = tally.bools + tally.strings + tally.other
                features[name] = numeric_profile(values, tally.nulls, invalid, self.bins)
            else:
                cats = Counter(
                    {k: v for k, v in tally.categories.items() if (type(k) is bool) == (kind == "boolean")}
                )
                invalid = tally.numbers + tally.bools + tally.strings + tally.other - sum(cats.values())
                features[name] = categorical_profile(
                    cats, tally.nulls, invalid, self.top_k, boolean=kind == "boolean"
                )
        numeric_names = [n for n, p in features.items() if isinstance(p, NumericProfile)]
        scored = (
            self._correlation_scores(acc, numeric_names[:MAX_CORRELATED], features)
            if len(numeric_names) >= 2
            else None
        )
        multivariate = self._correlations(numeric_names[:MAX_CORRELATED], *scored) if scored else None
        fmt = self.formats.get(model_id, self._default_format)
        positive, refused = resolve_scores(model_id, acc.predictions, fmt)
        self.skipped.update(refused)
        predictions = self._predictions(acc)
        labels = self._labels(acc, predictions, features, positive)
        start = acc.ts_min if math.isfinite(acc.ts_min) else 0.0
        end = acc.ts_max if math.isfinite(acc.ts_max) else 0.0
        return ModelProfile(
            model_id=model_id,
            events=acc.events or acc.prediction_count,
            start_ts=start,
            end_ts=end,
            features=features,
            multivariate=multivariate,
            predictions=predictions,
            labels=labels,
            seasonality=seasonality_profile(
                acc, sampled, features, scored[1:] if scored else None, predictions, self.periods, self.phases
            ),
        )

    @staticmethod
    def _correlation_scores(
        acc: _ModelAccumulator, names: list[str], features: dict[str, SignalProfile]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]] | None:
        """The sampled rows' values of ``names``, their bin scores, and where they are valid (None below 50
        rows)."""
        rows = acc.reservoir.rows
        x = np.array([[_as_float(r.get(n)) for n in names] for _, r, _ in rows], dtype=np.float64)
        if len(x) < 50:
            return None
        valid = np.isfinite(x)
        scores = np.zeros_like(x)
        for j, name in enumerate(names):  # rank-based: each value's bin score (see stats.correlation)
            prof = features[name]
            assert isinstance(prof, NumericProfile)
            table = normal_scores(prof.counts)
            scores[:, j] = table[
                np.searchsorted(prof.edges, np.where(valid[:, j], x[:, j], 0.0), side="right")
            ]
        return x, scores, valid

    @staticmethod
    def _correlations(
        names: list[str], x: NDArray[np.float64], scores: NDArray[np.float64], valid: NDArray[np.bool_]
    ) -> MultivariateProfile:
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        std[~(std > 0)] = 1.0
        correlation, counts = correlations(pair_sums(scores, valid))
        return MultivariateProfile(tuple(names), mean, std, correlation, counts)

    def _predictions(self, acc: _ModelAccumulator) -> PredictionProfile | None:
        if not acc.predictions:
            return None
        values = [p for p, _ in acc.predictions.values()]
        scores = np.array([s for _, s in acc.predictions.values() if s is not None], dtype=np.float64)
        task = infer_task(values)
        prediction: SignalProfile
        if task == "classification":
            prediction = categorical_profile(Counter(values), 0, 0, self.top_k)
        else:
            prediction = numeric_profile(np.array(values, dtype=np.float64), 0, 0, self.bins)
        score = numeric_profile(scores, len(values) - len(scores), 0, self.bins) if len(scores) else None
        return PredictionProfile(task=task, events=acc.prediction_count, prediction=prediction, score=score)

    def _labels(
        self,
        acc: _ModelAccumulator,
        predictions: PredictionProfile | None,
        features: dict[str, SignalProfile],
        positive: Any,
    ) -> LabelProfile | None:
        if not acc.labels:
            return None
        values = list(acc.labels.values())
        task = predictions.task if predictions else infer_task(values)
        label: SignalProfile
        if task == "classification":
            label = categorical_profile(Counter(values), 0, 0, self.top_k)
        else:
            label = numeric_profile(np.array(values, dtype=np.float64), 0, 0, self.bins)
        pairs = [(acc.predictions[k][0], v) for k, v in acc.labels.items() if k in acc.predictions]
        performance: dict[str, float] = {}
        if pairs:
            predicted = [p for p, _ in pairs]
            actual = [a for _, a in pairs]
            if task == "classification":
                performance["accuracy"] = float(np.mean([p == a for p, a in pairs]))
                expected = _expected_accuracy(list(acc.predictions.values()), positive)
                if expected is not None:
                    performance["expected_accuracy"] = expected
            else:
                err = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
                performance["mae"] = float(np.mean(np.abs(err)))
                performance["rmse"] = float(np.sqrt(np.mean(err**2)))
        segments = self._segment_errors(acc, features) if task == "classification" else {}
        return LabelProfile(
            events=acc.label_count,
            label=label,
            joined=len(pairs),
            performance=performance,
            segments=segments,
            lag_seconds=_lag_percentiles(acc),
            labelled_share=len(pairs) / len(acc.predictions) if acc.predictions else None,
        )

    @staticmethod
    def _segment_errors(acc: _ModelAccumulator, features: dict[str, SignalProfile]) -> dict[str, Any]:
        """Labelled count and errors per category of every categorical feature, over the sampled rows whose
        prediction and label are known: the baseline a live segment's error rate is compared with."""
        cats = {n: p for n, p in features.items() if isinstance(p, CategoricalProfile)}
        out: dict[str, Any] = {}
        joined = [
            (row, acc.predictions[eid][0] != acc.labels[eid])
            for eid, row, _ in acc.reservoir.rows
            if eid in acc.labels and eid in acc.predictions
        ]
        for name, prof in cats.items():
            index = {c: i for i, c in enumerate(prof.categories)}
            labelled = np.zeros(len(prof.categories), dtype=np.int64)
            errors = np.zeros(len(prof.categories), dtype=np.int64)
            for row, wrong in joined:
                i = index.get(row.get(name))
                if i is not None:
                    labelled[i] += 1
                    errors[i] += wrong
            out[name] = {"labelled": labelled.tolist(), "errors": errors.tolist()}
        return out
