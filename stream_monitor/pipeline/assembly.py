"""Builds the stage objects of every configured model from the config and the reference profiles.

The one place a model's layout, slice length, lateness and window limits are derived: the service's workers
and the in-process :class:`~stream_monitor.pipeline.local.Engine` build their halves here, so the service's
windows are the replay's windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from stream_monitor.config.schema import MonitorConfig
from stream_monitor.core.clock import Clock, SystemClock
from stream_monitor.core.events import Stream
from stream_monitor.pipeline.folding import ModelFolder
from stream_monitor.pipeline.merge_partition import MergePartition
from stream_monitor.pipeline.model_layout import ModelLayout
from stream_monitor.pipeline.model_merge import ModelMerger
from stream_monitor.pipeline.partition_fold import ModelSlicing, PartitionFolder
from stream_monitor.pipeline.performance_monitor import has_performance
from stream_monitor.pipeline.windows import slice_seconds_for
from stream_monitor.stats.profiles import ModelProfile


@dataclass
class ServiceModels:
    """Layouts and slicing of every model, and factories for the per-partition stage states."""

    config: MonitorConfig
    layouts: dict[str, ModelLayout]
    slicing: dict[str, ModelSlicing]
    clock: Clock

    def partition_folder(
        self, topic: str, partition: int, stream: Stream, now: float, in_process: bool = False
    ) -> PartitionFolder:
        svc = self.config.service
        return PartitionFolder(
            topic, partition, stream, self.slicing, svc.model_id_field, svc.max_message_bytes, now, in_process
        )

    def merger_factory(
        self, sources: Iterable[str], label_sources: Iterable[str] = ()
    ) -> Callable[[str], ModelMerger | None]:
        """Mergers expecting ``sources`` (feature and prediction partitions) and, for models monitored for
        concept drift, ``label_sources`` too."""
        expected = list(sources)
        labels = list(label_sources)

        def make(model_id: str) -> ModelMerger | None:
            if model_id not in self.layouts:
                return None
            forward = self.slicing[model_id].forward
            return ModelMerger(
                self.layouts[model_id],
                self.slicing[model_id].slice_seconds,
                [*expected, *labels] if forward else expected,
                self.clock,
                performance=forward,
            )

        return make

    def merge_partition(
        self, topic: str, partition: int, sources: Iterable[str], label_sources: Iterable[str] = ()
    ) -> MergePartition:
        return MergePartition(topic, partition, self.merger_factory(sources, label_sources))


def build_models(
    config: MonitorConfig, profiles: Mapping[str, ModelProfile], clock: Clock | None = None
) -> ServiceModels:
    layouts: dict[str, ModelLayout] = {}
    slicing: dict[str, ModelSlicing] = {}
    for model_id, mcfg in config.models.items():
        layout = ModelLayout.build(model_id, mcfg, profiles[model_id])
        w = mcfg.window
        seconds = slice_seconds_for(
            w.max_events,
            w.max_seconds,
            layout.profile.events_per_second,
            w.slice_seconds,
            tuple(t.phase_seconds for t in layout.phase_tables.values()),
        )
        layouts[model_id] = layout
        slicing[model_id] = ModelSlicing(
            ModelFolder(layout),
            seconds,
            w.allowed_lateness_seconds,
            forward=has_performance(layout),
            max_future=w.max_future_seconds,
        )
    return ServiceModels(config, layouts, slicing, clock or SystemClock())
