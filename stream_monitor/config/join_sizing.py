"""How many predictions the label join will hold, sized from the reference for ``config init``.

A prediction waits in the join until its label comes or ``labels.ttl_seconds`` passes. At the reference's
prediction rate ``r``, with a share ``s`` of predictions labelled after at most their p99 lag ``L`` and the
rest never, the store holds about ``r * (s * L + (1 - s) * ttl)`` predictions. ``config init`` writes
``max_outstanding`` at 1.5x that (at least 1,000), so memory is set by the traffic and not by a fixed
2,000,000, and a TTL that outlives the label's usefulness is not paid for: a label later than
``freshness_sla_seconds`` is stale and not joined anyway, so the TTL is at most the SLA, and ten times the
reference's p99 lag (at least an hour) when the reference shows its lags.

>>> s = join_sizing(predictions_per_second=200.0, labelled_share=0.98, lag_p99=120.0)
>>> s.ttl_seconds, s.max_outstanding
(3600.0, 57000)
>>> round(s.mib, 1)
3.3
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

# Bytes per outstanding prediction in the join's hash table, amortised over its growth (key, time, class and
# score columns at a load between 0.3 and 0.5), measured by scripts/bench_join.py with 1M outstanding.
BYTES_PER_OUTSTANDING: Final = 61
DEFAULT_SLA_SECONDS: Final = 2 * 86400.0
MIN_TTL_SECONDS: Final = 3600.0
MIN_OUTSTANDING: Final = 1000  # the schema's lower bound
HEADROOM: Final = 1.5


@dataclass(frozen=True)
class JoinSizing:
    """The TTL and store size ``config init`` writes, and the figures they came from (for its comment)."""

    ttl_seconds: float
    max_outstanding: int
    expected_outstanding: float
    predictions_per_second: float
    labelled_share: float | None
    lag_p99: float | None

    @property
    def mib(self) -> float:
        """Memory of a full store, MiB."""
        return self.max_outstanding * BYTES_PER_OUTSTANDING / 2**20


def _round_up(x: float, digits: int = 2) -> int:
    """``x`` rounded up to ``digits`` significant digits (57,000 for 56,880)."""
    if x <= 0:
        return 0
    scale = 10 ** max(math.floor(math.log10(x)) - digits + 1, 0)
    return int(math.ceil(x / scale) * scale)


def join_sizing(
    predictions_per_second: float,
    labelled_share: float | None,
    lag_p99: float | None,
    sla_seconds: float = DEFAULT_SLA_SECONDS,
) -> JoinSizing:
    """The join store for a model predicting at ``predictions_per_second`` (see the module docstring).

    ``labelled_share`` and ``lag_p99`` come from the reference (``None`` when it cannot tell: then every
    prediction is assumed to wait the whole TTL, the SLA).
    """
    if lag_p99 is None or not math.isfinite(lag_p99):
        ttl = sla_seconds
    else:
        ttl = min(sla_seconds, max(MIN_TTL_SECONDS, float(_round_up(10.0 * lag_p99, 1))))
    rate = max(predictions_per_second, 0.0)
    if lag_p99 is None or labelled_share is None:
        wait = ttl
    else:
        share = min(max(labelled_share, 0.0), 1.0)
        wait = share * min(lag_p99, ttl) + (1.0 - share) * ttl
    expected = rate * wait
    size = max(MIN_OUTSTANDING, _round_up(HEADROOM * expected))
    return JoinSizing(
        ttl_seconds=ttl,
        max_outstanding=size,
        expected_outstanding=expected,
        predictions_per_second=rate,
        labelled_share=labelled_share,
        lag_p99=lag_p99,
    )
