"""A run's scratch directory: in shared memory where there is some, removed when the run ends.

Local workers leave large results (``_transfer``) and their status slots
(``_worker_status``) here, so neither has to go through a pipe, and read the
run's stop flag from it. ``PARAFACTORY_SCRATCH_DIR`` picks another place (a
node-local disk when shared memory is small). A run also removes what runs that
died left there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..._leftovers import remove_dead
from .status import create_stop_flag

SCRATCH_VARIABLE = "PARAFACTORY_SCRATCH_DIR"
SHARED_MEMORY = Path("/dev/shm")
_PREFIX = "parafactory-"
_RUN_DIRECTORY = re.compile(rf"{_PREFIX}(?P<pid>\d+)-.*")
# loky's named semaphores, left in shared memory when a run and its helpers are killed
_LOKY_SEMAPHORE = re.compile(r"sem\.loky-(?P<pid>\d+)-.*")


@contextlib.contextmanager
def scratch_directory() -> Iterator[str]:
    """A fresh directory for one run, removed however the run ends."""
    base = scratch_base()
    remove_dead(base, _RUN_DIRECTORY)
    if base == SHARED_MEMORY:
        remove_dead(base, _LOKY_SEMAPHORE)
    directory = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base)
    create_stop_flag(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def scratch_base() -> Path:
    """Where scratch directories go: ``$PARAFACTORY_SCRATCH_DIR``, else shared memory,
    else the temporary directory."""
    chosen = os.environ.get(SCRATCH_VARIABLE)
    if chosen:
        return Path(chosen)
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
        return SHARED_MEMORY
    return Path(tempfile.gettempdir())
