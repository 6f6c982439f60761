"""One alert per cause: the observations of one feature in one window speak as one alert.

When one thing changes on a feature, several detectors see it: a wider spread moves the histogram (a
distance test) and pushes values past the reference's range (``out_of_range``). So every feature-level kind of
a feature (``covariate_drift``, ``data_quality``, ``schema_drift``) shares one episode (:func:`episode_key`),
and :func:`merge` decides what that episode's alert says for a window:

* the **headline** is the strongest firing observation (highest level, then the statistic furthest over its
  threshold): it gives ``detector``, ``severity``, ``statistic``, ``threshold`` and the message;
* the **kind** names the cause: a data problem (``data_quality`` or ``schema_drift``: nulls, values out of
  range, wrong types, a unit change) before a change of the distribution (``covariate_drift``). An
  observation names its cause by its kind, or by its ``cause`` where detection knew better (out-of-range
  values that a shifted or stretched distribution explains name ``covariate_drift``). When the headline names
  another cause, the message adds the line of the observation that named the kind;
* the **other** firing observations go into ``details.also`` (and their detectors into
  ``details.also_flagged_by``, as before merging).

>>> from stream_monitor.core.alerts import AlertKind as K, Severity as S
>>> psi = Observation(K.COVARIATE_DRIFT, "x", S.WARNING, "psi", 0.17, 0.1, 0.1, message="x shifted")
>>> nulls = Observation(K.DATA_QUALITY, "x", S.WARNING, "null_rate", 0.3, 0.25, 0.25, message="x: 30% null")
>>> m = merge([psi, nulls])
>>> m.kind.value, m.top.detector, m.message
('data_quality', 'psi', 'x shifted; x: 30% null')
>>> [(a["kind"], a["detector"], a["severity"]) for a in m.details()["also"]]
[('data_quality', 'null_rate', 'warning')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from stream_monitor.core.alerts import AlertKind
from stream_monitor.pipeline.observation import Observation

# Kinds that share one episode per feature: what a feature's own checks report.
FEATURE_KINDS: Final = frozenset({AlertKind.COVARIATE_DRIFT, AlertKind.DATA_QUALITY, AlertKind.SCHEMA_DRIFT})
# The model-level schema checks (unknown and missing fields) report on this signal, not on a feature.
SCHEMA_SIGNAL: Final = "schema"
# A data problem names the cause before a change of the distribution does.
_PRECEDENCE: Final = {AlertKind.DATA_QUALITY: 1, AlertKind.SCHEMA_DRIFT: 1}


def episode_key(kind: AlertKind, signal: str) -> tuple[str, str]:
    """The episode an observation (or a snapshot's episode) belongs to: one per feature for its
    feature-level kinds, one per (kind, signal) for everything else."""
    if kind in FEATURE_KINDS and signal != SCHEMA_SIGNAL:
        return ("feature", signal)
    return (kind.value, signal)


def strength(o: Observation) -> tuple[int, float]:
    """Highest level first, then the statistic furthest over its threshold."""
    return (o.level.rank if o.level else 0, o.statistic / o.threshold if o.threshold else 0.0)


@dataclass(frozen=True)
class Merged:
    """What one episode's observations of one window say together."""

    top: Observation  # the headline: the strongest observation (firing or not)
    kind: AlertKind  # the kind that names the cause (the headline's when nothing fires)
    also: tuple[Observation, ...]  # the other firing observations, strongest first
    message: str  # the headline's line, and the cause's when the headline names another

    def details(self) -> dict[str, Any]:
        """The headline's details, with ``also`` and ``also_flagged_by`` when other detectors fired too."""
        details = self.top.full_details()
        if not self.also:
            return details
        return {
            **details,
            "also": [
                {
                    "kind": o.kind.value,
                    "detector": o.detector,
                    "statistic": o.statistic,
                    "threshold": o.threshold,
                    "severity": o.level.value if o.level else None,
                    "message": o.message,
                }
                for o in self.also
            ],
            "also_flagged_by": [o.detector for o in self.also],
        }


def merge(group: Sequence[Observation]) -> Merged:
    """The alert one window's observations of one episode make (see the module docstring)."""
    top = max(group, key=strength)
    firing = [o for o in group if o.level is not None]
    if not firing:
        return Merged(top, top.kind, (), top.message)
    rank = max(_PRECEDENCE.get(o.names, 0) for o in firing)
    cause = max((o for o in firing if _PRECEDENCE.get(o.names, 0) == rank), key=strength)
    kind = cause.names
    also = tuple(sorted((o for o in firing if o is not top), key=strength, reverse=True))
    message = top.message if top.names is kind else f"{top.message}; {cause.message}"
    return Merged(top, kind, also, message)
