"""Helpers shared by the tests and the scripts under ``tests/scripts/``.

Importable as ``helpers``: pytest puts ``tests/`` on ``sys.path`` and the scripts add it
themselves. Nothing here imports pytest, so the scripts can use it too.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "scripts"


def run_script(script: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``script OUT_DIR *args`` in ``out`` to its end; it must succeed."""
    completed = subprocess.run(
        [sys.executable, str(script), str(out), *args],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return completed


def start_script(script: Path, out: Path, *args: str, **popen: Any) -> subprocess.Popen:
    """Start ``script OUT_DIR *args`` in ``out``, in a session of its own (so that signals
    sent to its process group reach its workers too and nothing reaches pytest)."""
    return subprocess.Popen(
        [sys.executable, str(script), str(out), *args],
        cwd=out,
        text=True,
        start_new_session=True,
        **popen,
    )


def note_run(out: Path, manager: Any) -> None:
    """Leave the run's log file path and this process's pid in ``out`` for a test to read."""
    (out / "log_path.txt").write_text(str(manager.log_path))
    (out / "parent.pid").write_text(str(os.getpid()))


def start_dying_cluster() -> tuple[Any, Any]:
    """A local dask cluster of 2 worker processes and its client, for runs that kill workers.

    A task whose worker dies fails at once (KilledWorker) rather than after 3 more
    deaths; parafactory's own retry still runs. Only to keep the run short.
    """
    import dask
    import distributed

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    return cluster, distributed.Client(cluster, set_as_default=False)
