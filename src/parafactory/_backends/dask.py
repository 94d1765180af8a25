"""dask.distributed: chains run on a cluster's workers (``pip install 'parafactory[dask]'``).

Only this module imports ``distributed``. How it is wired::

    scheduler thread ──client.submit──▶ dask scheduler ──▶ worker threads (run_chains)
          ▲                                                    │ log_event(topic, ...)
          │ concurrent.futures.Future                          ▼
          └──── set on the client's event loop ◀── task done; "started", "ended", "log"

Every ready chain is submitted at once (as ``client.map`` does), so dask's scheduler
spreads them over the workers there are *now*, a worker that joins gets work at once, and
``cluster.adapt()`` sees the queue it scales on. Outcomes are handed over by one
coroutine per task on the client's event loop, as distributed's own ``ClientExecutor``
does: no thread polls. What stages log and print travels live as events on a topic of
the run, with the stage each worker starts. A task that started is pinned to its worker,
so that when that worker dies dask does not run it again elsewhere at once: the
scheduler is told of the loss, which it logs with the worker's address, and retries the
records alone once (a stage that kills its worker costs two deaths, not dask's four
times ours); a worker retired by ``adapt()`` has its records simply sent again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from .._core.capture import install, tagged
from .._core.chains import ChainResult, ChainTask, WorkerHooks, WorkerSetup, encoded
from .._core.travel import check_plan_travels
from .._errors import BackendUnavailableError, SharedFilesError
from .._leftovers import HOST
from .base import Backend, Loss, RunSettings

logger = logging.getLogger("parafactory")

_WORKERS_REFRESH_SECONDS = 0.5


class DaskExecutor(Executor):
    """``client.submit`` behind the ``concurrent.futures`` interface: each outcome is
    handed over by a coroutine on the client's event loop once dask has it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.tasks: dict[Future[Any], Any] = {}  # ours -> dask's, while in flight

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        outcome: Future[Any] = Future()
        outcome.set_running_or_notify_cancel()  # cancelled only through dask
        task = self._client.submit(fn, *args, pure=False, **kwargs)
        self.tasks[outcome] = task
        outcome.add_done_callback(lambda done: self.tasks.pop(done, None))
        self._client.loop.add_callback(_hand_over, task, outcome)
        return outcome

    def cancel(self, outcomes: list[Future[Any]]) -> None:
        """Cancel the dask tasks behind ``outcomes``: they come back having run nothing."""
        tasks = [self.tasks[outcome] for outcome in outcomes if outcome in self.tasks]
        if tasks:
            self._client.cancel(tasks)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self.cancel(list(self.tasks))


async def _hand_over(task: Any, outcome: Future[Any]) -> None:
    """Copy a dask task's outcome to ``outcome`` once dask has it: its result, its error,
    or, cancelled, an empty result list (its chains ran nowhere; the scheduler resends or
    drops them). ``outcome`` may be settled already: the backend failed it."""
    try:
        returned = await task._result(raiseit=False)  # what ClientExecutor awaits too
    except Exception as cancelled:  # cancelled while it waited: the checks below say so
        returned = cancelled
    if outcome.done():
        return
    if task.status == "finished":
        outcome.set_result(returned)
    elif task.cancelled() or not isinstance(returned, tuple):
        outcome.set_result([])
    else:
        _, error, traceback = returned
        outcome.set_exception(error.with_traceback(traceback))


class WorkerLost(Exception):
    """Dask removed the worker that ran these chains: ``suspects`` (step id -> the stage
    it was running) if it died, else (retired, as ``adapt()`` does) ``innocent``."""

    def __init__(self, description: str, suspects: dict[int, int], innocent: set[int]) -> None:
        super().__init__(description)
        self.suspects = suspects
        self.innocent = innocent


@dataclasses.dataclass
class _Running:
    """Where a chain runs: the worker's address and the stage it started."""

    worker: str
    position: int


class DaskBackend(Backend):
    """Chains run as tasks of a ``distributed.Client``: their logs come back live as
    events, their results are pickled one record at a time."""

    executor: DaskExecutor

    def __init__(self, client: Any) -> None:
        self.client = client
        self.topic = f"parafactory-{uuid.uuid4().hex}"  # this backend's runs' events
        super().__init__(DaskExecutor(client))
        self._lock = threading.Lock()  # the event loop and the scheduler thread share:
        self._running: dict[int, _Running] = {}  # step id -> where its chain runs
        self._outcome_of: dict[int, Future[Any]] = {}  # step id -> its task's outcome
        self._watched: set[str] = set()  # workers whose departure we listen for
        self._marker: Path | None = None
        self._stopped = False  # request_stop told the workers
        self._workers_seen = 0.0
        self._refresh_workers()

    # -- a run -------------------------------------------------------------------------

    def start(self, settings: RunSettings) -> None:
        settings = dataclasses.replace(settings, setup=settings.setup.absolute())
        self._marker = _visible_marker(settings.setup)
        self.client.subscribe_topic(self.topic, self._on_event)
        super().start(settings)

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)  # a run stopped by an error
        if self._stopped:
            self.client.run(_forget_run, self.topic)
            self._stopped = False
        self.client.unsubscribe_topic(self.topic)
        for worker in self._watched:
            self.client.unsubscribe_topic(worker)
        self._watched.clear()
        if self._marker is not None and self._marker.is_file():
            with contextlib.suppress(OSError):
                self._marker.unlink()
        super().close()

    def hooks(self) -> WorkerHooks:
        assert self.settings is not None
        marker = str(self._marker) if self._marker is not None else None
        return DaskHooks(self.topic, self.settings.log_level, marker)

    def check_travel(self, records: list[Any], stages: list[Any]) -> None:
        check_plan_travels(records, stages)

    # -- tasks ---------------------------------------------------------------------------

    def in_flight(self) -> int:
        """Every ready chain, once a chain's time is known (so that short ones go in
        batches of about 50 ms, not a task each): dask's scheduler spreads them over the
        workers there are now, and ``adapt()`` scales on the queue they make."""
        self._refresh_workers()
        return sys.maxsize if self._seconds_per_chain is not None else 2 * self.workers

    def task(self, step_id: int, record: Any, calls: list[Any]) -> ChainTask:
        return ChainTask(step_id, record, calls)  # pickled as it is sent: a copy

    def submit(self, tasks: list[ChainTask]) -> Future[Any]:
        outcome = super().submit(tasks)
        with self._lock:
            for task in tasks:
                self._outcome_of[task.step_id] = outcome
        return outcome

    def results(self, tasks: list[ChainTask], returned: list[Any]) -> list[ChainResult]:
        with self._lock:
            for task in tasks:
                self._outcome_of.pop(task.step_id, None)
                self._running.pop(task.step_id, None)
        return super().results(tasks, returned)

    def _refresh_workers(self) -> None:
        """How many threads the cluster has now (asked at most twice a second)."""
        now = time.monotonic()
        if now - self._workers_seen >= _WORKERS_REFRESH_SECONDS:
            self._workers_seen = now
            self.workers = max(1, sum(self.client.nthreads().values()))

    # -- events, on the client's event loop ----------------------------------------------

    async def _on_event(self, event: tuple[float, Any]) -> None:
        kind, step_id, payload = event[1]
        if kind == "log":
            if self.settings is not None:
                self.settings.deliver_log(logging.makeLogRecord(payload))
            return
        with self._lock:
            if kind == "ended":
                self._running.pop(step_id, None)
                return
            worker, position = payload
            self._running[step_id] = _Running(worker, position)
            outcome = self._outcome_of.get(step_id)
            task = self.executor.tasks.get(outcome) if outcome is not None else None
            watch = worker not in self._watched
            self._watched.add(worker)
        if watch:
            self.client.subscribe_topic(worker, functools.partial(self._on_worker_event, worker))
        if task is not None and position == 0:
            await self._pin(task.key, worker)

    async def _pin(self, key: Any, worker: str) -> None:
        """Keep a task that started on ``worker`` there: if the worker dies, dask must not
        run it again elsewhere at once (a stage that kills its worker would kill one after
        another); parafactory retries it, alone, once."""
        with contextlib.suppress(Exception):  # finished and forgotten meanwhile
            await self.client.scheduler.set_restrictions(worker={key: [worker]})

    async def _on_worker_event(self, worker: str, event: tuple[float, Any]) -> None:
        """A worker's own event: when dask removes it, what it was running is lost: the
        chains fail over to the scheduler's retry (or are resent, if it was retired)."""
        message = event[1]
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        expected = bool(message.get("expected"))
        with self._lock:
            running = {s: r.position for s, r in self._running.items() if r.worker == worker}
            for step_id in running:
                del self._running[step_id]
            outcomes = {self._outcome_of[s] for s in running if s in self._outcome_of}
        how = "was retired" if expected else "died (or its node was lost)"
        lost = WorkerLost(
            f"its dask worker {worker} {how}",
            {} if expected else running,
            set(running) if expected else set(),
        )
        for outcome in outcomes:
            if not outcome.done():
                outcome.set_exception(lost)
        tasks = [self.executor.tasks[o] for o in outcomes if o in self.executor.tasks]
        if tasks:
            await self.client.cancel(tasks, asynchronous=True)

    def lost(self, tasks: list[ChainTask], error: BaseException) -> Loss | None:
        if isinstance(error, SharedFilesError):
            raise error  # no worker can run anything: the run stops here
        if isinstance(error, WorkerLost):
            return Loss(str(error), suspects=error.suspects, innocent=error.innocent)
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):
            with self._lock:
                suspects = {
                    t.step_id: self._running[t.step_id].position
                    for t in tasks
                    if t.step_id in self._running
                }
            return Loss(f"the dask worker running it died ({error})", suspects=suspects)
        return None

    def request_stop(self) -> None:
        """``errors="raise"``: every worker starts no further chain of this run after the
        one a task begins with; what runs ends and is kept. (Cancelling queued tasks
        instead would race: a task that started meanwhile would lose its result.)"""
        self.client.run(_stop_run, self.topic)
        self._stopped = True


@dataclasses.dataclass(frozen=True)
class DaskHooks(WorkerHooks):
    """In a dask worker (one of several threads, maybe on another machine): check that the
    run's files are visible here, and send what each chain's stages log and print, and
    which stage each starts, as events on the run's topic, as they happen."""

    topic: str
    log_level: int
    marker: str | None  # the cache directory, or a file the parent made in it

    @contextlib.contextmanager
    def batch(self, tasks: list[ChainTask]) -> Iterator[None]:
        if self.marker is not None and not os.path.exists(self.marker):
            raise SharedFilesError(_not_shared(self.marker))
        install(self.log_level, None)
        yield

    @contextlib.contextmanager
    def chain(self, task: ChainTask) -> Iterator[list[Any]]:
        send = functools.partial(_send_log, self.topic, task.step_id)
        try:
            with tagged(task.record.name, send=send) as logs:
                yield logs
        finally:
            _event(self.topic, ("ended", task.step_id, None))

    def stage_started(self, step_id: int, position: int) -> None:
        from distributed import get_worker

        _event(self.topic, ("started", step_id, (get_worker().address, position)))

    def stop_requested(self) -> bool:
        return self.topic in _STOPPED_RUNS

    def finish(self, result: ChainResult, task: ChainTask, setup: WorkerSetup) -> Any:
        return encoded(result, task, setup)


_STOPPED_RUNS: set[str] = set()  # in a worker: runs whose chains are not to start


def _stop_run(topic: str) -> None:
    """In each worker (``client.run``): start no further chain of this run."""
    _STOPPED_RUNS.add(topic)


def _forget_run(topic: str) -> None:
    _STOPPED_RUNS.discard(topic)


def _event(topic: str, message: tuple[str, int, Any]) -> None:
    """Send an event to the parent through the scheduler (thread-safe, in order)."""
    from distributed import get_worker

    get_worker().log_event(topic, message)


def _send_log(topic: str, step_id: int, record: logging.LogRecord) -> None:
    """A log record as an event: its attributes, made plain (as ``forward_logging`` does)."""
    fields = dict(record.__dict__)
    fields["args"], fields["exc_info"] = None, None
    _event(topic, ("log", step_id, fields))


def _visible_marker(setup: WorkerSetup) -> Path | None:
    """A file made in the cache's staging folder for this run, which a worker must see: if
    it cannot, it does not share this machine's files, and its cache would be its own. In
    a cache this process may not write to, the directory itself."""
    if setup.cache is None:
        return None
    directory = setup.cache.directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
        folder = setup.cache.staging_folder()
        marker = folder / f".parafactory-visible.{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        marker.touch()
    except OSError:  # read-only: the directory must be seen at least
        return directory
    return marker


def _not_shared(marker: str) -> str:
    from distributed import get_worker

    return (
        f"dask worker {get_worker().address} cannot see {marker}, in the run's cache "
        "directory: the workers do not "
        "share this machine's files. Give the ArtifactManager a root on storage every "
        "worker and the driver share, as an absolute path, e.g. "
        "ArtifactManager(name, root='/shared/project')"
    )


def open(workers: int, *, client: Any = None, **_: Any) -> DaskBackend:
    """The dask backend on ``client``, or on the client current in this process."""
    try:
        import distributed
    except ImportError as error:
        raise BackendUnavailableError(
            "backend='dask' needs dask's distributed package: pip install 'parafactory[dask]'"
        ) from error
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError(
                "backend='dask' found no dask client; start one first "
                "(distributed.Client(...), e.g. on a dask-jobqueue SLURMCluster) or pass client="
            ) from None
    return DaskBackend(client)
