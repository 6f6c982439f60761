"""What a synthetic stream is made of: the :class:`StreamSpec` of one model's stream and the :class:`Drift`
injections, with :func:`parse_drift` for the drift syntax of the ``synth_stream.py`` CLI.

The generator itself is :mod:`stream_monitor.devtools.synthetic`; these are the values it is given, checked
when they are built so that a bad spec or drift fails before anything is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DRIFT_KINDS",
    "Drift",
    "DriftKind",
    "Event",
    "StreamSpec",
    "parse_drift",
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
