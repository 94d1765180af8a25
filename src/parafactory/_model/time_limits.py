"""Stage time limits: a stage that runs longer than its limit is stopped.

Inside the process running the stage, it is interrupted with an exception: by SIGALRM in
the main thread (which also breaks a ``time.sleep`` or a blocking read), or by an
asynchronous exception in any other thread (a dask worker's), which Python checks
between bytecodes. A stage stuck in C code that holds the GIL cannot be interrupted from
inside: a local worker running one is killed by the parent once the limit has passed by
:data:`KILL_GRACE_SECONDS` (see the scheduler); in the parent's own process
(``n_jobs=1``) or on a dask worker such a stage runs to its end.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from .._errors import StageTimeoutError

KILL_GRACE_SECONDS = 2.0


class _LimitReached(BaseException):
    """Raised inside the stage when its time is up (a BaseException, so that a stage's
    ``except Exception`` does not swallow it); turned into StageTimeoutError."""


def effective_limit(*limits: float | None) -> float | None:
    """The tightest of the limits given (``None``: no limit)."""
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


@contextlib.contextmanager
def time_limit(seconds: float | None, record_name: str, stage_name: str) -> Iterator[None]:
    """Stop the block with :class:`StageTimeoutError` if it runs longer than ``seconds``."""
    if seconds is None:
        yield
        return
    interrupt = _alarm if _alarm_is_free() else _async_exception
    try:
        with interrupt(seconds):
            yield
    except _LimitReached:
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


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def reached(signum: int, frame: FrameType | None) -> None:
        raise _LimitReached

    previous = signal.signal(signal.SIGALRM, reached)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _async_exception(seconds: float) -> Iterator[None]:
    thread_id = threading.get_ident()
    lock = threading.Lock()
    finished = threading.Event()
    fired = []

    def watch() -> None:
        if finished.wait(seconds):
            return
        with lock:
            if not finished.is_set():
                _raise_in(thread_id, _LimitReached)
                fired.append(True)

    threading.Thread(target=watch, name="parafactory-time-limit", daemon=True).start()
    try:
        yield
    finally:
        with lock:
            finished.set()
            if fired:  # reached as the block ended: make sure it is not raised later
                _raise_in(thread_id, None)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Have Python raise ``exception`` in thread ``thread_id`` at its next bytecode
    (``None``: cancel one that is pending)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )
