"""A stage-1 partition folder's state as versioned plain data, and its restore.

The snapshot is the open slices, the watermark state, what was sent to stage 2 and ``next_offset``: restoring it
and seeking to ``next_offset`` resumes exactly. A model whose reference changed since (another layout
fingerprint) is dropped, not restored. Each slice folder's state carries the ids of its open slices' events
(the repeat filter) and its future / duplicate counts; a snapshot written before those existed restores with
none remembered and the counts at zero, so the version stays 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from stream_monitor.core.errors import SnapshotError
from stream_monitor.pipeline.windows import SliceFolder

if TYPE_CHECKING:
    from stream_monitor.pipeline.partition_fold import PartitionFolder

SNAPSHOT_VERSION: Final = 2


def snapshot_partition(partition: PartitionFolder) -> dict[str, Any]:
    """:meth:`PartitionFolder.snapshot <stream_monitor.pipeline.partition_fold.PartitionFolder.snapshot>`."""
    return {
        "v": SNAPSHOT_VERSION,
        "stage": 1,
        "source": partition.source,
        "stream": partition.stream.value,
        "next_offset": partition.next_offset,
        "models": {
            m: {
                "layout": partition.models[m].folder.layout.sketch.fingerprint,
                "slices": _folder_state(f),
                "sent": partition.sent[m],
                "idle": partition.idle[m],
            }
            for m, f in partition.slices.items()
        },
    }


def restore_partition(partition: PartitionFolder, state: Mapping[str, Any], now: float) -> list[str]:
    """:meth:`PartitionFolder.restore <stream_monitor.pipeline.partition_fold.PartitionFolder.restore>`."""
    if (
        state.get("v") != SNAPSHOT_VERSION
        or state.get("stage") != 1
        or state.get("source") != partition.source
    ):
        raise SnapshotError(
            f"stage-1 snapshot of {state.get('source')!r} v{state.get('v')!r} does not fit {partition.source}"
        )
    dropped = []
    for model_id, ms in state["models"].items():
        if (
            model_id not in partition.models
            or ms["layout"] != partition.models[model_id].folder.layout.sketch.fingerprint
        ):
            dropped.append(model_id)
            continue
        partition.slices[model_id].restore(
            _folder_restorable(ms["slices"]), partition.models[model_id].folder.layout.sketch
        )
        partition.sent[model_id] = int(ms["sent"])
        partition.idle[model_id] = bool(ms["idle"])
    partition.next_offset = None if state["next_offset"] is None else int(state["next_offset"])
    partition.last_event_at = dict.fromkeys(partition.models, now)
    partition.changed = False
    return dropped


def _folder_state(folder: SliceFolder) -> dict[str, Any]:
    """:meth:`SliceFolder.snapshot` (open sketches as hex of their binary form; the snapshot is compressed)."""
    return folder.snapshot()


def _folder_restorable(state: Mapping[str, Any]) -> dict[str, Any]:
    """The form :meth:`SliceFolder.restore` reads (the same as :func:`_folder_state` writes)."""
    return dict(state)
