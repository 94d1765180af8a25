"""``n_jobs=1``: chains run in the parent's own process, one after the other, with no pool."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from .base import Backend


class InProcessExecutor(Executor):
    """An executor that runs each call as it is submitted (what tests and debuggers want)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # the future carries it, as a pool's would
            future.set_exception(error)
        return future


class InProcessBackend(Backend):
    """Chains run in this process; Ctrl-C reaches the stage directly."""

    def __init__(self) -> None:
        super().__init__(InProcessExecutor())
