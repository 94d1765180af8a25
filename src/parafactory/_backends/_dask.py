"""dask.distributed: chains run on a cluster's workers (``pip install 'parafactory[dask]'``).

Only this module imports ``distributed``. Workers may be on other machines,
so their log records come back with their results rather than live.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from .._errors import BackendUnavailableError
from ._base import Backend


class DaskExecutor(Executor):
    """``client.submit`` behind the ``concurrent.futures`` interface.

    Every dask outcome settles its future, even a result lost with its worker
    while being fetched, so the scheduler never waits on a future nobody sets.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._tasks: dict[Future[Any], Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        outcome: Future[Any] = Future()
        task = self._client.submit(fn, *args, pure=False, **kwargs)
        self._tasks[outcome] = task
        outcome.add_done_callback(lambda done: self._tasks.pop(done, None))
        task.add_done_callback(functools.partial(_settle, outcome))
        return outcome

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self._client.cancel(list(self._tasks.values()))


def _settle(outcome: Future[Any], task: Any) -> None:
    """Runs in dask's callback thread: copy the task's outcome, whatever it is."""
    try:
        error = task.exception()
        result = task.result() if error is None else None
    except BaseException as lost:  # noqa: BLE001 - cancelled, lost or killed: all are outcomes
        error = lost
    if not outcome.done():
        if error is None:
            outcome.set_result(result)
        else:
            outcome.set_exception(error)


class DaskBackend(Backend):
    """Chains run as tasks of a ``distributed.Client``."""

    name = "dask"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.workers = max(1, sum(client.nthreads().values()))
        super().__init__(DaskExecutor(client))

    def death(self, error: BaseException) -> str | None:
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):
            return f"the dask worker running it died ({error})"
        return None

    def abort(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


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
