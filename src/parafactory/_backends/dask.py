"""dask.distributed: chains run on a cluster's workers (``pip install 'parafactory[dask]'``).

Only this module imports ``distributed``. Workers may be on other machines,
so their log records come back with their results rather than live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from .._core.chains import ChainTask, WorkerHooks
from .._core.travel import check_plan_travels
from .._errors import BackendUnavailableError
from .base import Backend, Loss, RemoteHooks

_WAIT_SLICE_SECONDS = 1.0


class DaskExecutor(Executor):
    """``client.submit`` behind the ``concurrent.futures`` interface.

    A thread per task in flight waits for its outcome in short slices and settles
    its future whatever happens: fetching a result can hang when the worker holding
    it dies, so between slices it checks whether dask has given up on the task.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._tasks: dict[Future[Any], Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        outcome: Future[Any] = Future()
        task = self._client.submit(fn, *args, pure=False, **kwargs)
        self._tasks[outcome] = task
        outcome.add_done_callback(lambda done: self._tasks.pop(done, None))
        threading.Thread(
            target=_settle, args=(outcome, task), name="parafactory-dask-wait", daemon=True
        ).start()
        return outcome

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self._client.cancel(list(self._tasks.values()))


def _settle(outcome: Future[Any], task: Any) -> None:
    """Copy the task's outcome to ``outcome``: its result, its error, or why it was lost."""
    while not outcome.done():
        try:
            result = task.result(timeout=_WAIT_SLICE_SECONDS)
        except TimeoutError:
            if task.status in ("error", "cancelled"):
                _set_error(outcome, task)
            continue
        except BaseException as error:  # killed, lost, cancelled: all outcomes
            outcome.set_exception(error)
        else:
            outcome.set_result(result)


def _set_error(outcome: Future[Any], task: Any) -> None:
    try:
        error = task.exception(timeout=_WAIT_SLICE_SECONDS)
    except BaseException as cancelled:  # cancelled, or lost
        error = cancelled
    outcome.set_exception(error or RuntimeError(f"dask task {task.key} failed"))


class DaskBackend(Backend):
    """Chains run as tasks of a ``distributed.Client``: what stages log comes back with
    their results, which are pickled one record at a time."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.workers = max(1, sum(client.nthreads().values()))
        super().__init__(DaskExecutor(client))

    def hooks(self) -> WorkerHooks:
        assert self.settings is not None
        return RemoteHooks(self.settings.log_level)

    def check_travel(self, records: list[Any], stages: list[Any]) -> None:
        check_plan_travels(records, stages)

    def task(self, step_id: int, record: Any, calls: list[Any]) -> ChainTask:
        return ChainTask(step_id, record, calls)  # pickled as it is sent: a copy

    def lost(self, tasks: list[ChainTask], error: BaseException) -> Loss | None:
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):
            return Loss(f"the dask worker running it died ({error})")
        return None


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
