"""What a drift observation says beyond its statistic: the bins that moved most, the shift of a numeric
signal's mean and spread, a hint when values look rescaled (a unit change upstream), whether a window looks
like the reference shifted or stretched (so that its out-of-range values are that change's tail), and message
helpers."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Final

import numpy as np

from stream_monitor.pipeline.lifecycle import Observation
from stream_monitor.stats.profiles import CategoricalProfile, NumericProfile

# A variance ratio this far from 1 (either way) is named in the message: "variance x1.6", "variance x0.5".
_NOTABLE_VARIANCE_RATIO: Final = 1.2
# How far a window's extremes, in its own sds from its mean, may differ from the reference's (as a ratio)
# for it to look like the reference shifted and stretched. A smaller window reaches less far into the
# tails (about 2.8 sd at 200 values against 4 sd at 40,000), and values piled on one side (a sentinel, a
# partly rescaled feature) reach far on that side and hardly at all on the other.
_SHAPE_TOLERANCE: Final = (0.4, 1.6)
_RESCALE_FACTORS: Final = (10.0, 100.0, 1000.0, 1e6, 60.0, 3600.0, 2.54, 1.609344, 0.45359237, 0.3048)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _with_message(obs: Observation, message: str) -> Observation:
    return dataclasses.replace(obs, message=message)


def _top_bins(
    counts: np.ndarray[Any, Any], ref: NumericProfile | CategoricalProfile, top: int = 3
) -> list[dict[str, Any]]:
    """The bins whose share moved most, each with its range (numeric) or category, and both shares."""
    live = counts / max(counts.sum(), 1)
    base = ref.counts / max(ref.counts.sum(), 1)
    moved = np.argsort(-np.abs(live - base))[:top]
    out = []
    for k in moved:
        if isinstance(ref, NumericProfile):
            lo = ref.edges[k - 1] if k > 0 else None
            hi = ref.edges[k] if k < len(ref.edges) else None
            label: Any = [None if lo is None else float(lo), None if hi is None else float(hi)]
            key = "range"
        else:
            label = ref.categories[k] if k < len(ref.categories) else "(other)"
            key = "category"
        out.append(
            {key: label, "reference_share": round(float(base[k]), 6), "live_share": round(float(live[k]), 6)}
        )
    return out


def _shift_details(
    prof: NumericProfile, mean: float, std: float, extremes: tuple[float, float] = (math.nan, math.nan)
) -> dict[str, Any]:
    scale = prof.std if prof.std > 0 else 1.0
    details: dict[str, Any] = {
        "reference_mean": prof.mean,
        "reference_std": prof.std,
        "window_mean": mean,
        "window_std": std,
        "mean_shift_sd": (mean - prof.mean) / scale,
        "std_ratio": std / scale if prof.std > 0 else None,
        "direction": "up" if mean > prof.mean else "down",
    }
    hint = _rescale_hint(prof, mean, std, extremes)
    if hint:
        details["hint"] = hint
    return details


def _shift_phrase(prof: NumericProfile, mean: float, std: float = math.nan) -> str:
    """The mean's move, led by the variance's when it is notable.

    >>> from stream_monitor.stats.profiles import NumericProfile
    >>> import numpy as np
    >>> prof = NumericProfile(1000, 0, np.array([0.0]), np.array([500, 500]), 10.0, 2.0, 3.0, 17.0)
    >>> _shift_phrase(prof, 10.1, 2.53)
    'variance x1.6, mean 10 -> 10.1 (+0.05 sd)'
    >>> _shift_phrase(prof, 11.0, 2.0)
    'mean 10 -> 11 (+0.50 sd)'
    """
    scale = prof.std if prof.std > 0 else 1.0
    phrase = f"mean {_fmt(prof.mean)} -> {_fmt(mean)} ({(mean - prof.mean) / scale:+.2f} sd)"
    ratio = variance_ratio(prof, std)
    if ratio is not None and max(ratio, 1.0 / ratio) >= _NOTABLE_VARIANCE_RATIO:
        return f"variance x{ratio:.2g}, {phrase}"
    return phrase


def variance_ratio(prof: NumericProfile, std: float) -> float | None:
    """The window's variance over the reference's, when both are defined and positive."""
    if prof.std > 0 and std > 0 and math.isfinite(std):
        return float((std / prof.std) ** 2)
    return None


def keeps_shape(prof: NumericProfile, mean: float, std: float, extremes: tuple[float, float]) -> bool:
    """Whether the window looks like the reference shifted and stretched: its extremes lie about as many of
    its own sds from its mean as the reference's lie from the reference's mean, on both sides. Then values
    beyond the reference's range are the tail of that change, not broken data.

    >>> from stream_monitor.stats.profiles import NumericProfile
    >>> import numpy as np
    >>> prof = NumericProfile(40_000, 0, np.array([0.0]), np.array([1, 1]), 28.0, 1.0, 24.0, 32.0)
    >>> keeps_shape(prof, 28.0, 1.26, (23.3, 32.8))  # variance x1.6
    True
    >>> keeps_shape(prof, 17.7, 102.0, (-999.0, 31.5))  # 1% of the values replaced by -999
    False
    """
    lo, hi = extremes
    if not (prof.std > 0 and std > 0 and all(map(math.isfinite, (mean, std, lo, hi)))):
        return False
    low, high = _SHAPE_TOLERANCE
    pairs = (
        ((hi - mean) / std, (prof.max - prof.mean) / prof.std),
        ((mean - lo) / std, (prof.mean - prof.min) / prof.std),
    )
    return all(ref > 0 and low <= live / ref <= high for live, ref in pairs)


def _rescale_hint(prof: NumericProfile, mean: float, std: float, extremes: tuple[float, float]) -> str | None:
    """Both mean and spread scaled by the same round factor usually means a unit change upstream. A window
    that straddles the change has a mixed mean, so its extremes (the rescaled values dominate them) are
    compared with the reference's too, when the mean moved away from zero as a part of rescaled values would
    move it (a wider spread about an unchanged mean reaches further too, and is no unit change)."""
    if not (prof.std > 0 and std > 0 and abs(prof.mean) > 1e-9 and math.isfinite(mean)):
        return None
    mean_ratio, std_ratio = mean / prof.mean, std / prof.std
    lo, hi = extremes
    grown = (mean - prof.mean) * prof.mean > 0 and abs(mean - prof.mean) >= 0.25 * prof.std
    for factor in _RESCALE_FACTORS:
        for f in (factor, 1.0 / factor):
            whole = abs(mean_ratio / f - 1) < 0.05 and abs(std_ratio / f - 1) < 0.05
            by_extreme = (
                f > 1
                and grown
                and any(
                    ref != 0 and math.isfinite(live) and 0.8 < (live / ref) / f < 1.25
                    for live, ref in ((hi, prof.max), (lo, prof.min))
                )
            )
            if whole or (by_extreme and abs(std_ratio) > f**0.5):
                return f"values look rescaled by x{f:.6g} (a unit change upstream?)"
    return None
