"""Seeded synthetic model streams with injected drift, for tests, examples, benchmarks and the demo.

A :class:`StreamSpec` describes one model's world: numeric features ``num_00``, ``num_01``, ... drawn from
normal distributions with distinct means and spreads (the first pairs correlated), categorical features
``cat_00``, ... whose categories ``"a"``, ``"b"``, ... have unequal frequencies, and a fixed logistic model
``score = sigmoid(w . x + b)`` over them. :func:`generate` draws feature, prediction and label events from it,
in the wire formats of docs/formats.md, with any number of :class:`Drift` injections.

Two sources of randomness are kept apart:

* the world (feature means and sds, category frequencies, model weights) depends only on ``model_id``, so a
  reference set drawn with seed 1 and a live stream drawn with seed 2 describe the same model, and ``num_03``
  has the same distribution whatever ``n_numeric`` is (see
  :func:`~stream_monitor.devtools.synthetic_world.stream_params`);
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

The generator is split by job: :mod:`~stream_monitor.devtools.synthetic_spec` (the spec, the drifts),
:mod:`~stream_monitor.devtools.synthetic_world` (the world and the seeded random streams),
:mod:`~stream_monitor.devtools.synthetic_draw` (drawing blocks of events), this module (:func:`generate`,
:func:`iter_feature_batches`) and :mod:`~stream_monitor.devtools.synthetic_jsonl` (JSON lines). They are pure
(numpy and the standard library); the only I/O is
:func:`~stream_monitor.devtools.synthetic_jsonl.write_jsonl`.

Examples
--------
>>> from stream_monitor.devtools.synthetic_world import stream_params
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

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream_monitor.devtools.synthetic_draw import (
    _blocks,
    _feature_events,
    _ids,
    _Outcomes,
    _outcomes,
    _Plan,
    _plan,
)
from stream_monitor.devtools.synthetic_spec import Drift, Event, FloatArray, StreamSpec
from stream_monitor.devtools.synthetic_world import _frozen

__all__ = ["SyntheticStream", "generate", "iter_feature_batches"]


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
