"""Values outside the reference's observed range, and what caused them: broken data, or the tail of a change.

A wider spread or a large shift of a feature pushes some values past the reference's ``[min, max]`` too, so
``out_of_range`` fires with the distance test on one cause. It is reported as that cause (covariate drift,
see :mod:`stream_monitor.pipeline.alert_merging`) when a test of the distribution fired in the same window
and the window looks like the reference shifted or stretched
(:func:`~stream_monitor.pipeline.drift_explanations.keeps_shape`); values piled on one side (a sentinel such
as -999, part of a feature rescaled) or a unit change stay a data-quality problem. Such values move the
window's mean and histogram too, often before they are many enough for the range test (a CUSUM sees a few
-999s at once): :func:`blame_broken_values` has the drift tests they set off name them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from stream_monitor.config.schema import DataQualityConfig
from stream_monitor.core.alerts import AlertKind
from stream_monitor.pipeline.drift_checks import rate_observation
from stream_monitor.pipeline.drift_explanations import (
    _finite,
    _fmt,
    _shift_phrase,
    _with_message,
    keeps_shape,
)
from stream_monitor.pipeline.observation import Observation
from stream_monitor.stats.profiles import NumericProfile


def blame_broken_values(
    observations: list[Observation],
    prof: NumericProfile,
    outside: np.ndarray[Any, Any],
    shape: tuple[float, float, tuple[float, float]],
) -> list[Observation]:
    """The feature's observations, with every firing drift test named a data problem when values beyond the
    reference's range break the window's shape (``outside``, ``shape`` as for :func:`range_observation`)."""
    beyond = int(outside.sum())
    mean, std, extremes = shape
    if beyond == 0 or keeps_shape(prof, mean, std, extremes):
        return observations
    lo, hi = (_fmt(x) for x in extremes)
    note = f"driven by {beyond} values beyond the reference range (window min {lo}, max {hi})"
    return [
        dataclasses.replace(o, message=f"{o.message}; {note}", cause=AlertKind.DATA_QUALITY)
        if o.kind is AlertKind.COVARIATE_DRIFT and o.level is not None and o.cause is None
        else o
        for o in observations
    ]


def range_observation(
    dq: DataQualityConfig,
    name: str,
    prof: NumericProfile,
    outside: np.ndarray[Any, Any],
    n: int,
    alphas: tuple[float, float],
    *,
    moved: bool,
    shape: tuple[float, float, tuple[float, float]],
    hint: str | None,
) -> Observation:
    """The ``out_of_range`` test of one numeric feature's window.

    ``outside`` holds the counts below the reference's min and above its max among ``n`` valid values;
    ``moved`` says whether a covariate-drift test of the feature fired in this window; ``shape`` is the
    window's mean, sd and (min, max); ``hint`` the rescale hint of its distance test, if any.
    """
    mean, std, extremes = shape
    obs = rate_observation(
        AlertKind.DATA_QUALITY,
        name,
        "out_of_range",
        int(outside.sum()),
        n,
        0.0,
        dq.range_warning,
        dq.range_critical,
        *alphas,
    )
    obs.details.update(
        {
            "below_reference_min": int(outside[0]),
            "above_reference_max": int(outside[1]),
            "reference_range": [prof.min, prof.max],
            "window_range": [_finite(extremes[0]), _finite(extremes[1])],
        }
    )
    if obs.level is None or not moved:
        return obs
    if hint is not None:  # rescaled: a unit change, a data problem that these values show too
        return _with_message(obs, f"{obs.message}; {hint}")
    if keeps_shape(prof, mean, std, extremes):
        return dataclasses.replace(
            obs, message=f"{obs.message}; {_shift_phrase(prof, mean, std)}", cause=AlertKind.COVARIATE_DRIFT
        )
    return obs
