"""The default local pool: loky's reusable process executor.

Workers outlive a run so the next run starts warm, unless the code of the
stages changed on disk since the pool started (then it is restarted, so an
edited and reloaded module never runs stale code in a worker). Native thread
pools in the workers are capped so workers × threads ≤ usable CPUs.
"""

from __future__ import annotations

import re
import signal
from typing import Any

from loky import get_reusable_executor
from loky.process_executor import TerminatedWorkerError

from .._cpus import thread_limits, usable_cpu_count
from ._base import Backend

_IDLE_WORKER_SECONDS = 300
_code_version_of_pool: object = None


class LokyBackend(Backend):
    """Chains run in loky worker processes on this machine."""

    name = "loky"
    same_machine = True
    one_death_fails_all = True

    def __init__(self, workers: int, code_version: object) -> None:
        self.workers = workers
        self._env = thread_limits(workers, usable_cpu_count())
        super().__init__(self._executor(code_version))

    def _executor(self, code_version: object) -> Any:
        global _code_version_of_pool
        stale = code_version != _code_version_of_pool
        _code_version_of_pool = code_version
        return get_reusable_executor(
            max_workers=self.workers,
            timeout=_IDLE_WORKER_SECONDS,
            env=self._env,
            reuse="auto" if not stale else False,
            kill_workers=stale,
        )

    def death(self, error: BaseException) -> str | None:
        if not isinstance(error, TerminatedWorkerError):
            return None
        codes = [int(code) for code in re.findall(r"\((-?\d+)\)", str(error))]
        return describe_exit(codes[0]) if codes else "the worker process died"

    def restart(self) -> None:
        self.executor = self._executor(_code_version_of_pool)

    def abort(self) -> None:
        pool: Any = self.executor
        pool.shutdown(wait=True, kill_workers=True)


def describe_exit(code: int) -> str:
    """Say how a worker process ended, from its exit code (negative: killed by that signal)."""
    if code >= 0:
        return f"the worker process died with exit code {code}"
    name = signal.Signals(-code).name
    text = f"the worker process was killed by signal {name} ({-code})"
    if -code == signal.SIGKILL:
        text += "; if nothing else killed it, the out-of-memory killer may have"
    return text


def open(workers: int, *, code_version: object = None, **_: Any) -> LokyBackend:
    """The loky backend with ``workers`` processes."""
    return LokyBackend(workers, code_version)


__all__ = ["LokyBackend", "describe_exit", "open"]
