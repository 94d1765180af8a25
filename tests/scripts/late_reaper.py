"""Run a command as an init that reaps orphans late does: they stay zombies meanwhile.

Usage: python late_reaper.py COMMAND [ARGS...]

Makes this process the reaper of its descendants' orphans (Linux
``PR_SET_CHILD_SUBREAPER``), runs COMMAND and waits for it alone, so the orphans it
leaves (a killed script's workers) stay dead but unreaped (zombies) until this process
gets SIGTERM: then it reaps them all and exits. A container whose first process does
not reap, or an init that reaps every few seconds, leaves zombies just so.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def main(command: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
        sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")
    child = subprocess.Popen(command)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # after the start: not inherited
    child.wait()  # the command only: orphans adopted meanwhile stay zombies
    signal.sigwait({signal.SIGTERM})
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


if __name__ == "__main__":
    main(sys.argv[1:])
