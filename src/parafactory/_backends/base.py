"""What a backend is to the scheduler: an object whose methods do the work.

The scheduler never asks what kind of backend it has. It opens it for a run
(:meth:`Backend.start`), asks it each time round how many tasks to keep in flight
(:meth:`Backend.in_flight`) and how many chains to put in a task
(:meth:`Backend.batch_size`), sends tasks (:meth:`Backend.submit`), turns what comes
back into results (:meth:`Backend.results`), asks it what a lost task means
(:meth:`Backend.lost`), and closes it. Each backend keeps its own plumbing: the local
pool its log channel, scratch directory and status slots; dask its log collection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

from .._core.capture import install, tagged
from .._core.chains import (
    ChainResult,
    ChainTask,
    WorkerHooks,
    WorkerSetup,
    decoded,
    encoded,
    run_chains,
    travelling_copy,
)

Deliver = Callable[[logging.LogRecord], None]
LimitOf = Callable[[int, int], "float | None"]  # (step id, stage position) -> its time limit

_TASK_SECONDS = 0.05  # batch short chains until a task takes about this long


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a backend is opened with for one run."""

    setup: WorkerSetup
    deliver_log: Deliver  # where log records from workers go, in the parent
    log_level: int


@dataclasses.dataclass
class Loss:
    """What a task lost to a worker's death means.

    ``suspects``: step id -> the stage position each was running when the worker died
    (empty: unknown, so every lost task is a suspect). ``innocent``: steps whose loss is
    explained otherwise (a worker that retired), sent again as they are. ``timed_out``:
    steps whose worker was killed for overrunning a time limit: step id -> (stage
    position, limit). ``whole_pool``: every task in flight is lost too.
    """

    description: str
    suspects: dict[int, int] = dataclasses.field(default_factory=dict)
    innocent: set[int] = dataclasses.field(default_factory=set)
    timed_out: dict[int, tuple[int, float]] = dataclasses.field(default_factory=dict)
    whole_pool: bool = False


@dataclasses.dataclass(frozen=True)
class RemoteHooks(WorkerHooks):
    """For workers in other processes with no live channel back (dask, a user's process
    pool): what a stage logs and prints is collected per record and goes back with its
    result, which is pickled on its own."""

    log_level: int

    @contextlib.contextmanager
    def batch(self, tasks: list[ChainTask]) -> Iterator[None]:
        install(self.log_level, None)
        yield

    @contextlib.contextmanager
    def chain(self, task: ChainTask) -> Iterator[list[Any]]:
        with tagged(task.record.name, collect=True) as collected:
            yield collected

    def finish(self, result: ChainResult, task: ChainTask, setup: WorkerSetup) -> Any:
        return encoded(result, task, setup)


class Backend:
    """Chains of stages run on ``executor``, with the worker hooks the backend chooses.

    This base serves any executor whose workers are this process or pickle what they
    are sent; subclasses open and close what their workers need and say how they die.
    """

    workers = 1

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.settings: RunSettings | None = None
        self._seconds_per_chain: float | None = None
        self._worker_hooks = WorkerHooks()

    # -- a run -------------------------------------------------------------------------

    def start(self, settings: RunSettings) -> None:
        """Open what this backend's workers need for a run."""
        self.settings = settings
        self._worker_hooks = self.hooks()  # after a subclass opened what its hooks name

    def close(self) -> None:
        """Close what :meth:`start` opened (however the run ended)."""
        self.settings = None

    def hooks(self) -> WorkerHooks:
        """What the workers do around their chains (here: nothing)."""
        return WorkerHooks()

    def check_travel(self, records: list[Any], stages: list[Any]) -> None:
        """Refuse what cannot reach this backend's workers, before any starts (here,
        the parent's own process or threads: everything can)."""

    # -- tasks ---------------------------------------------------------------------------

    def in_flight(self) -> int:
        """How many tasks to keep in flight now (asked each time round the scheduler's
        loop): two per worker, so none waits for its next task."""
        return 2 * self.workers

    def batch_size(self, ready: int) -> int:
        """How many ready chains to put in the next task: one until a chain's time is
        known, then as many as take about 50 ms, and no more than a fair share."""
        if self._seconds_per_chain is None:
            return 1
        by_time = int(_TASK_SECONDS / max(self._seconds_per_chain, 1e-7))
        return max(1, min(by_time, math.ceil(ready / (2 * self.workers))))

    def task(self, step_id: int, record: Any, calls: list[Any]) -> ChainTask:
        """A task for one chain: workers in this process get a copy of the record to work
        on (one that pickles tasks makes its copy as it sends them)."""
        return ChainTask(step_id, travelling_copy(record), calls)

    def submit(self, tasks: list[ChainTask]) -> Future[Any]:
        """Send a task: its chains run, in order, on one worker."""
        assert self.settings is not None, "start the backend first"
        try:
            return self.executor.submit(run_chains, tasks, self.settings.setup, self._worker_hooks)
        except Exception as error:  # e.g. a user's broken pool: these tasks fail
            failed: Future[Any] = Future()
            failed.set_exception(error)
            return failed

    def results(self, tasks: list[ChainTask], returned: list[Any]) -> list[ChainResult]:
        """What came back for ``tasks`` (in order; fewer if the batch stopped early) as
        results, their log records delivered; learns how long a chain takes."""
        results = [decoded(task, item) for task, item in zip(tasks, returned, strict=False)]
        for result in results:
            if result.logs and self.settings is not None:
                for record in result.logs:
                    self.settings.deliver_log(record)
            self._learn(result.seconds)
        return results

    def _learn(self, seconds: float) -> None:
        previous = self._seconds_per_chain
        self._seconds_per_chain = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    # -- trouble -------------------------------------------------------------------------

    def lost(self, tasks: list[ChainTask], error: BaseException) -> Loss | None:
        """What a task that ended in ``error`` instead of results means: a worker's death
        (a :class:`Loss`), or ``None``: the error is the tasks' own, and they fail. An
        error no task of this run could escape (workers that cannot see the run's files)
        is raised, and stops the run."""
        return None

    def request_stop(self) -> None:
        """``errors="raise"`` after a failure: workers start no further chain."""

    def stop_overdue(self, limit_of: LimitOf) -> None:
        """Kill a worker whose stage overran its time limit and did not stop by itself,
        where this backend can (the local pool); :meth:`lost` then says so."""

    def abort(self) -> None:
        """Stop at once: cancel what has not started and stop what runs, if it can."""
        self.executor.shutdown(wait=False, cancel_futures=True)
