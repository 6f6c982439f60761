"""Stage 2 of one partition of the partials topic: the model mergers keyed to it and the alert dedupe.

:class:`MergePartition` is the state of one partition of the partials topic (a set of models), with its offset
bookkeeping and the alert dedupe: the keys ``(alert_id, status, severity)`` of alerts it emitted, kept in its
snapshot and extended on restore from the alerts topic's tail, so a replay after a crash re-detects the same
episodes without paging twice.

The per-model merge itself is :class:`~stream_monitor.pipeline.model_merge.ModelMerger`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from stream_monitor.core.alerts import Alert
from stream_monitor.core.errors import SnapshotError
from stream_monitor.pipeline.model_merge import ModelMerger, TestedWindow
from stream_monitor.pipeline.partials import decode_partial

__all__ = ["MergePartition", "Stage2Result", "alert_key"]

SNAPSHOT_VERSION: Final = 1
RECENT_ALERT_KEYS: Final = 4096


@dataclass
class Stage2Result:
    windows: list[TestedWindow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # to publish: deduped
    duplicates: int = 0  # alerts suppressed because they were emitted before
    bad: int = 0  # malformed partials or partials of a model no longer configured
    skipped: int = 0  # messages below next_offset


def alert_key(alert: Alert) -> str:
    return f"{alert.alert_id}|{alert.status.value}|{alert.severity.value}"


class MergePartition:
    """Stage-2 state of one partition of the partials topic: the mergers of the models keyed to it."""

    def __init__(self, topic: str, partition: int, factory: Callable[[str], ModelMerger | None]) -> None:
        self.topic = topic
        self.partition = partition
        self.key = f"{topic}:{partition}"
        self._factory = factory
        self.mergers: dict[str, ModelMerger] = {}
        self.next_offset: int | None = None
        self.recent: dict[str, None] = {}  # insertion-ordered set of alert keys emitted, bounded
        self.alerts_offsets: dict[
            int, int
        ] = {}  # alerts-topic partition -> where a replay's tail scan starts
        self.changed = False

    def merger(self, model_id: str) -> ModelMerger | None:
        m = self.mergers.get(model_id)
        if m is None:
            m = self._factory(model_id)
            if m is not None:
                self.mergers[model_id] = m
        return m

    def process(self, offsets: Sequence[int], values: Sequence[bytes | None]) -> Stage2Result:
        result = Stage2Result()
        for offset, value in zip(offsets, values, strict=True):
            if self.next_offset is not None and offset < self.next_offset:
                result.skipped += 1
                continue
            self.next_offset = offset + 1
            self.changed = True
            try:
                partial = decode_partial(value or b"")
            except SnapshotError:
                result.bad += 1
                continue
            merger = self.merger(partial.model)
            if merger is None:
                result.bad += 1
                continue
            result.windows.extend(merger.accept(partial))
        for w in result.windows:
            for alert in w.alerts:
                if self.admit(alert):
                    result.alerts.append(alert)
                else:
                    result.duplicates += 1
        return result

    def admit(self, alert: Alert) -> bool:
        """Whether ``alert`` (id, status, severity) is new; remembers it if so."""
        key = alert_key(alert)
        if key in self.recent:
            return False
        self.remember([key])
        return True

    def remember(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.recent.pop(key, None)
            self.recent[key] = None
        while len(self.recent) > RECENT_ALERT_KEYS:
            del self.recent[next(iter(self.recent))]

    # ---- snapshots -----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "v": SNAPSHOT_VERSION,
            "stage": 2,
            "source": self.key,
            "next_offset": self.next_offset,
            "models": {m: merger.snapshot() for m, merger in self.mergers.items()},
            "recent_alerts": list(self.recent),
            "alerts_offsets": {str(p): o for p, o in self.alerts_offsets.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> list[str]:
        """Resume from :meth:`snapshot`; returns the models whose state was dropped (unknown or changed)."""
        if state.get("v") != SNAPSHOT_VERSION or state.get("stage") != 2 or state.get("source") != self.key:
            raise SnapshotError(f"stage-2 snapshot of {state.get('source')!r} does not fit {self.key}")
        dropped = []
        for model_id, ms in state["models"].items():
            merger = self.merger(model_id)
            if merger is None:
                dropped.append(model_id)
                continue
            try:
                merger.restore(ms)
            except SnapshotError:
                del self.mergers[model_id]
                dropped.append(model_id)
        self.next_offset = None if state["next_offset"] is None else int(state["next_offset"])
        self.recent = dict.fromkeys(state["recent_alerts"])
        self.alerts_offsets = {int(p): int(o) for p, o in state["alerts_offsets"].items()}
        self.changed = False
        return dropped
