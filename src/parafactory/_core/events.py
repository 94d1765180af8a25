"""What happens in a run, as typed events: the scheduler publishes them, and the progress
bar, the run log, the console summary (and the report's worker timeline) subscribe.
Events are slotted dataclasses, not frozen ones: a run makes them by the thousand.

Stage timings come with each chain's result (one :class:`ChainRan` per chain), not as a
message per stage while it runs: a message per stage cost a quarter of a sweep of tiny
records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .._model.records import Record


@dataclasses.dataclass(slots=True)
class RunStarted:
    """The run begins: how many records, steps and workers."""

    records: int
    steps: int
    workers: int
    time: float


@dataclasses.dataclass(slots=True)
class ChainsQueued:
    """Records' chains were sent to a worker, in one task (``alone``: a retry by itself)."""

    records: list[Record]
    time: float
    alone: bool = False


@dataclasses.dataclass(slots=True)
class ChainRan:
    """A record's chain ran on ``worker`` ("host:pid"; "parent" for an aggregate): one
    ``(stage, started, ended, cached)`` per stage (``time.time()``; ``cached``: its
    outputs loaded from the cache); ``recomputed``: why each stage that had outputs in
    the cache ran anyway."""

    record: Record
    worker: str
    timings: list[tuple[str, float, float, bool]]
    aggregate: bool = False
    recomputed: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class LoadedFromCache:
    """Every stage of a record's chain was cached: nothing was sent to a worker."""

    record: Record
    stages: tuple[str, ...]
    time: float


@dataclasses.dataclass(slots=True)
class RecordFailed:
    """A stage failed on a record (``error`` names them)."""

    record: Record
    stage: str
    error: BaseException
    time: float


@dataclasses.dataclass(slots=True)
class Retried:
    """A record's chain is sent again, alone, after its worker died (``why``: how)."""

    record: Record
    why: str
    time: float


@dataclasses.dataclass(slots=True)
class WorkerLost:
    """A worker died; ``records``: the names of those it ran (or was about to)."""

    description: str
    records: tuple[str, ...]
    time: float


@dataclasses.dataclass(slots=True)
class RecordFinished:
    """Every step of a record settled (``failed``: one of them failed, or it was not run
    as records it needs failed, see ``record.error``; ``cached``: it succeeded, every
    stage loaded from the cache)."""

    record: Record
    failed: bool
    time: float
    cached: bool = False


@dataclasses.dataclass(slots=True)
class RunFinished:
    """The run ended: ``summary`` says how; ``interrupted`` by Ctrl-C or a signal."""

    summary: str
    interrupted: bool
    time: float


Event = (
    RunStarted
    | ChainsQueued
    | ChainRan
    | LoadedFromCache
    | RecordFailed
    | Retried
    | WorkerLost
    | RecordFinished
    | RunFinished
)
Subscriber = Callable[[Any], None]


class Events:
    """Hands each event to the subscribers of its type, in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: dict[type, list[Subscriber]] = {}

    def subscribe(self, subscriber: Subscriber, *kinds: type) -> None:
        """Call ``subscriber(event)`` for each event of the types in ``kinds``."""
        for kind in kinds:
            self._subscribers.setdefault(kind, []).append(subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in self._subscribers.get(type(event), ()):
            subscriber(event)
