"""Seeded synthetic model streams with injected drift, for tests, examples, benchmarks and the demo.

A :class:`StreamSpec` describes one model's world: numeric features ``num_00``, ``num_01``, ... drawn from
normal distributions with distinct means and spreads (the first pairs correlated), categorical features
``cat_00``, ... whose categories ``"a"``, ``"b"``, ... have unequal frequencies, and a fixed logistic model
``score = sigmoid(w . x + b)`` over them. :func:`generate` draws feature, prediction and label events from it,
in the wire formats of docs/formats.md, with any number of :class:`Drift` injections.

Two sources of randomness are kept apart:

* the world (feature means and sds, category frequencies, model weights) depends only on ``model_id``, so a
  reference set drawn with seed 1 and a live stream drawn with seed 2 describe the same model, and ``num_03``
  has the same distribution whatever ``n_numeric`` is (see :func:`stream_params`);
* the events depend on ``seed``. They are drawn in fixed blocks, each with its own random streams, so
  ``generate(spec, n)`` is a prefix of ``generate(spec, m)`` for ``n < m``, :func:`iter_feature_batches`
  yields exactly the feature events of :func:`generate`, and a drift changes only what it touches: with the
  same seed, a stream with a drift equals the stream without it before ``start_ts`` and in every other field.

Drifts come in three groups, applied in this fixed order whatever their order in the list:

1. changes of the world, which the labels follow as the world would: ``correlation_flip``,
   ``variance_scale``, ``mean_shift``, ``new_category`` (a new category has no effect on the label);
2. corruptions of what the model and the monitor see, not of the world: ``rescale``, ``type_change``,
   ``null_spike``, ``missing_field``. The labels still follow the true values, so a unit change hurts the
   model's performance. The model coerces a stringified number back and imputes the reference mean (numeric)
   or a neutral effect (categorical) for a null or missing value;
3. changes of the model or of the concept: ``score_shift`` moves the model's logit (labels do not move, so the
   scores lose their calibration); ``concept_switch`` draws the labels from another function (the strongest
   numeric weights flip sign) while inputs and scores stay the same.

Before any concept switch, labels are drawn as Bernoulli(score) from the true inputs, so the scores are
calibrated (exactly so without nulls, up to the 4-decimal rounding of the score).

The module is pure (numpy and the standard library); the only I/O is :func:`write_jsonl` at the bottom.

Examples
--------
>>> spec = StreamSpec(n_numeric=2, n_categorical=1, seed=7)
>>> shift = Drift("mean_shift", "num_00", start_ts=spec.start_ts + 50.0, magnitude=1.0)
>>> stream = generate(spec, 10_000, [shift])
>>> stream.features[0]["event_id"], sorted(stream.features[0]["features"])
('e-000000000', ['cat_00', 'num_00', 'num_01'])
>>> x, ts = stream.columns()["num_00"], stream.timestamps()
>>> before, after = x[ts < shift.start_ts], x[ts >= shift.start_ts]
>>> round(float((after.mean() - before.mean()) / stream_params(spec).sds[0]), 1)
1.0
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import orjson
from numpy.typing import NDArray

__all__ = [
    "DRIFT_KINDS",
    "Drift",
    "DriftKind",
    "Event",
    "StreamParams",
    "StreamSpec",
    "SyntheticStream",
    "encode",
    "generate",
    "iter_feature_batches",
    "parse_drift",
    "stream_params",
    "write_jsonl",
]

Event = dict[str, Any]
"""One JSON event as a plain dict (feature, prediction or label event)."""

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]

DriftKind = Literal[
    "mean_shift",
    "variance_scale",
    "new_category",
    "correlation_flip",
    "score_shift",
    "concept_switch",
    "null_spike",
    "type_change",
    "rescale",
    "missing_field",
]
DRIFT_KINDS: Final[tuple[str, ...]] = get_args(DriftKind)

_NUMERIC_ONLY: Final = frozenset({"mean_shift", "variance_scale", "correlation_flip", "rescale"})
_CATEGORICAL_ONLY: Final = frozenset({"new_category"})
_NO_FEATURE: Final = frozenset({"score_shift", "concept_switch"})
_SHARE_KINDS: Final = frozenset({"new_category", "null_spike", "type_change", "missing_field"})

# Events are drawn in blocks of this many, each block from its own random streams. Changing it changes every
# stream a seed gives (and the committed examples): do not.
_BLOCK: Final = 8192
# Spawn keys of the independent random streams.
_WORLD: Final = 0
_FEATURES: Final = 1
_OUTCOMES: Final = 2
_DRIFTS: Final = 3

_CORRELATION: Final = 0.8
_BIAS: Final = -1.0  # about 30 % positives
_LOGIT_VARIANCE: Final = 4.0  # logit sd 2 over the features: a useful but imperfect model
_NUMERIC_SHARE: Final = 0.75  # of the logit variance, when there are numeric and categorical features
_PREDICTION_LATENCY_MEAN_S: Final = 0.015
_TS_DECIMALS: Final = 3  # event times to the millisecond
_SCORE_DECIMALS: Final = 4


@dataclass(frozen=True)
class Drift:
    """One injected change, in effect for events with ``ts >= start_ts``.

    With ``ramp_seconds > 0`` the change grows linearly from nothing at ``start_ts`` to its full size at
    ``start_ts + ramp_seconds`` (for the share kinds, the share grows; for ``concept_switch``, the share of
    events labelled by the new concept grows).

    Parameters
    ----------
    kind
        What changes (see ``magnitude``).
    feature
        The feature that changes; ``None`` for ``score_shift`` and ``concept_switch``. For
        ``correlation_flip``, either member of a correlated pair (the pair's second member is redrawn).
    start_ts
        Event time (epoch seconds) at which the change starts.
    magnitude
        ``mean_shift``: shift in reference sd units; ``variance_scale``: variance multiplier (> 0, 2.0 doubles
        the variance, mean unchanged); ``new_category``: share of events, in (0, 1], taking the value
        ``category``; ``score_shift``: added to the logit of the score; ``null_spike``: share of nulls, in
        (0, 1]; ``rescale``: multiplier (non-zero, e.g. 1000 for a unit change); ``type_change``: share of
        events, in (0, 1], whose value changes type (a number becomes its string, a category its integer
        code); ``missing_field``: share of events, in (0, 1], without the field; ``correlation_flip``: ignored
        (the pair's correlation +0.8 becomes -0.8, marginals unchanged); ``concept_switch``: ignored.
    ramp_seconds
        Length of the linear ramp; 0 for an abrupt change.
    category
        Name of the new category value for ``new_category``.

    Raises
    ------
    ValueError
        If the kind is unknown, the feature is missing or superfluous, or the magnitude is out of range.

    Examples
    --------
    >>> Drift("null_spike", "num_01", start_ts=100.0, magnitude=0.3, ramp_seconds=10.0).activation(
    ...     np.array([99.0, 100.0, 105.0, 200.0])).tolist()
    [0.0, 0.0, 0.5, 1.0]
    """

    kind: DriftKind
    feature: str | None = None
    start_ts: float = 0.0
    magnitude: float = 0.0
    ramp_seconds: float = 0.0
    category: str = "new_value"

    def __post_init__(self) -> None:
        kind, magnitude = self.kind, self.magnitude
        if kind not in DRIFT_KINDS:
            raise ValueError(f"unknown drift kind {kind!r}; valid kinds: {', '.join(DRIFT_KINDS)}")
        if kind in _NO_FEATURE and self.feature is not None:
            raise ValueError(f"a {kind} drift applies to the model, not to a feature (got {self.feature!r})")
        if kind not in _NO_FEATURE and not self.feature:
            raise ValueError(f"a {kind} drift needs a feature name")
        for name in ("start_ts", "magnitude", "ramp_seconds"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"drift {name} must be finite, got {getattr(self, name)!r}")
        if self.ramp_seconds < 0:
            raise ValueError(f"drift ramp_seconds must be >= 0, got {self.ramp_seconds}")
        if kind in _SHARE_KINDS and not 0.0 < magnitude <= 1.0:
            raise ValueError(f"{kind} magnitude is a share of events in (0, 1], got {magnitude}")
        if kind == "variance_scale" and magnitude <= 0.0:
            raise ValueError(
                f"variance_scale magnitude is a variance multiplier > 0 (2.0 doubles it), got {magnitude}"
            )
        if kind == "rescale" and magnitude == 0.0:
            raise ValueError(
                "rescale magnitude is a non-zero multiplier (e.g. 1000 for a unit change), got 0"
            )
        if kind == "new_category" and not self.category:
            raise ValueError("new_category needs a non-empty category name")

    def activation(self, ts: FloatArray) -> FloatArray:
        """Return the share of the full change in effect at each event time.

        Parameters
        ----------
        ts
            Event times, epoch seconds.

        Returns
        -------
        numpy.ndarray
            0 before ``start_ts``, rising linearly to 1 over ``ramp_seconds`` (a step when it is 0).
        """
        if self.ramp_seconds == 0.0:
            return (ts >= self.start_ts).astype(np.float64)
        return np.clip((ts - self.start_ts) / self.ramp_seconds, 0.0, 1.0)


@dataclass(frozen=True)
class StreamSpec:
    """What to generate: the model, its features, the event rate, label behaviour and the seed.

    Parameters
    ----------
    model_id
        ``model_id`` of every event; it also seeds the world (see :func:`stream_params`).
    n_numeric
        Number of numeric features, named ``num_00``, ``num_01``, ...
    n_categorical
        Number of categorical features, named ``cat_00``, ...; each has 4 to 8 categories ``"a"``,
        ``"b"``, ... with unequal frequencies, ``"a"`` the most frequent.
    events_per_second
        Mean event rate; inter-arrival times are exponential, the first event is at ``start_ts``.
    start_ts
        Event time of the first event, epoch seconds.
    correlated_pairs
        ``(num_00, num_01)`` have correlation +0.8 when >= 1, ``(num_02, num_03)`` when >= 2, ...; at most
        ``n_numeric // 2`` pairs are built.
    null_rate
        Baseline share of nulls in every feature, in [0, 1).
    label_delay_mean_s
        Mean of the exponential delay between a prediction and its label.
    label_drop_rate
        Share of predictions whose label never arrives.
    with_predictions, with_labels
        Whether to produce prediction and label events.
    seed
        Seed of the event-level randomness (a non-negative integer).
    decimals
        Numeric feature values are rounded to this many decimals (``None``: full precision). Event times are
        always rounded to the millisecond and scores to 4 decimals.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    model_id: str = "churn-v3"
    n_numeric: int = 5
    n_categorical: int = 2
    events_per_second: float = 100.0
    start_ts: float = 1763766000.0
    correlated_pairs: int = 1
    null_rate: float = 0.0
    label_delay_mean_s: float = 3600.0
    label_drop_rate: float = 0.1
    with_predictions: bool = True
    with_labels: bool = True
    seed: int = 0
    decimals: int | None = 3

    def __post_init__(self) -> None:
        if not self.model_id:
            raise ValueError("model_id must be a non-empty string")
        if self.n_numeric < 0 or self.n_categorical < 0 or self.n_numeric + self.n_categorical == 0:
            raise ValueError(
                f"need n_numeric >= 0, n_categorical >= 0 and at least one feature, "
                f"got n_numeric={self.n_numeric}, n_categorical={self.n_categorical}"
            )
        if not (math.isfinite(self.events_per_second) and self.events_per_second > 0):
            raise ValueError(f"events_per_second must be > 0, got {self.events_per_second}")
        if not math.isfinite(self.start_ts):
            raise ValueError(f"start_ts must be finite, got {self.start_ts}")
        if self.correlated_pairs < 0:
            raise ValueError(f"correlated_pairs must be >= 0, got {self.correlated_pairs}")
        if not 0.0 <= self.null_rate < 1.0:
            raise ValueError(f"null_rate must be in [0, 1), got {self.null_rate}")
        if not (math.isfinite(self.label_delay_mean_s) and self.label_delay_mean_s >= 0):
            raise ValueError(f"label_delay_mean_s must be >= 0, got {self.label_delay_mean_s}")
        if not 0.0 <= self.label_drop_rate <= 1.0:
            raise ValueError(f"label_drop_rate must be in [0, 1], got {self.label_drop_rate}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        if self.decimals is not None and self.decimals < 0:
            raise ValueError(f"decimals must be >= 0 or None, got {self.decimals}")

    @property
    def numeric_names(self) -> tuple[str, ...]:
        """Names of the numeric features, ``num_00``, ``num_01``, ..."""
        return tuple(f"num_{j:02d}" for j in range(self.n_numeric))

    @property
    def categorical_names(self) -> tuple[str, ...]:
        """Names of the categorical features, ``cat_00``, ``cat_01``, ..."""
        return tuple(f"cat_{j:02d}" for j in range(self.n_categorical))


@dataclass(frozen=True, eq=False)
class StreamParams:
    """The world of a :class:`StreamSpec`: feature distributions and the logistic model (read-only arrays).

    The model's logit is ``bias + sum_j numeric_weights[j] * (x_j - means[j]) / sds[j]
    + sum_j category_effects[j][code_j]``; after a ``concept_switch`` the labels follow the same formula
    with ``switched_numeric_weights`` and ``switched_category_effects``.
    """

    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    means: FloatArray
    sds: FloatArray
    pairs: tuple[tuple[int, int], ...]
    correlation: float
    categories: tuple[tuple[str, ...], ...]
    category_probs: tuple[FloatArray, ...]
    numeric_weights: FloatArray
    category_effects: tuple[FloatArray, ...]
    bias: float
    switched_numeric_weights: FloatArray
    switched_category_effects: tuple[FloatArray, ...]


def _world_rng(model_id: str, *key: int) -> np.random.Generator:
    entropy = int.from_bytes(hashlib.sha256(model_id.encode()).digest()[:8], "big")
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(_WORLD, *key)))


def _event_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _frozen(a: FloatArray) -> FloatArray:
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=64)
def _params(model_id: str, n_numeric: int, n_categorical: int, n_pairs: int) -> StreamParams:
    k, c = n_numeric, n_categorical
    means, sds, raw_w = np.empty(k), np.empty(k), np.empty(k)
    for j in range(k):
        rng = _world_rng(model_id, 0, j)
        means[j] = round(float(rng.uniform(-2.0, 50.0)), 2)
        sds[j] = round(float(np.exp(rng.uniform(np.log(0.5), np.log(20.0)))), 2)
        raw_w[j] = rng.normal()
    pairs = tuple((2 * p, 2 * p + 1) for p in range(n_pairs))
    corr = np.eye(k)
    for a, b in pairs:
        corr[a, b] = corr[b, a] = _CORRELATION

    categories: list[tuple[str, ...]] = []
    probs: list[FloatArray] = []
    raw_effects: list[FloatArray] = []
    for j in range(c):
        rng = _world_rng(model_id, 1, j)
        n_cat = int(rng.integers(4, 9))
        p = np.sort(rng.uniform(0.7, 1.3, n_cat) / np.arange(1, n_cat + 1))[::-1]
        p = p / p.sum()
        effects = rng.normal(size=n_cat)
        categories.append(tuple(chr(ord("a") + i) for i in range(n_cat)))
        probs.append(p)
        raw_effects.append(effects - p @ effects)  # centred: mean effect 0 under the reference

    numeric_var = _LOGIT_VARIANCE * (_NUMERIC_SHARE if c else 1.0) if k else 0.0
    categorical_var = _LOGIT_VARIANCE - numeric_var
    weights = raw_w * math.sqrt(numeric_var / float(raw_w @ corr @ raw_w)) if k else raw_w
    raw_cat_var = sum(float(p @ e**2) for p, e in zip(probs, raw_effects, strict=True))
    cat_scale = math.sqrt(categorical_var / raw_cat_var) if c else 0.0
    effects_scaled = [e * cat_scale for e in raw_effects]

    switched_w = weights.copy()
    strongest = np.argsort(-np.abs(weights), kind="stable")[: math.ceil(k / 2)]
    switched_w[strongest] *= -1.0
    switched_effects = [-e if k == 0 else e.copy() for e in effects_scaled]
    return StreamParams(
        numeric_names=tuple(f"num_{j:02d}" for j in range(k)),
        categorical_names=tuple(f"cat_{j:02d}" for j in range(c)),
        means=_frozen(means),
        sds=_frozen(sds),
        pairs=pairs,
        correlation=_CORRELATION,
        categories=tuple(categories),
        category_probs=tuple(_frozen(p) for p in probs),
        numeric_weights=_frozen(weights),
        category_effects=tuple(_frozen(e) for e in effects_scaled),
        bias=_BIAS,
        switched_numeric_weights=_frozen(switched_w),
        switched_category_effects=tuple(_frozen(e) for e in switched_effects),
    )


def stream_params(spec: StreamSpec) -> StreamParams:
    """Return the world of ``spec``: feature means, sds, correlations, categories and model weights.

    It depends only on ``model_id``, the feature counts and ``correlated_pairs``, never on ``seed``; the
    parameters of one feature do not depend on how many others there are (the weights are rescaled together
    so that the logit keeps a standard deviation of about 2).

    Parameters
    ----------
    spec
        The stream specification.

    Returns
    -------
    StreamParams
        Means in [-2, 50], sds in [0.5, 20] (log-uniform), correlated pairs, categories and the model.

    Examples
    --------
    >>> p1 = stream_params(StreamSpec(seed=1))
    >>> p2 = stream_params(StreamSpec(seed=2, n_numeric=8))
    >>> bool(p1.means[3] == p2.means[3]), p1.pairs, p1.categories[0][:3]
    (True, ((0, 1),), ('a', 'b', 'c'))
    """
    n_pairs = min(spec.correlated_pairs, spec.n_numeric // 2)
    return _params(spec.model_id, spec.n_numeric, spec.n_categorical, n_pairs)


# ---------------------------------------------------------------------------------------------------------
# Planning: drifts resolved against the spec's features.


@dataclass(frozen=True)
class _Target:
    index: int  # position in the drift list, which keys its random stream
    drift: Drift
    column: int  # numeric j, or n_numeric + categorical j; -1 for model drifts


@dataclass(frozen=True)
class _Plan:
    spec: StreamSpec
    params: StreamParams
    targets: tuple[_Target, ...]
    vocab: tuple[NDArray[np.object_], ...]  # per categorical feature: categories then new ones
    new_codes: dict[int, int]  # drift index -> category code of its new category
    names: tuple[str, ...]

    def of_kind(self, *kinds: str) -> list[_Target]:
        return [t for t in self.targets if t.drift.kind in kinds]


def _plan(spec: StreamSpec, drifts: Sequence[Drift]) -> _Plan:
    params = stream_params(spec)
    k = spec.n_numeric
    names = params.numeric_names + params.categorical_names
    extra: list[list[str]] = [[] for _ in params.categorical_names]
    new_codes: dict[int, int] = {}
    targets = []
    for index, drift in enumerate(drifts):
        if not isinstance(drift, Drift):
            raise TypeError(f"drifts[{index}] is a {type(drift).__name__}, not a Drift")
        column = -1
        if drift.kind not in _NO_FEATURE:
            if drift.feature not in names:
                raise ValueError(
                    f"drifts[{index}] ({drift.kind}) names unknown feature {drift.feature!r}; "
                    f"features of this spec: {', '.join(names)}"
                )
            column = names.index(drift.feature)
            if drift.kind in _NUMERIC_ONLY and column >= k:
                raise ValueError(
                    f"drifts[{index}]: {drift.kind} needs a numeric feature, {drift.feature} is categorical"
                )
            if drift.kind in _CATEGORICAL_ONLY and column < k:
                raise ValueError(
                    f"drifts[{index}]: {drift.kind} needs a categorical feature, {drift.feature} is numeric"
                )
            if drift.kind == "correlation_flip" and not any(column in pair for pair in params.pairs):
                paired = ", ".join(f"{names[a]}/{names[b]}" for a, b in params.pairs) or "none"
                raise ValueError(
                    f"drifts[{index}]: correlation_flip needs a feature of a correlated pair ({paired}), "
                    f"got {drift.feature}"
                )
            if drift.kind == "new_category":
                cats = params.categories[column - k]
                if drift.category in cats:
                    raise ValueError(
                        f"drifts[{index}]: {drift.category!r} is already a category of {drift.feature}"
                    )
                vocab_extra = extra[column - k]
                if drift.category not in vocab_extra:
                    vocab_extra.append(drift.category)
                new_codes[index] = len(cats) + vocab_extra.index(drift.category)
        targets.append(_Target(index, drift, column))
    vocab = tuple(
        np.array(list(cats) + ext, dtype=object) for cats, ext in zip(params.categories, extra, strict=True)
    )
    return _Plan(spec, params, tuple(targets), vocab, new_codes, names)


# ---------------------------------------------------------------------------------------------------------
# Drawing one block of events as arrays.


@dataclass
class _Block:
    first: int  # global number of its first event
    ts: FloatArray  # feature event times (rounded)
    true_num: FloatArray  # (n, k) the world's values
    num: FloatArray  # (n, k) what is sent (rescaled, rounded); type-changed values keep their number
    cat: IntArray  # (n, c) category codes into the plan's vocab
    null: BoolArray | None  # (n, k + c)
    missing: BoolArray | None
    as_other_type: BoolArray | None

    @property
    def n(self) -> int:
        return len(self.ts)

    def absent(self) -> BoolArray:
        """(n, k + c) True where the model and the monitor get no value (null or missing)."""
        shape = (self.n, self.num.shape[1] + self.cat.shape[1])
        out = np.zeros(shape, dtype=bool)
        for mask in (self.null, self.missing):
            if mask is not None:
                out |= mask
        return out


def _drift_uniforms(spec: StreamSpec, block: int, target: _Target, n: int) -> FloatArray:
    return _event_rng(spec.seed, _DRIFTS, block, target.index).random(_BLOCK)[:n]


def _with_column(mask: BoolArray | None, column: int, rows: BoolArray, width: int) -> BoolArray:
    """Return ``mask`` (all False, ``(len(rows), width)``, when None) with ``rows`` set in ``column``."""
    if mask is None:
        mask = np.zeros((len(rows), width), dtype=bool)
    mask[:, column] |= rows
    return mask


def _blocks(plan: _Plan, n_events: int) -> Iterator[tuple[int, _Block]]:
    spec, params = plan.spec, plan.params
    k, c = spec.n_numeric, spec.n_categorical
    cum_probs = [np.cumsum(p) for p in params.category_probs]
    carry = spec.start_ts
    for b in range(math.ceil(n_events / _BLOCK)):
        n = min(_BLOCK, n_events - b * _BLOCK)
        rng = _event_rng(spec.seed, _FEATURES, b)
        # Always draw full blocks, in a fixed order, so that every count gives a prefix of the same stream.
        gaps = rng.exponential(1.0 / spec.events_per_second, _BLOCK)
        normals = rng.standard_normal((_BLOCK, k))[:n]
        u_cat = rng.random((_BLOCK, c))[:n]
        u_null = rng.random((_BLOCK, k + c))[:n] if spec.null_rate > 0 else None
        elapsed = np.cumsum(gaps)
        ts = np.round(carry + np.concatenate(([0.0], elapsed[: n - 1])), _TS_DECIMALS)
        carry += float(elapsed[-1])

        def act(t: _Target, ts: FloatArray = ts) -> FloatArray:
            return t.drift.activation(ts)

        def uniforms(t: _Target, b: int = b, n: int = n) -> FloatArray:
            return _drift_uniforms(spec, b, t, n)

        # 1. The world. Each correlated pair is z_b = rho * e_a + sqrt(1 - rho^2) * e_b (the Cholesky factor
        # of [[1, rho], [rho, 1]]); a flip moves rho to -rho (linearly over a ramp), marginals stay N(0, 1).
        z = normals.copy()
        for a, b2 in params.pairs:
            rho = np.full(n, params.correlation)
            for t in plan.of_kind("correlation_flip"):
                if t.column in (a, b2):
                    rho = rho * (1.0 - 2.0 * act(t))
            z[:, b2] = rho * normals[:, a] + np.sqrt(1.0 - rho**2) * normals[:, b2]
        true_num = params.means + params.sds * z
        for t in plan.of_kind("variance_scale"):
            j, mu = t.column, params.means[t.column]
            true_num[:, j] = mu + (true_num[:, j] - mu) * np.sqrt(1.0 + act(t) * (t.drift.magnitude - 1.0))
        for t in plan.of_kind("mean_shift"):
            true_num[:, t.column] += act(t) * t.drift.magnitude * params.sds[t.column]
        cat = np.empty((n, c), dtype=np.intp)
        for j in range(c):
            codes = np.searchsorted(cum_probs[j], u_cat[:, j], side="right")
            cat[:, j] = np.minimum(codes, len(cum_probs[j]) - 1)
        for t in plan.of_kind("new_category"):
            cat[uniforms(t) < act(t) * t.drift.magnitude, t.column - k] = plan.new_codes[t.index]

        # 2. What is sent.
        num = true_num.copy()
        for t in plan.of_kind("rescale"):
            num[:, t.column] *= 1.0 + act(t) * (t.drift.magnitude - 1.0)
        if spec.decimals is not None:
            num = np.round(num, spec.decimals)
        null = u_null < spec.null_rate if u_null is not None else None
        as_other_type = missing = None
        for t in plan.of_kind("null_spike"):
            # Extra nulls on top of the baseline ones, so that the total share reaches the magnitude.
            extra = max(t.drift.magnitude - spec.null_rate, 0.0) / (1.0 - spec.null_rate)
            null = _with_column(null, t.column, uniforms(t) < act(t) * extra, k + c)
        for t in plan.of_kind("type_change"):
            as_other_type = _with_column(
                as_other_type, t.column, uniforms(t) < act(t) * t.drift.magnitude, k + c
            )
        for t in plan.of_kind("missing_field"):
            missing = _with_column(missing, t.column, uniforms(t) < act(t) * t.drift.magnitude, k + c)
        yield b, _Block(b * _BLOCK, ts, true_num, num, cat, null, missing, as_other_type)


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = np.exp(-np.logaddexp(0.0, -x))
    return out


def _logit(
    params: StreamParams,
    x: FloatArray,
    codes: IntArray,
    weights: FloatArray,
    effects: tuple[FloatArray, ...],
    absent: BoolArray | None = None,
) -> FloatArray:
    """Logit of the model with ``weights`` and ``effects``; new categories and ``absent`` categories add 0."""
    out: FloatArray = params.bias + ((x - params.means) / params.sds) @ weights
    for j, e in enumerate(effects):
        padded = np.zeros(max(len(e), int(codes[:, j].max(initial=-1)) + 1))
        padded[: len(e)] = e
        contribution = padded[codes[:, j]]
        if absent is not None:
            contribution[absent[:, j]] = 0.0
        out += contribution
    return out


@dataclass
class _Outcomes:
    pred_ts: FloatArray
    score: FloatArray
    label_ts: FloatArray
    label: NDArray[np.int64]
    label_kept: BoolArray


def _outcomes(plan: _Plan, b: int, block: _Block) -> _Outcomes:
    spec, params = plan.spec, plan.params
    k, n = spec.n_numeric, block.n
    rng = _event_rng(spec.seed, _OUTCOMES, b)
    latency = rng.exponential(_PREDICTION_LATENCY_MEAN_S, _BLOCK)[:n]
    u_label = rng.random(_BLOCK)[:n]
    u_drop = rng.random(_BLOCK)[:n]
    delay = rng.exponential(spec.label_delay_mean_s, _BLOCK)[:n]

    # What the model sees: sent values, with the reference mean (numeric) or a neutral effect (categorical)
    # for a null or missing value. A stringified number is coerced back, so it keeps its value.
    absent = block.absent()
    seen_num = np.where(absent[:, :k], params.means, block.num)
    model_logit = _logit(
        params, seen_num, block.cat, params.numeric_weights, params.category_effects, absent[:, k:]
    )
    for t in plan.of_kind("score_shift"):
        model_logit += t.drift.activation(block.ts) * t.drift.magnitude
    score = np.round(_sigmoid(model_logit), _SCORE_DECIMALS)

    # The truth follows the world's values, whatever was sent.
    p_true = _sigmoid(
        _logit(params, block.true_num, block.cat, params.numeric_weights, params.category_effects)
    )
    switches = plan.of_kind("concept_switch")
    if switches:
        switched = np.zeros(n, dtype=bool)
        for t in switches:
            switched |= _drift_uniforms(spec, b, t, n) < t.drift.activation(block.ts)
        p_new = _sigmoid(
            _logit(
                params,
                block.true_num,
                block.cat,
                params.switched_numeric_weights,
                params.switched_category_effects,
            )
        )
        p_true = np.where(switched, p_new, p_true)
    pred_ts = block.ts + latency
    return _Outcomes(
        pred_ts=np.round(pred_ts, _TS_DECIMALS),
        score=score,
        label_ts=np.round(pred_ts + delay, _TS_DECIMALS),
        label=(u_label < p_true).astype(np.int64),
        label_kept=u_drop >= spec.label_drop_rate,
    )


# ---------------------------------------------------------------------------------------------------------
# Building the dict events.


def _ids(first: int, n: int) -> list[str]:
    return list(map("e-{:09d}".format, range(first, first + n)))


def _feature_events(plan: _Plan, block: _Block, ids: list[str]) -> list[Event]:
    k = plan.spec.n_numeric
    cols: list[list[Any]] = [block.num[:, j].tolist() for j in range(k)]
    cols += [vocab[block.cat[:, j]].tolist() for j, vocab in enumerate(plan.vocab)]
    if block.as_other_type is not None:
        for col, values in enumerate(cols):
            for i in np.flatnonzero(block.as_other_type[:, col]).tolist():
                values[i] = str(values[i]) if col < k else int(block.cat[i, col - k])
    if block.null is not None:
        for col, values in enumerate(cols):
            for i in np.flatnonzero(block.null[:, col]).tolist():
                values[i] = None
    names = plan.names
    # Every column has block.n values by construction; passing strict= costs ~1 s per 1M events here.
    rows = [dict(zip(names, values)) for values in zip(*cols)]  # noqa: B905
    if block.missing is not None:
        for col, name in enumerate(names):
            for i in np.flatnonzero(block.missing[:, col]).tolist():
                del rows[i][name]
    model_id = plan.spec.model_id
    return [
        {"event_id": event_id, "model_id": model_id, "ts": ts, "features": row}
        for event_id, ts, row in zip(ids, block.ts.tolist(), rows, strict=True)
    ]


@dataclass(frozen=True, eq=False)
class SyntheticStream:
    """The events of one generated stream, each list sorted by ``ts`` (ties in event order).

    Attributes
    ----------
    spec, drifts
        What was generated.
    features, predictions, labels
        Feature, prediction and label events as dicts in the wire format of docs/formats.md. Predictions share the
        ``event_id`` of their feature event and come 15 ms later on average; a label shares the ``event_id``
        of its prediction and comes an exponential delay after it; dropped labels never come.
    """

    spec: StreamSpec
    drifts: tuple[Drift, ...]
    features: list[Event] = field(repr=False)
    predictions: list[Event] = field(repr=False)
    labels: list[Event] = field(repr=False)
    _ts: FloatArray = field(repr=False)
    _columns: dict[str, FloatArray] = field(repr=False)

    def columns(self) -> dict[str, FloatArray]:
        """Return the numeric features as read-only float arrays in feature event order.

        Returns
        -------
        dict of str to numpy.ndarray
            One array per numeric feature: the value sent (after any rescale and rounding; a stringified
            number as its number), NaN where the value is null or the field is missing.
        """
        return dict(self._columns)

    def timestamps(self) -> FloatArray:
        """Return the feature events' ``ts`` as a read-only float array, aligned with :meth:`columns`."""
        return self._ts

    def time_ordered(self) -> Iterator[tuple[str, Event]]:
        """Yield ``(kind, event)`` for all events merged in ``ts`` order, kind being the file stem.

        Yields
        ------
        tuple of str and dict
            ``("features" | "predictions" | "labels", event)``; at equal ``ts`` features come first.
        """

        def tagged(
            order: int, kind: str, events: list[Event]
        ) -> Iterator[tuple[float, int, int, str, Event]]:
            return ((event["ts"], order, i, kind, event) for i, event in enumerate(events))

        merged = heapq.merge(
            tagged(0, "features", self.features),
            tagged(1, "predictions", self.predictions),
            tagged(2, "labels", self.labels),
        )
        for _, _, _, kind, event in merged:
            yield kind, event


def generate(spec: StreamSpec, n_events: int, drifts: Sequence[Drift] = ()) -> SyntheticStream:
    """Generate a stream of ``n_events`` feature events, with their predictions and labels.

    Parameters
    ----------
    spec
        What to generate.
    n_events
        Number of feature events (and of predictions, when ``spec.with_predictions``).
    drifts
        Changes to inject (see :class:`Drift`).

    Returns
    -------
    SyntheticStream
        The events, each list sorted by ``ts``. The same arguments give identical events.

    Raises
    ------
    ValueError
        If ``n_events < 0`` or a drift does not fit the spec (unknown feature, wrong feature type, ...).

    Examples
    --------
    >>> s = generate(StreamSpec(seed=3, n_numeric=1, n_categorical=1, label_delay_mean_s=60.0), 2000,
    ...              [Drift("concept_switch", start_ts=1763766010.0)])
    >>> len(s.features), len(s.predictions), 1700 < len(s.labels) < 1900
    (2000, 2000, True)
    >>> sorted(s.predictions[0]), sorted(s.labels[0])
    (['event_id', 'model_id', 'prediction', 'score', 'ts'], ['event_id', 'label', 'model_id', 'ts'])
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    plan = _plan(spec, drifts)
    k = spec.n_numeric
    wants_outcomes = spec.with_predictions or spec.with_labels
    features: list[Event] = []
    ids: list[str] = []
    ts_parts: list[FloatArray] = []
    num_parts: list[FloatArray] = []
    outcomes: list[_Outcomes] = []
    for b, block in _blocks(plan, n_events):
        block_ids = _ids(block.first, block.n)
        ids += block_ids
        features += _feature_events(plan, block, block_ids)
        ts_parts.append(block.ts)
        num_parts.append(np.where(block.absent()[:, :k], np.nan, block.num))
        if wants_outcomes:
            outcomes.append(_outcomes(plan, b, block))

    ts = _frozen(np.concatenate(ts_parts) if ts_parts else np.empty(0))
    num = np.concatenate(num_parts) if num_parts else np.empty((0, k))
    columns = {
        name: _frozen(np.ascontiguousarray(num[:, j])) for j, name in enumerate(plan.params.numeric_names)
    }
    predictions: list[Event] = []
    labels: list[Event] = []
    if outcomes:
        pred_ts = np.concatenate([o.pred_ts for o in outcomes])
        model_id = spec.model_id
        if spec.with_predictions:
            score = np.concatenate([o.score for o in outcomes])
            order = np.argsort(pred_ts, kind="stable")
            predictions = [
                {"event_id": ids[i], "model_id": model_id, "ts": t, "prediction": int(s >= 0.5), "score": s}
                for i, t, s in zip(
                    order.tolist(), pred_ts[order].tolist(), score[order].tolist(), strict=True
                )
            ]
        if spec.with_labels:
            kept = np.flatnonzero(np.concatenate([o.label_kept for o in outcomes]))
            label_ts = np.concatenate([o.label_ts for o in outcomes])[kept]
            label = np.concatenate([o.label for o in outcomes])[kept]
            order = np.argsort(label_ts, kind="stable")
            labels = [
                {"event_id": ids[i], "model_id": model_id, "ts": t, "label": y}
                for i, t, y in zip(
                    kept[order].tolist(), label_ts[order].tolist(), label[order].tolist(), strict=True
                )
            ]
    return SyntheticStream(spec, tuple(drifts), features, predictions, labels, ts, columns)


def iter_feature_batches(
    spec: StreamSpec, n_events: int, batch_size: int, drifts: Sequence[Drift] = ()
) -> Iterator[list[Event]]:
    """Yield the feature events of ``generate(spec, n_events, drifts)`` in lists of ``batch_size``.

    Memory stays bounded by one internal block (8192 events) plus one batch, whatever ``n_events`` is, so a
    benchmark can stream tens of millions of events. Only feature events are produced.

    Parameters
    ----------
    spec, n_events, drifts
        As for :func:`generate`.
    batch_size
        Events per yielded list (the last one may be shorter).

    Yields
    ------
    list of dict
        Consecutive feature events, identical to ``generate(spec, n_events, drifts).features``.

    Raises
    ------
    ValueError
        If ``batch_size < 1``, ``n_events < 0`` or a drift does not fit the spec.

    Examples
    --------
    >>> spec = StreamSpec(seed=5)
    >>> batches = list(iter_feature_batches(spec, 1000, 300))
    >>> [len(b) for b in batches], sum(batches, []) == generate(spec, 1000).features
    ([300, 300, 300, 100], True)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    plan = _plan(spec, drifts)
    return _batches(plan, n_events, batch_size)


def _batches(plan: _Plan, n_events: int, batch_size: int) -> Iterator[list[Event]]:
    pending: list[Event] = []
    for _, block in _blocks(plan, n_events):
        pending += _feature_events(plan, block, _ids(block.first, block.n))
        start = 0
        while len(pending) - start >= batch_size:
            yield pending[start : start + batch_size]
            start += batch_size
        del pending[:start]
    if pending:
        yield pending


def parse_drift(text: str, stream_start_ts: float) -> Drift:
    """Parse a drift written as ``kind[:feature][:key=value]...``, as the ``synth_stream.py`` CLI takes it.

    Keys are ``start`` (epoch seconds, or ``+seconds`` after ``stream_start_ts``), ``magnitude``, ``ramp``
    (seconds) and ``category``.

    Parameters
    ----------
    text
        For example ``mean_shift:num_00:start=+600:magnitude=0.5`` or ``score_shift:start=+900:magnitude=1``.
    stream_start_ts
        What a relative ``start=+...`` counts from.

    Returns
    -------
    Drift
        The parsed drift.

    Raises
    ------
    ValueError
        If the text is malformed, names an unknown kind or key, or gives a bad value.

    Examples
    --------
    >>> d = parse_drift("mean_shift:num_00:start=+600:magnitude=0.5", 1000.0)
    >>> d.kind, d.feature, d.start_ts, d.magnitude
    ('mean_shift', 'num_00', 1600.0, 0.5)
    """
    kind, *parts = text.split(":")
    if kind not in DRIFT_KINDS:
        raise ValueError(f"drift {text!r}: unknown kind {kind!r}; valid kinds: {', '.join(DRIFT_KINDS)}")
    feature: str | None = None
    if parts and "=" not in parts[0]:
        feature, *parts = parts
    values: dict[str, Any] = {}
    keys = {"start": "start_ts", "magnitude": "magnitude", "ramp": "ramp_seconds", "category": "category"}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in keys:
            raise ValueError(
                f"drift {text!r}: expected key=value with key in {', '.join(keys)}, got {part!r}"
            )
        if key == "category":
            values["category"] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"drift {text!r}: {key} must be a number, got {value!r}") from None
        if key == "start" and value.startswith("+"):
            number += stream_start_ts
        values[keys[key]] = number
    return Drift(kind, feature, **values)  # type: ignore[arg-type]  # kind checked against DRIFT_KINDS above


# ---------------------------------------------------------------------------------------------------------
# I/O: JSON lines with orjson.


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
