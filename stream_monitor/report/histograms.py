"""The histogram of the window that fired: the reference's shares against the window's, bin by bin.

A signal's alert carries its window's counts (or, from a test that does not histogram, the top bins that
moved); the reference profile gives the bins and their labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any, Final

from stream_monitor.core.alerts import AlertKind
from stream_monitor.report.model import LEVELS, Histogram
from stream_monitor.stats.profiles import CategoricalProfile, ModelProfile, NumericProfile

MAX_CATEGORIES: Final = 24  # a categorical histogram shows the categories that weigh most, then the rest
# Signals that are not one distribution: no histogram.
_NO_HISTOGRAM_KINDS: Final = {AlertKind.CONCEPT_DRIFT.value, AlertKind.LABEL_LAG.value}


def signal_profile(
    kind: str, signal: str, profile: ModelProfile | None
) -> NumericProfile | CategoricalProfile | None:
    """The reference distribution a signal is tested against, if it is one distribution."""
    if profile is None or kind in _NO_HISTOGRAM_KINDS:
        return None
    if kind == AlertKind.PREDICTION_DRIFT.value and profile.predictions is not None:
        return profile.predictions.score if signal == "score" else profile.predictions.prediction
    return profile.features.get(signal)


def bin_labels(ref: NumericProfile | CategoricalProfile) -> tuple[str, ...]:
    """A label per reference bin: ranges with open tails (numeric), categories then ``(other)``.

    >>> import numpy as np
    >>> p = NumericProfile(10, 0, np.array([1.0, 2.5]), np.array([3, 4, 3]), 2.0, 1.0, 0.0, 4.0)
    >>> bin_labels(p)
    ('< 1', '1 – 2.5', '≥ 2.5')
    """
    if isinstance(ref, NumericProfile):
        e = [f"{x:.4g}" for x in ref.edges]
        if not e:
            return ("all",)
        return (f"< {e[0]}", *(f"{a} – {b}" for a, b in pairwise(e)), f"≥ {e[-1]}")
    return (*(str(c) for c in ref.categories), "(other)")


def _shares(counts: Sequence[float]) -> tuple[float, ...]:
    total = float(sum(counts))
    return tuple(float(c) / total if total > 0 else 0.0 for c in counts)


def _histogram(
    signal: str,
    firing: Sequence[Mapping[str, Any]],
    tests: Mapping[tuple[str, str], list[Mapping[str, Any]]],
    profile: ModelProfile | None,
) -> Histogram | None:
    """The histogram of the window that fired: the first firing event at the worst severity among the
    signal's alerts of a distribution (not performance or labels)."""
    firing = [a for a in firing if a["kind"] not in _NO_HISTOGRAM_KINDS]
    if not firing:
        return None
    top = max(LEVELS.get(str(a["severity"]), 0) for a in firing)
    alert = next(a for a in firing if LEVELS.get(str(a["severity"]), 0) == top)
    ref = signal_profile(str(alert["kind"]), signal, profile)
    details = alert.get("details") or {}
    end = float(alert["window"]["end_ts"])
    counts = details.get("window_counts")
    detector = str(alert["detector"])
    if (
        counts is None
    ):  # another test spoke for the signal: its distance test of that window has the histogram
        for (_, det), recs in tests.items():
            for r in recs:
                rc = (r.get("details") or {}).get("window_counts")
                if rc is not None and abs(float(r["window"]["end_ts"]) - end) < 1e-6:
                    counts, detector = rc, det
                    break
            if counts is not None:
                break
    start = float(alert["window"]["start_ts"])
    severity = str(alert["severity"])
    if ref is not None and counts is not None and len(counts) == len(ref.counts):
        labels = bin_labels(ref)
        reference = _shares([float(c) for c in ref.counts])
        window = _shares([float(c) for c in counts])
        if isinstance(ref, CategoricalProfile) and len(labels) > MAX_CATEGORIES + 1:
            labels, reference, window = _fold_categories(labels, reference, window)
        return Histogram(
            signal, detector, severity, start, end, int(sum(counts)), labels, reference, window, True
        )
    top_bins = details.get("top_bins")
    if not top_bins:
        return None
    labels_t, ref_t, win_t = [], [], []
    for b in top_bins:
        if "category" in b:
            labels_t.append(str(b["category"]))
        else:
            lo, hi = b["range"]
            labels_t.append(
                f"< {hi:.4g}" if lo is None else f"≥ {lo:.4g}" if hi is None else f"{lo:.4g} – {hi:.4g}"
            )
        ref_t.append(float(b["reference_share"]))
        win_t.append(float(b["live_share"]))
    values = int(details.get("window_values", 0) or 0)
    return Histogram(
        signal, detector, severity, start, end, values, tuple(labels_t), tuple(ref_t), tuple(win_t), False
    )


def _fold_categories(
    labels: tuple[str, ...], reference: tuple[float, ...], window: tuple[float, ...]
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """The categories that weigh most in either distribution (in the reference's order), the rest summed."""
    body = range(len(labels) - 1)  # the last slot is "(other)"
    keep = set(sorted(body, key=lambda k: -max(reference[k], window[k]))[:MAX_CATEGORIES])
    rest = [k for k in body if k not in keep]
    idx = [k for k in body if k in keep]
    return (
        (*(labels[k] for k in idx), f"({len(rest)} more)", labels[-1]),
        (*(reference[k] for k in idx), sum(reference[k] for k in rest), reference[-1]),
        (*(window[k] for k in idx), sum(window[k] for k in rest), window[-1]),
    )
