"""Large results travel from workers to the parent through files, not the result pipe.

A state value holding numpy arrays of at least ``PARAFACTORY_SPILL_BYTES``
bytes (default 1 MiB) is written by the worker with :func:`joblib.dump` into
a per-run directory in shared memory (``/dev/shm``, else the temporary
directory: see ``_scratch``) and opened memory-mapped (copy-on-write) by the
parent, so it is neither pickled through a pipe nor copied into the parent's
heap. When that filesystem has no room for it, the value goes through the pipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from typing import Any

SPILL_BYTES = int(os.environ.get("PARAFACTORY_SPILL_BYTES", 1 << 20))


@dataclasses.dataclass(frozen=True)
class Spilled:
    """A state value a worker left in a file for the parent to map."""

    path: str


def spill_large(values: dict[str, Any], directory: str | None) -> dict[str, Any]:
    """In a worker: replace each value holding large arrays by a file the parent will map."""
    if directory is None:
        return values
    return {key: _spill(value, directory) for key, value in values.items()}


def unspill(values: dict[str, Any]) -> dict[str, Any]:
    """In the parent: open spilled values memory-mapped."""
    return {
        key: _load_spilled(value.path) if isinstance(value, Spilled) else value
        for key, value in values.items()
    }


def _load_spilled(path: str) -> Any:
    import joblib  # only once arrays were spilled: joblib imports numpy, slow at start-up

    return joblib.load(path, mmap_mode="c")


def _spill(value: Any, directory: str) -> Any:
    """``value`` left in a file of ``directory`` for the parent, or ``value`` itself (it then
    goes through the pipe) when it is small or the directory's filesystem has no room."""
    size = _array_bytes(value)
    if size < SPILL_BYTES or not _has_room(directory, size):
        return value
    import joblib

    path = os.path.join(directory, f"{uuid.uuid4().hex}.joblib")
    try:
        joblib.dump(value, path)
    except OSError:  # full after all (another worker got there first): the pipe it is
        with contextlib.suppress(OSError):
            os.unlink(path)
        return value
    return Spilled(path)


def _has_room(directory: str, size: int) -> bool:
    """Whether ``size`` bytes, and as much again spare, fit in ``directory``'s filesystem
    (shared memory is often small: 64 MB by default in a Docker container)."""
    try:
        status = os.statvfs(directory)
    except OSError:
        return False
    return status.f_bavail * status.f_frsize >= 2 * size


def _array_bytes(value: Any, depth: int = 0) -> int:
    """Bytes of numpy arrays in ``value``, looking two levels into lists, tuples and dicts."""
    dtype = getattr(value, "dtype", None)
    if type(value).__module__ == "numpy" and dtype is not None and hasattr(value, "nbytes"):
        return 0 if dtype.hasobject else int(value.nbytes)  # object arrays cannot be mapped
    if depth >= 2:
        return 0
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return sum(_array_bytes(item, depth + 1) for item in value[:1000])
    return 0
