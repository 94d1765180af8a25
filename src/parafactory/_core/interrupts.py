"""Signals that stop a run: SIGTERM and SIGHUP become an exception in the parent, and
Ctrl-C is told apart from a ``KeyboardInterrupt`` a stage raises itself."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during a run; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class CtrlC(KeyboardInterrupt):
    """The KeyboardInterrupt a real Ctrl-C raises during a run, told apart from one a stage
    raises itself (in this process, that one only fails its record)."""


_ctrl_c_told_apart = False  # a run in this process has CtrlC's handler on SIGINT


def stops_the_run(error: BaseException) -> bool:
    """Whether an exception raised by a stage in this process means: stop the run."""
    if isinstance(error, Terminated | CtrlC):
        return True
    return isinstance(error, KeyboardInterrupt) and not _ctrl_c_told_apart


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` in the main
    thread, and Ctrl-C raises :class:`CtrlC` (when SIGINT has Python's own handler)."""
    global _ctrl_c_told_apart
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    def raise_ctrl_c(signum: int, frame: FrameType | None) -> None:
        raise CtrlC

    previous = {signum: signal.signal(signum, raise_terminated) for signum in STOP_SIGNALS}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, raise_ctrl_c)
    told_apart, _ctrl_c_told_apart = _ctrl_c_told_apart, signal.SIGINT in previous
    try:
        yield
    finally:
        _ctrl_c_told_apart = told_apart
        for signum, handler in previous.items():
            signal.signal(signum, handler)
