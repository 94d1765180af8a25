"""What the report needs to know about a run, gathered from its events as it runs.

Each chain a worker ran is kept as its event gave it, and becomes a :class:`Bar` per
stage on that worker's lane (aggregates on the parent's) only when a report is drawn;
chains found whole in the cache, lost workers and failures that left no bar become marks.
Handlers only append: a sweep of tiny records pays about a microsecond a record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..._core.chains import Timing
from ..._core.events import (
    ChainRan,
    Events,
    LoadedFromCache,
    RecordFailed,
    Retried,
    RunFinished,
    RunStarted,
    WorkerLost,
)
from ..._core.plan import Step
from ..._errors import UpstreamFailedError
from ..._model.records import Record

PARENT = "parent"  # the lane of aggregates and of chains loaded whole from the cache


@dataclasses.dataclass(slots=True)
class Bar:
    """One stage run on ``lane``, from ``start`` to ``end`` (``time.time()``)."""

    lane: str
    record: Record
    stage: str
    start: float
    end: float
    cached: bool = False
    aggregate: bool = False
    retry: bool = False  # ran again after its worker died
    failed: bool = False


@dataclasses.dataclass(slots=True)
class Mark:
    """A moment of the run without a bar: ``kind`` is "hit" (a chain loaded whole from
    the cache, in the parent), "lost" (a worker died) or "failed" (a failure that left no
    bar: a worker's death, a time limit)."""

    kind: str
    time: float
    text: str
    record: Record | None = None
    stages: tuple[str, ...] = ()  # a cache hit's stages


class RunObserver:
    """Collects the bars, marks and plan of every run of one manager."""

    def __init__(self) -> None:
        self.chains: list[tuple[str, Record, list[Timing], bool, bool]] = []  # see _chain_ran
        self.marks: list[Mark] = []
        self.steps: list[Step] = []
        self.started: float | None = None
        self.finished: float | None = None
        self.interrupted = False
        self._retried: set[int] = set()  # ids of records sent again after a death
        self._last_chain: dict[int, int] = {}  # record id -> index of its latest chain
        self._failed: dict[int, str] = {}  # chain index -> the stage that failed in it

    def follow(self, events: Events, steps: Sequence[Step]) -> None:
        """Watch a run of ``steps`` through its events."""
        self.steps.extend(steps)
        events.subscribe(self._run_started, RunStarted)
        events.subscribe(self._chain_ran, ChainRan)
        events.subscribe(self._loaded, LoadedFromCache)
        events.subscribe(self._record_failed, RecordFailed)
        events.subscribe(self._retry, Retried)
        events.subscribe(self._lost, WorkerLost)
        events.subscribe(self._run_finished, RunFinished)

    def _run_started(self, event: RunStarted) -> None:
        if self.started is None:
            self.started = event.time

    def _run_finished(self, event: RunFinished) -> None:
        self.finished = event.time
        self.interrupted = self.interrupted or event.interrupted

    @property
    def bars(self) -> list[Bar]:
        """A bar per stage run, in the order their chains came back."""
        bars = []
        for index, (lane, record, timings, aggregate, retry) in enumerate(self.chains):
            failed_stage = self._failed.get(index)
            last = len(timings) - 1
            for position, (stage, started, ended, cached) in enumerate(timings):
                failed = position == last and stage == failed_stage
                bars.append(
                    Bar(lane, record, stage, started, ended, cached, aggregate, retry, failed)
                )
        return bars

    def _chain_ran(self, event: ChainRan) -> None:
        record = event.record
        self._last_chain[id(record)] = len(self.chains)
        retry = id(record) in self._retried
        self.chains.append((event.worker, record, event.timings, event.aggregate, retry))

    def _loaded(self, event: LoadedFromCache) -> None:
        text = f"{event.record.name}: {', '.join(event.stages)} loaded from the cache"
        self.marks.append(Mark("hit", event.time, text, event.record, event.stages))

    def _record_failed(self, event: RecordFailed) -> None:
        index = self._last_chain.get(id(event.record))
        if index is not None and index not in self._failed:
            timings = self.chains[index][2]
            if timings and timings[-1][0] == event.stage:
                self._failed[index] = event.stage
                return
        text = f"{event.record.name}: {event.stage} failed ({type(event.error).__name__})"
        self.marks.append(Mark("failed", event.time, text, event.record))

    def _retry(self, event: Retried) -> None:
        self._retried.add(id(event.record))

    def _lost(self, event: WorkerLost) -> None:
        self.marks.append(Mark("lost", event.time, f"worker lost: {event.description}"))


@dataclasses.dataclass(slots=True)
class Outcome:
    """How a record's run went: ``status`` is "computed", "cached", "failed" or "skipped"
    (never ran: the run stopped first, or what it needed failed)."""

    status: str
    seconds: float = 0.0
    stages: int = 0
    cached: int = 0  # of ``stages``, how many were loaded from the cache

    @property
    def caching(self) -> str:
        """ "computed", "cached" or "2 of 3 cached"."""
        if not self.stages or not self.cached:
            return "computed" if self.stages else ""
        return "cached" if self.cached == self.stages else f"{self.cached} of {self.stages} cached"


STATUSES = ("computed", "cached", "failed", "skipped")


def outcomes(records: Sequence[Record], observer: RunObserver) -> dict[int, Outcome]:
    """Each record's outcome (keyed by ``id(record)``), from its bars and cache marks."""
    found = {id(record): Outcome("skipped") for record in records}
    for bar in observer.bars:
        outcome = found.get(id(bar.record))
        if outcome is not None:
            outcome.seconds += bar.end - bar.start
            outcome.stages += 1
            outcome.cached += bar.cached
    for mark in observer.marks:
        outcome = found.get(id(mark.record)) if mark.kind == "hit" else None
        if outcome is not None:
            outcome.stages += len(mark.stages)
            outcome.cached = outcome.stages
    for record in records:
        outcome = found[id(record)]
        if isinstance(record.error, UpstreamFailedError):
            outcome.status = "skipped"  # what it needs failed: its error says which
        elif record.error is not None:
            outcome.status = "failed"
        elif outcome.stages:
            outcome.status = "cached" if outcome.cached == outcome.stages else "computed"
        elif record.stages:  # run eagerly, outside map/run
            outcome.status = "computed"
    return found


def counts(found: dict[int, Outcome]) -> dict[str, int]:
    """How many records had each status."""
    tally = dict.fromkeys(STATUSES, 0)
    for outcome in found.values():
        tally[outcome.status] += 1
    return tally
