"""The default local pool: loky's reusable process executor.

Workers outlive a run so the next run starts warm, unless code changed since
the pool started: a loaded module's file changed on disk, or ``sys.path``
changed. Then the pool is restarted, so an edited and reloaded module never
runs stale code in a worker, and a notebook's new import paths reach it. Native thread
pools in the workers are capped so workers × threads ≤ usable CPUs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import sysconfig
import threading
from typing import Any

from loky import get_reusable_executor
from loky.process_executor import TerminatedWorkerError

from ..._core.interrupts import prepare_local_worker
from ..._run.cpus import thread_limits, usable_cpu_count
from ..base import Backend

_IDLE_WORKER_SECONDS = 300
_code_version_of_pool: object = None
_INSTALLED = tuple(
    {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
)  # modules here change only with a reinstall, not between two runs


class LokyBackend(Backend):
    """Chains run in loky worker processes on this machine."""

    name = "loky"
    same_machine = True
    one_death_fails_all = True

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._env = thread_limits(workers, usable_cpu_count())
        super().__init__(self._executor())

    def _executor(self) -> Any:
        _start_resource_trackers_deaf_to_hangup()
        global _code_version_of_pool
        code_version = _loaded_code_version()
        stale = code_version != _code_version_of_pool
        _code_version_of_pool = code_version
        return get_reusable_executor(
            max_workers=self.workers,
            timeout=_IDLE_WORKER_SECONDS,
            env=self._env,
            initializer=prepare_local_worker,
            # the kernel's parent-death signal follows the thread that starts a worker
            initargs=(os.getpid(), threading.current_thread() is threading.main_thread()),
            reuse="auto" if not stale else False,
            kill_workers=stale,
        )

    def death(self, error: BaseException) -> str | None:
        if not isinstance(error, TerminatedWorkerError):
            return None
        codes = [int(code) for code in re.findall(r"\((-?\d+)\)", str(error))]
        return describe_exit(codes[0]) if codes else "the worker process died"

    def restart(self) -> None:
        self.executor = self._executor()

    def abort(self) -> None:
        pool: Any = self.executor
        pool.shutdown(wait=True, kill_workers=True)


def _start_resource_trackers_deaf_to_hangup() -> None:
    """Start loky's and multiprocessing's resource trackers (the helper processes a pool
    needs) with SIGHUP blocked, if they are not running yet.

    They ignore SIGINT and SIGTERM but not SIGHUP: a terminal closing, or a hangup sent
    to the process group, killed them and loky printed a warning and a traceback per
    semaphore. A blocked signal mask is inherited through ``exec``, and the trackers
    never unblock SIGHUP. (``ensure_running`` is what loky calls itself as it starts a
    worker; calling it first only decides the mask the trackers start with.)
    """
    from multiprocessing import resource_tracker as multiprocessing_tracker

    from loky.backend import resource_tracker as loky_tracker

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        loky_tracker.ensure_running()
        multiprocessing_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def describe_exit(code: int) -> str:
    """Say how a worker process ended, from its exit code (negative: killed by that signal)."""
    if code >= 0:
        return f"the worker process died with exit code {code}"
    name = signal.Signals(-code).name
    text = f"the worker process was killed by signal {name} ({-code})"
    if -code == signal.SIGKILL:
        text += "; if nothing else killed it, the out-of-memory killer may have"
    return text


def _loaded_code_version() -> tuple[object, ...]:
    """``sys.path`` and when each loaded module outside the Python installation last changed."""
    stamps = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and not path.startswith(_INSTALLED):
            with contextlib.suppress(OSError):
                stamps.append((path, os.stat(path).st_mtime_ns))
    return (tuple(sys.path), frozenset(stamps))


def open(workers: int, **_: Any) -> LokyBackend:
    """The loky backend with ``workers`` processes."""
    return LokyBackend(workers)


__all__ = ["LokyBackend", "describe_exit", "open"]
