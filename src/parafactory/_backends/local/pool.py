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

from ..._core.chains import ChainResult, ChainTask, WorkerHooks
from ..._core.travel import check_plan_travels
from ..._model.reportables import worker_environment
from ..._model.time_limits import KILL_GRACE_SECONDS
from ..._run.cpus import thread_limits, usable_cpu_count
from ..base import Backend, LimitOf, Loss, RunSettings
from .lifetime import prepare_local_worker
from .log_channel import _to_its_logger, listener
from .scratch import scratch_directory
from .spill import unspill
from .status import RETIRED, request_stop, running_stages, running_steps
from .worker import LocalHooks

_IDLE_WORKER_SECONDS = 300
_code_version_of_pool: object = None  # loky reuses one pool per process: the code it has
_INSTALLED = tuple(
    {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
)  # modules here change only with a reinstall, not between two runs


class LokyBackend(Backend):
    """Chains run in loky worker processes on this machine: their log records come back
    live over a Unix socket, large arrays through shared memory, and the stage each
    worker runs is marked in a status slot the parent reads after a crash."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._env = thread_limits(workers, usable_cpu_count()) | worker_environment()
        super().__init__(self._executor())
        self._run: contextlib.ExitStack | None = None
        self._scratch_dir = ""
        self._overdue: dict[int, tuple[int, float]] = {}  # killed: step -> (position, limit)

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

    def start(self, settings: RunSettings) -> None:
        self._run = contextlib.ExitStack()
        channel = listener()
        channel.deliver = settings.deliver_log
        self._run.callback(setattr, channel, "deliver", _to_its_logger)
        self._scratch_dir = self._run.enter_context(scratch_directory())
        self._overdue.clear()
        super().start(settings)

    def close(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None
        super().close()

    def hooks(self) -> WorkerHooks:
        assert self.settings is not None
        return LocalHooks(
            self._scratch_dir, listener().address, self.settings.log_level, os.getcwd()
        )

    def check_travel(self, records: list[Any], stages: list[Any]) -> None:
        check_plan_travels(records, stages)

    def task(self, step_id: int, record: Any, calls: list[Any]) -> ChainTask:
        return ChainTask(step_id, record, calls)  # pickled as it is sent: a copy

    def results(self, tasks: list[ChainTask], returned: list[Any]) -> list[ChainResult]:
        results = super().results(tasks, returned)
        if results:  # one worker ran them: its last count covers every log line they made
            listener().catch_up(results[-1].logs_sent)
        for result in results:
            result.changed = unspill(result.changed)
        return results

    def lost(self, tasks: list[ChainTask], error: BaseException) -> Loss | None:
        """A dead worker breaks a loky pool: every task in flight is lost, and the pool is
        started again. The status slots say which stage each dead worker ran."""
        code = exit_code(error)
        if code is None:
            return None
        running = running_steps(self._scratch_dir)
        self.executor = self._executor()
        return Loss(
            describe_exit(code) if code != _UNKNOWN else "the worker process died",
            suspects={step: position for step, position in running.items() if position >= 0},
            innocent={step for step, position in running.items() if position == RETIRED},
            timed_out=dict(self._overdue),
            whole_pool=True,
        )

    def request_stop(self) -> None:
        request_stop(self._scratch_dir)

    def stop_overdue(self, limit_of: LimitOf) -> None:
        for running in running_stages(self._scratch_dir):
            limit = limit_of(running.step_id, running.position)
            if limit is None or running.seconds < limit + KILL_GRACE_SECONDS:
                continue
            if running.step_id not in self._overdue:
                self._overdue[running.step_id] = (running.position, limit)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(running.pid, signal.SIGKILL)

    def abort(self) -> None:
        pool: Any = self.executor
        pool.shutdown(wait=True, kill_workers=True)


_UNKNOWN = 1 << 30


def exit_code(error: BaseException) -> int | None:
    """The exit code of the worker whose death ``error`` reports (negative: the signal that
    killed it), ``_UNKNOWN`` if it does not say; ``None`` if ``error`` is no death.

    loky gives the codes only in its message, "... exit codes of the workers are
    {SIGKILL(-9)}": test_private_apis checks the text still reads so.
    """
    if not isinstance(error, TerminatedWorkerError):
        return None
    codes = [int(code) for code in re.findall(r"\((-?\d+)\)", str(error))]
    return codes[0] if codes else _UNKNOWN


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


__all__ = ["LokyBackend", "describe_exit", "exit_code", "open"]
