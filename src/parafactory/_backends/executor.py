"""Any ``concurrent.futures.Executor`` a user passes as the backend."""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .base import Backend

logger = logging.getLogger("parafactory")


class ExecutorBackend(Backend):
    """Chains run on the user's executor; the user owns its lifetime."""

    name = "executor"

    def __init__(self, executor: Executor, workers: int) -> None:
        super().__init__(executor)
        self.workers = getattr(executor, "_max_workers", workers)
        self.one_death_fails_all = isinstance(executor, ProcessPoolExecutor)
        self.pickles_tasks = not isinstance(executor, ThreadPoolExecutor)

    def death(self, error: BaseException) -> str | None:
        if isinstance(error, BrokenProcessPool):
            return f"the worker process died ({error})"
        return None

    def restart(self) -> None:
        logger.warning(
            "the executor passed as backend broke when a worker died, and parafactory cannot "
            "restart a pool it does not own: records still to run will fail. Use "
            "backend='loky' (the default) to have the pool restarted."
        )

    def abort(self) -> None:
        pass  # not ours to shut down; the scheduler cancels its own futures
