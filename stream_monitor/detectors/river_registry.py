"""The River adapters by name, as the configuration names them (``ddm``, ``adwin``, ...)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from stream_monitor.core.errors import UnknownDetectorError
from stream_monitor.detectors.river_adapter import (
    ADWINAdapter,
    DDMAdapter,
    EDDMAdapter,
    FHDDMAdapter,
    HDDMAAdapter,
    HDDMWAdapter,
    PageHinkleyAdapter,
)
from stream_monitor.detectors.river_base import RiverAdapter

__all__ = ["DETECTORS", "make_detector"]


DETECTORS: Final[Mapping[str, type[RiverAdapter]]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            DDMAdapter,
            EDDMAdapter,
            HDDMAAdapter,
            HDDMWAdapter,
            FHDDMAdapter,
            ADWINAdapter,
            PageHinkleyAdapter,
        )
    }
)
"""Registered detectors by name: ``ddm``, ``eddm``, ``hddm_a``, ``hddm_w``, ``fhddm``, ``adwin``,
``page_hinkley``."""


def make_detector(name: str, **params: Any) -> RiverAdapter:
    """Build a registered detector by name.

    Raises
    ------
    stream_monitor.core.errors.UnknownDetectorError
        (a ``ValueError``) if the name is not registered; the message lists the valid names.
    ValueError
        If a parameter is unknown (the message lists the valid ones) or invalid.
    """
    cls = DETECTORS.get(name)
    if cls is None:
        raise UnknownDetectorError(name, list(DETECTORS))
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return cls(**params)
