"""What runs leave behind when they die (temporary files, spill directories, semaphores),
found by the process id in their names and removed by the next run.

A file or directory is removed only when the process named in it no longer exists, so
nothing a live run (this one or another on the same machine) is using is touched. This
module is a leaf: any layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from pathlib import Path

HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())  # this machine, as names carry it


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists and has not ended: a zombie (dead, not yet
    reaped by its parent) counts as gone; one we may not signal counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """On Linux, the state in ``/proc/PID/stat`` (after the command name) says Z or X."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status[status.rfind(")") + 2 : status.rfind(")") + 3] in ("Z", "X")


def remove_dead(directory: Path, pattern: re.Pattern[str]) -> int:
    """Remove the entries of ``directory`` whose name matches ``pattern`` and whose
    ``pid`` group names a process that is gone; returns how many were removed. A pattern
    with a ``host`` group (a directory other machines share) only matches this machine's."""
    removed = 0
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            found = pattern.fullmatch(entry.name)
            if found is None or found.groupdict().get("host", HOST) != HOST:
                continue
            if process_alive(int(found["pid"])):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
    return removed
