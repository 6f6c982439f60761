"""Reference profile files: the one place a :class:`ReferenceProfile` meets the file system.

>>> import tempfile
>>> from stream_monitor.stats.profiles import ReferenceProfile
>>> path = Path(tempfile.mkdtemp()) / "reference.json"
>>> save_reference(ReferenceProfile(models={}), path)
>>> load_reference(path).models
{}
"""

from __future__ import annotations

from pathlib import Path

from stream_monitor.core.errors import ReferenceProfileError
from stream_monitor.stats.profiles import ReferenceProfile


def save_reference(profile: ReferenceProfile, path: str | Path) -> None:
    Path(path).write_bytes(profile.to_json())


def load_reference(path: str | Path) -> ReferenceProfile:
    """The profile in ``path``; a missing, unreadable or malformed file is a :class:`ReferenceProfileError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReferenceProfileError(f"cannot read reference profile {path}: {exc.strerror}") from exc
    return ReferenceProfile.from_json(data)
