"""Reference profiles: what "normal" looks like for one model, as versioned, human-readable JSON.

A profile is built once from training or validation data (:mod:`stream_monitor.stats.reference_builder`) and is
read-only afterwards. Live window sketches bin their values on the profile's edges and categories, so a profile
fixes the *layout* of every sketch for its model.

Numeric bins are open-tailed: with interior edges ``e_1 < ... < e_{k-1}`` bin ``i`` holds
``e_i <= x < e_{i+1}`` (``e_0 = -inf``, ``e_k = +inf``), i.e. ``np.searchsorted(edges, x, side="right")``.
Categorical counts carry one trailing "other" slot for every value outside the bounded top-K.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_monitor.core.errors import ReferenceProfileError
from stream_monitor.stats.phase_profiles import SeasonalityProfile

FORMAT = "stream-monitor.reference/v1"

FeatureType = Literal["numeric", "categorical", "boolean"]
Category = str | int | float | bool


def _null_rate(count: int, nulls: int, invalid: int) -> float:
    total = count + nulls + invalid
    return nulls / total if total else 0.0


@dataclass(frozen=True)
class NumericProfile:
    """Reference distribution of one numeric signal."""

    count: int
    nulls: int
    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    mean: float
    std: float
    min: float
    max: float
    invalid: int = 0
    type: Literal["numeric"] = "numeric"

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    @property
    def null_rate(self) -> float:
        return _null_rate(self.count, self.nulls, self.invalid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "count": self.count,
            "nulls": self.nulls,
            "invalid": self.invalid,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NumericProfile:
        edges = np.asarray(raw["edges"], dtype=np.float64)
        counts = np.asarray(raw["counts"], dtype=np.int64)
        if len(counts) != len(edges) + 1:
            raise ReferenceProfileError(f"numeric profile has {len(edges)} edges but {len(counts)} counts")
        if len(edges) and np.any(np.diff(edges) <= 0):
            raise ReferenceProfileError("numeric profile edges must be strictly increasing")
        return cls(
            count=int(raw["count"]),
            nulls=int(raw.get("nulls", 0)),
            invalid=int(raw.get("invalid", 0)),
            edges=edges,
            counts=counts,
            mean=float(raw["mean"]),
            std=float(raw["std"]),
            min=float(raw["min"]),
            max=float(raw["max"]),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference frequencies of a categorical (or boolean) signal: bounded top-K plus one "other" slot."""

    count: int
    nulls: int
    categories: tuple[Category, ...]
    counts: NDArray[np.int64]  # len(categories) + 1; the last slot is "other"
    distinct: int
    invalid: int = 0
    type: Literal["categorical", "boolean"] = "categorical"

    @property
    def n_bins(self) -> int:
        return len(self.categories) + 1

    @property
    def null_rate(self) -> float:
        return _null_rate(self.count, self.nulls, self.invalid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "count": self.count,
            "nulls": self.nulls,
            "invalid": self.invalid,
            "distinct": self.distinct,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CategoricalProfile:
        categories = tuple(raw["categories"])
        counts = np.asarray(raw["counts"], dtype=np.int64)
        if len(counts) != len(categories) + 1:
            raise ReferenceProfileError(
                f"categorical profile has {len(categories)} categories but {len(counts)} counts "
                "(expected one more, for 'other')"
            )
        return cls(
            count=int(raw["count"]),
            nulls=int(raw.get("nulls", 0)),
            invalid=int(raw.get("invalid", 0)),
            categories=categories,
            counts=counts,
            distinct=int(raw.get("distinct", len(categories))),
            type=raw.get("type", "categorical"),
        )


SignalProfile = NumericProfile | CategoricalProfile


def signal_from_dict(raw: dict[str, Any]) -> SignalProfile:
    kind = raw.get("type")
    if kind == "numeric":
        return NumericProfile.from_dict(raw)
    if kind in ("categorical", "boolean"):
        return CategoricalProfile.from_dict(raw)
    raise ReferenceProfileError(f"unknown signal type {kind!r} (expected numeric, categorical or boolean)")


@dataclass(frozen=True)
class MultivariateProfile:
    """Pairwise correlations of the numeric features (see :mod:`stream_monitor.stats.correlation`)."""

    features: tuple[str, ...]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    correlation: NDArray[np.float64]  # (d, d)
    counts: NDArray[np.float64]  # (d, d) rows behind each pair
    # "normal_scores": correlations of the features' bin scores (rank-based); "pairwise_correlation": of the
    # standardised values (references built before rank correlations; still read and used as they were)
    method: str = "normal_scores"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "correlation": np.where(np.isfinite(self.correlation), self.correlation, 0.0).round(6).tolist(),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MultivariateProfile:
        d = len(raw["features"])
        return cls(
            features=tuple(raw["features"]),
            mean=np.asarray(raw["mean"], dtype=np.float64),
            std=np.asarray(raw["std"], dtype=np.float64),
            correlation=np.asarray(raw["correlation"], dtype=np.float64).reshape(d, d),
            counts=np.asarray(raw["counts"], dtype=np.float64).reshape(d, d),
            method=str(raw.get("method", "pairwise_correlation")),
        )


@dataclass(frozen=True)
class PredictionProfile:
    task: Literal["classification", "regression"]
    events: int
    prediction: SignalProfile
    score: NumericProfile | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "events": self.events,
            "prediction": self.prediction.to_dict(),
            "score": self.score.to_dict() if self.score else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PredictionProfile:
        return cls(
            task=raw["task"],
            events=int(raw["events"]),
            prediction=signal_from_dict(raw["prediction"]),
            score=NumericProfile.from_dict(raw["score"]) if raw.get("score") else None,
        )


@dataclass(frozen=True)
class LabelProfile:
    events: int
    label: SignalProfile
    joined: int
    performance: dict[str, float]
    # per categorical feature: {"labelled": [...], "errors": [...]} per reference category (sampled rows)
    segments: dict[str, Any] = field(default_factory=dict)
    # label ts - prediction ts of the joined pairs: {"p50", "p90", "p99", "max"} seconds (absent in references
    # built before it was recorded, or without numeric timestamps); sizes the join store in ``config init``
    lag_seconds: dict[str, float] = field(default_factory=dict)
    # share of the reference's predictions whose label came (None when unknown)
    labelled_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "label": self.label.to_dict(),
            "joined": self.joined,
            "performance": self.performance,
            "segments": self.segments,
            "lag_seconds": self.lag_seconds,
            "labelled_share": self.labelled_share,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LabelProfile:
        return cls(
            events=int(raw["events"]),
            label=signal_from_dict(raw["label"]),
            joined=int(raw.get("joined", 0)),
            performance={k: float(v) for k, v in raw.get("performance", {}).items()},
            segments=dict(raw.get("segments", {})),
            lag_seconds={k: float(v) for k, v in (raw.get("lag_seconds") or {}).items()},
            labelled_share=None if raw.get("labelled_share") is None else float(raw["labelled_share"]),
        )


@dataclass(frozen=True)
class ModelProfile:
    model_id: str
    events: int
    start_ts: float
    end_ts: float
    features: dict[str, SignalProfile]
    multivariate: MultivariateProfile | None = None
    predictions: PredictionProfile | None = None
    labels: LabelProfile | None = None
    fields_seen: tuple[str, ...] = field(default=())
    # the cycles found and their phase tables (None in references built before seasonality)
    seasonality: SeasonalityProfile | None = None

    @property
    def events_per_second(self) -> float:
        span = self.end_ts - self.start_ts
        return (self.events - 1) / span if span > 0 and self.events > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "events": self.events,
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "events_per_second": self.events_per_second,
            "features": {name: p.to_dict() for name, p in self.features.items()},
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
            "predictions": self.predictions.to_dict() if self.predictions else None,
            "labels": self.labels.to_dict() if self.labels else None,
            "seasonality": self.seasonality.to_dict() if self.seasonality else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelProfile:
        return cls(
            model_id=raw["model_id"],
            events=int(raw["events"]),
            start_ts=float(raw["start_ts"]),
            end_ts=float(raw["end_ts"]),
            features={name: signal_from_dict(p) for name, p in raw["features"].items()},
            multivariate=MultivariateProfile.from_dict(raw["multivariate"])
            if raw.get("multivariate")
            else None,
            predictions=PredictionProfile.from_dict(raw["predictions"]) if raw.get("predictions") else None,
            labels=LabelProfile.from_dict(raw["labels"]) if raw.get("labels") else None,
            seasonality=SeasonalityProfile.from_dict(raw["seasonality"]) if raw.get("seasonality") else None,
        )


@dataclass(frozen=True)
class ReferenceProfile:
    """Every model's profile, as stored in ``reference.json``."""

    models: dict[str, ModelProfile]

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, "models": {mid: m.to_dict() for mid, m in self.models.items()}}
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"

    @classmethod
    def from_json(cls, data: bytes | str) -> ReferenceProfile:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ReferenceProfileError(f"reference profile is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise ReferenceProfileError(f"not a {FORMAT} file (format: {found!r})")
        try:
            return cls(models={mid: ModelProfile.from_dict(m) for mid, m in raw["models"].items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise ReferenceProfileError(f"malformed reference profile: {exc!r}") from exc
