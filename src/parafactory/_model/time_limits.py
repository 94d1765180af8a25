"""Stage time limits: a stage that runs longer than its limit is stopped.

Inside the process running the stage, it is interrupted with an exception: by SIGALRM in
the main thread (which also breaks a ``time.sleep`` or a blocking read), or by an
asynchronous exception in any other thread (a dask worker's), which Python checks
between bytecodes. A stage stuck in C code that holds the GIL cannot be interrupted from
inside: a local worker running one is killed by the parent once the limit has passed by
:data:`KILL_GRACE_SECONDS` (see the scheduler); in the parent's own process
(``n_jobs=1``) or on a dask worker such a stage runs to its end.

Python raises either kind of interruption at the next bytecode it checks, which may be
in our own code just before or after the stage, so :func:`call_with_time_limit` catches
it in one plain frame around the whole call, and its clean-up may be cut short by it and
run again. A context manager cannot do this: an exception arriving in its ``__exit__``
before that runs escapes it.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from .._errors import StageTimeoutError

KILL_GRACE_SECONDS = 2.0

_T = TypeVar("_T")


class _LimitReached(BaseException):
    """Raised inside the stage when its time is up (a BaseException, so that a stage's
    ``except Exception`` does not swallow it); turned into StageTimeoutError."""


def effective_limit(*limits: float | None) -> float | None:
    """The tightest of the limits given (``None``: no limit)."""
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


def call_with_time_limit(
    seconds: float,
    record_name: str,
    stage_name: str,
    function: Callable[..., _T],
    /,
    *args: Any,
    **kwargs: Any,
) -> _T:
    """``function(*args, **kwargs)``, stopped with :class:`StageTimeoutError` if it runs
    longer than ``seconds``."""
    limit: _Alarm | _Watcher = _Alarm(seconds) if _alarm_is_free() else _Watcher(seconds)
    try:
        limit.start()
        try:
            return function(*args, **kwargs)
        finally:
            limit.stop(raised=isinstance(sys.exc_info()[1], limit.reached))
    except limit.reached:
        limit.stop(raised=True)  # again: it may have arrived as the limit was being stopped
        raise StageTimeoutError(
            f"stage {stage_name!r} on record {record_name!r} ran longer than its time limit "
            f"of {seconds:g} s and was stopped",
            record_name=record_name,
            stage_name=stage_name,
            limit=seconds,
        ) from None


def _alarm_is_free() -> bool:
    """SIGALRM is ours to use: main thread, and no timer or handler of the user's set."""
    if threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signal.SIGALRM)
    return handler in (signal.SIG_DFL, None) and signal.getitimer(signal.ITIMER_REAL)[0] == 0


class _Limit:
    """One call's limit. Its exception is a class of its own, so that a stage called
    inside another, each with a limit, is stopped by its own."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.reached: type[_LimitReached] = type("_LimitReached", (_LimitReached,), {})


class _Alarm(_Limit):
    """A one-shot SIGALRM timer whose handler raises the limit's exception."""

    previous: Any = None

    def start(self) -> None:
        self.previous = signal.signal(signal.SIGALRM, self._ring)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def stop(self, raised: bool) -> None:
        """Cancel the timer and put the previous handler back (safe to call twice)."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self.previous is not None:
            signal.signal(signal.SIGALRM, self.previous)
            self.previous = None

    def _ring(self, signum: int, frame: FrameType | None) -> None:
        raise self.reached


class _Watcher(_Limit):
    """A thread that raises the limit's exception in the calling thread once its time is
    up, unless stopped first.

    The two threads share only plain locks, whose methods are C code, so an exception
    arriving in the stage's thread cannot leave one half-changed (as it could an
    ``Event``, whose methods are Python code). The watcher fires only while armed, and
    ``stop`` cancels an exception fired but not raised yet: none is raised after it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.target = threading.get_ident()
        self.lock = threading.Lock()
        self.stopped = threading.Lock()  # released by stop, to let the watcher go
        self.stopped.acquire()
        self.armed = self.due = self.fired = self.released = False

    def start(self) -> None:
        threading.Thread(target=self._watch, name="parafactory-time-limit", daemon=True).start()
        with self.lock:  # armed only now: nothing is ever raised inside Thread.start
            if self.due:  # the time was up before that
                raise self.reached
            self.armed = True

    def stop(self, raised: bool) -> None:
        """Disarm; unless the exception was ``raised`` already, cancel it if it was fired
        (safe to call again once raised)."""
        with self.lock:
            self.armed = False
            if self.fired and not raised:
                _raise_in(self.target, None)
            if not self.released:
                self.released = True
                self.stopped.release()

    def _watch(self) -> None:
        if self.stopped.acquire(timeout=self.seconds):
            return
        with self.lock:
            if self.armed:
                self.armed, self.fired = False, True
                _raise_in(self.target, self.reached)
            else:
                self.due = True


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Have Python raise ``exception`` in thread ``thread_id`` at its next bytecode
    (``None``: cancel one that is pending)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )
