"""A run's scratch directory: in shared memory where there is some, removed when the run ends.

Local workers leave large results (``_transfer``) and their status slots
(``_worker_status``) here, so neither has to go through a pipe, and read the
run's stop flag from it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._worker_status import create_stop_flag


@contextlib.contextmanager
def scratch_directory() -> Iterator[str]:
    """A fresh directory for one run, removed however the run ends."""
    shared = Path("/dev/shm")
    base = shared if shared.is_dir() and os.access(shared, os.W_OK) else None
    directory = tempfile.mkdtemp(prefix=f"parafactory-{os.getpid()}-", dir=base)
    create_stop_flag(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
