"""What every backend provides to the scheduler."""

from __future__ import annotations

from concurrent.futures import Executor


class Backend:
    """An executor plus what the scheduler must know about its workers.

    ``same_machine``: workers are processes on this machine, so log records come back
    live over a local socket and large results through shared memory.
    ``pickles_tasks``: tasks reach workers pickled, so they work on copies of records.
    ``one_death_fails_all``: a dead worker fails every pending task (a process pool
    breaks), so the scheduler collects what finished and restarts the pool.
    """

    name = "backend"
    workers = 1
    same_machine = False
    pickles_tasks = True
    one_death_fails_all = False

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def death(self, error: BaseException) -> str | None:
        """How a worker died, if ``error`` says one did; ``None`` for any other error."""
        return None

    def restart(self) -> None:
        """Get a working executor after a worker death broke the current one."""

    def abort(self) -> None:
        """Stop at once: cancel what has not started and stop workers that are running."""
        self.executor.shutdown(wait=False, cancel_futures=True)
