"""Drawing a synthetic stream block by block: drifts resolved against the spec, feature values, the model's
scores and the labels, and the feature events built from them.

:func:`_plan` checks the drifts against the spec's features once; :func:`_blocks` draws the feature values of
each block of ``_BLOCK`` events (the world, then what is sent), :func:`_outcomes` the block's scores and
labels, and :func:`_feature_events` turns a block into dict events. The order of every draw is fixed, which
is what makes a shorter stream a prefix of a longer one (see :mod:`stream_monitor.devtools.synthetic`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from stream_monitor.devtools.synthetic_spec import (
    _CATEGORICAL_ONLY,
    _NO_FEATURE,
    _NUMERIC_ONLY,
    BoolArray,
    Drift,
    Event,
    FloatArray,
    IntArray,
    StreamSpec,
)
from stream_monitor.devtools.synthetic_world import (
    _BLOCK,
    _DRIFTS,
    _FEATURES,
    _OUTCOMES,
    StreamParams,
    _event_rng,
    stream_params,
)

_PREDICTION_LATENCY_MEAN_S: Final = 0.015
_TS_DECIMALS: Final = 3  # event times to the millisecond
_SCORE_DECIMALS: Final = 4


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
