"""Any ``concurrent.futures.Executor`` a user passes as the backend."""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .._core.chains import ChainTask, WorkerHooks
from .._core.travel import check_plan_travels
from .base import Backend, Loss, RemoteHooks

logger = logging.getLogger("parafactory")


class ExecutorBackend(Backend):
    """Chains run on the user's executor; the user owns its lifetime. A thread pool runs
    them in this process; any other executor is taken to pickle what it is sent."""

    def __init__(self, executor: Executor, workers: int) -> None:
        super().__init__(executor)
        self.workers = pool_size(executor, workers)
        self._in_this_process = isinstance(executor, ThreadPoolExecutor)

    def hooks(self) -> WorkerHooks:
        if self._in_this_process:
            return WorkerHooks()
        assert self.settings is not None
        return RemoteHooks(self.settings.log_level)

    def check_travel(self, records: list[Any], stages: list[Any]) -> None:
        if not self._in_this_process:
            check_plan_travels(records, stages)

    def task(self, step_id: int, record: Any, calls: list[Any]) -> ChainTask:
        if self._in_this_process:
            return super().task(step_id, record, calls)
        return ChainTask(step_id, record, calls)  # pickled as it is sent: a copy

    def lost(self, tasks: list[ChainTask], error: BaseException) -> Loss | None:
        if not isinstance(error, BrokenProcessPool):
            return None
        logger.warning(
            "the executor passed as backend broke when a worker died, and parafactory cannot "
            "restart a pool it does not own: records still to run will fail. Use "
            "backend='loky' (the default) to have the pool restarted."
        )
        return Loss(f"the worker process died ({error})", whole_pool=True)

    def abort(self) -> None:
        pass  # not ours to shut down; the scheduler cancels its own futures


def pool_size(executor: Executor, default: int) -> int:
    """How many workers a standard-library pool has. They say only in a private attribute
    (``_max_workers``): test_private_apis checks it is still there."""
    size = getattr(executor, "_max_workers", None)
    return size if isinstance(size, int) and size > 0 else default
