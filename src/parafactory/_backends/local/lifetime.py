"""A local worker's lifetime: Ctrl-C is the parent's, and the worker dies with its parent.

The pool's initializer (:func:`prepare_local_worker`) runs in each worker as it starts.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from types import FrameType


def prepare_local_worker(parent_pid: int, kernel_may_watch: bool) -> None:
    """Initializer of a local pool's workers: Ctrl-C is the parent's, and the worker dies
    with the parent.

    A terminal's Ctrl-C, or a notebook's interrupt, reaches every process of the group,
    but only the parent acts on it (it stops the run and its workers itself), so a worker
    neither dies idle nor prints a traceback. A handler that does nothing, rather than
    ``SIG_IGN``: programs a stage starts get the default back when they exec, so Ctrl-C
    still stops them.
    """
    signal.signal(signal.SIGINT, _ignore)
    _die_with(parent_pid, kernel_may_watch)


def _die_with(parent_pid: int, kernel_may_watch: bool) -> None:
    """Have the kernel kill this process when its parent dies (Linux), so even a worker
    deep in a C call that holds the GIL, or idle, is gone at once; elsewhere a thread
    checks twice a second.

    The kernel's watch ends with the *thread* that started the worker, so it is only
    asked for (``kernel_may_watch``) when that is the parent's main thread, which lives
    as long as the parent; a pool started from another thread is watched by the thread.
    """
    if not (kernel_may_watch and _kernel_kills_orphans()):
        threading.Thread(
            target=_exit_when_orphaned,
            args=(parent_pid,),
            name="parafactory-parent-watch",
            daemon=True,
        ).start()
    if os.getppid() != parent_pid:  # the parent died before the kernel was told
        os._exit(1)


def _kernel_kills_orphans() -> bool:
    """Ask Linux for SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0)
    except (OSError, AttributeError):  # not Linux, or no prctl in this libc
        return False


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C in a worker: the parent decides."""
