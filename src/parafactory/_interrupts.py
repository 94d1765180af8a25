"""Signals that stop a run: SIGTERM and SIGHUP become an exception in the parent, and
Ctrl-C is left to the parent alone."""

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


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, raise_terminated) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def leave_ctrl_c_to_the_parent() -> None:
    """Worker initializer: a terminal's Ctrl-C, or a notebook's interrupt, reaches every
    process of the group, but only the parent acts on it (it stops the run and its
    workers itself), so a worker neither dies idle nor prints a traceback.

    A handler that does nothing, rather than ``SIG_IGN``: programs a stage starts get
    the default back when they exec, so Ctrl-C still stops them.
    """
    signal.signal(signal.SIGINT, _ignore)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C in a worker: the parent decides."""
