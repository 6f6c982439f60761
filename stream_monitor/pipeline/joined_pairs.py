"""Joined (prediction, label) pairs held until the watermark passes their arrival, then released in one order.

A pair *arrives* when its second half does: the later of the prediction's and the label's event time. Folding
pairs as they are joined would make the performance figures (and the error stream's verdicts) depend on how
the input was batched, which differs between a replay and the Kafka service. Held until the watermark has
passed their arrival and released sorted by (arrival, prediction time, predicted, score, label), every
runtime folds the same pairs in the same order.

>>> import numpy as np
>>> held = PendingPairs()
>>> held.add(np.array([5.0, 2.0]), np.array([1.0, 1.5]), np.array([1.0, 0.0]), np.full(2, np.nan),
...          np.array([1.0, 1.0]))
>>> held.release(4.0).arrival.tolist(), len(held)
([2.0], 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
_FIELDS = ("arrival", "pred_ts", "predicted", "score", "label")


@dataclass(frozen=True)
class Pairs:
    arrival: FloatArray
    pred_ts: FloatArray
    predicted: FloatArray
    score: FloatArray
    label: FloatArray

    def __len__(self) -> int:
        return len(self.arrival)

    def take(self, index: NDArray[Any]) -> Pairs:
        return Pairs(*(getattr(self, f)[index] for f in _FIELDS))


def _empty() -> Pairs:
    return Pairs(*(np.empty(0) for _ in _FIELDS))


class PendingPairs:
    """Joined pairs waiting for the watermark (about allowed-lateness x label rate of them)."""

    def __init__(self) -> None:
        self._held = _empty()

    def __len__(self) -> int:
        return len(self._held)

    def add(
        self,
        arrival: FloatArray,
        pred_ts: FloatArray,
        predicted: FloatArray,
        score: FloatArray,
        label: FloatArray,
    ) -> None:
        if len(arrival):
            new = (arrival, pred_ts, predicted, score, label)
            self._held = Pairs(
                *(np.concatenate([getattr(self._held, f), a]) for f, a in zip(_FIELDS, new, strict=True))
            )

    def release(self, watermark: float) -> Pairs:
        """The pairs that arrived before ``watermark`` (all of them for ``inf``), in the canonical order."""
        ready = self._held.arrival < watermark
        if not ready.any():
            return _empty()
        out, self._held = self._held.take(ready), self._held.take(~ready)
        order = np.lexsort((out.label, out.score, out.predicted, out.pred_ts, out.arrival))
        return out.take(order)

    def snapshot(self) -> dict[str, list[float | None]]:
        # scores may be NaN (absent), which JSON cannot carry: None stands for it
        return {f: [None if math.isnan(v) else v for v in getattr(self._held, f).tolist()] for f in _FIELDS}

    def restore(self, state: dict[str, list[float | None]]) -> None:
        self._held = Pairs(
            *(np.array([np.nan if v is None else v for v in state[f]], dtype=np.float64) for f in _FIELDS)
        )
