"""Parameters, stages, a cacher and exceptions for tests of values that cannot travel
between processes, of planning checks, and of ``errors="raise"`` stopping a sweep.

Loky and dask workers import this module by name (``travel_stages``): pytest puts
``tests/`` on ``sys.path`` and the worker processes inherit it.

:func:`begin` appends a line to ``{marker_dir}/{name}.started`` each time it starts, in
any process, so a test can tell which records started and how often.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import types
from pathlib import Path
from typing import Any

from parafactory import Cacher, ExperimentParameters, stage


@dataclasses.dataclass
class Trip(ExperimentParameters):
    """``action`` says what :func:`produce` does: ok, generator, lock, two_arg_error,
    system_exit, keyboard_interrupt or fail; ``payload`` may hold anything."""

    value: int = 0
    action: str = "ok"
    marker_dir: str = ""
    payload: Any = None


def trips(count: int, marker_dir: Path | str = "", **actions: str) -> list[Trip]:
    """``count`` parameter sets named ``r0``, ``r1``...; ``actions`` maps a name to its action."""
    return [
        Trip(name=f"r{i}", value=i, action=actions.get(f"r{i}", "ok"), marker_dir=str(marker_dir))
        for i in range(count)
    ]


def started(marker_dir: Path, name: str) -> int:
    """How many times :func:`begin` started on record ``name``."""
    path = marker_dir / f"{name}.started"
    return len(path.read_text().splitlines()) if path.exists() else 0


class TwoArgError(Exception):
    """An exception that cannot be unpickled: rebuilding it passes one argument, not two."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"{left} and {right} disagree")
        self.left = left
        self.right = right


class TripError(ValueError):
    """The ordinary exception :func:`produce` raises for ``action="fail"``."""


@stage(outputs=["start"])
def begin(record):
    """Notes that it started (when the record has a marker directory); returns the value."""
    if record.params.marker_dir:
        line = f"start {os.getpid()}\n".encode()
        path = os.path.join(record.params.marker_dir, f"{record.params.name}.started")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    return record.params.value


def _raise_for(action: str) -> None:
    if action == "two_arg_error":
        raise TwoArgError("left", "right")
    if action == "system_exit":
        raise SystemExit(3)
    if action == "keyboard_interrupt":
        raise KeyboardInterrupt
    if action == "fail":
        raise TripError("produce was told to fail")


@stage(inputs=["start"], outputs=["value"])
def produce(record, start):
    """Twice ``start``; or a generator, a lock, or one of the exceptions of :func:`_raise_for`."""
    action = record.params.action
    _raise_for(action)
    if action == "generator":
        return (k for k in range(3))
    if action == "lock":
        return threading.Lock()
    return start * 2


@stage(inputs=["value"], outputs=["used"])
def use_value(record, value):
    """Uses what :func:`produce` made: sums a generator, acquires a lock, adds one."""
    if isinstance(value, types.GeneratorType):
        return sum(value)
    if hasattr(value, "acquire"):
        return value.acquire(blocking=False)
    return value + 1


class ItemsCacher(Cacher):
    """Saves an iterable's items as a JSON list (so it can save a generator)."""

    extension = "json"

    def save(self, obj: Any, path: Path) -> None:
        path.write_text(json.dumps(list(obj)), encoding="utf-8")

    def load(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))


@stage(inputs=["start"], outputs=["items"], cachers=[ItemsCacher()])
def produce_items(record, start):
    """A generator of ``start * k`` for k in 0, 1, 2: only its cacher can send it back."""
    return (start * k for k in range(3))


@stage(outputs=["processed"])
def process(record):
    """Shares its name with a ``process`` stage of another module."""
    return "travel_stages"
