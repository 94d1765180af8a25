"""Stages for tests on dask clusters: workers import this module by name
(``cluster_stages``), with ``tests/`` on their path (inherited, or set by the test)."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from pathlib import Path

from parafactory import ExperimentParameters, PickleCacher, stage

logger = logging.getLogger("cluster_stages")

WAIT_FOR_GO_SECONDS = 30.0


@dataclasses.dataclass
class Item(ExperimentParameters):
    value: int = 0
    seconds: float = 0.0
    lines: int = 3
    marker_dir: str = ""


@stage(outputs=["doubled"])
def chatty(record):
    """Print and log ``lines`` lines each, sleeping between them; output ``value * 2``."""
    params = record.params
    for line in range(params.lines):
        print(f"printed {params.name} line {line}")
        logger.info("logged %s line %d", params.name, line)
        time.sleep(params.seconds)
    return params.value * 2


@stage(outputs=["saw_go"])
def waits_for_go(record):
    """Log that it waits, then wait for a file ``go`` the test makes once it has seen that
    line: whether it came (it only can if the line reached the parent while this runs)."""
    logger.info("waiting for go")
    go = Path(record.params.marker_dir) / "go"
    deadline = time.monotonic() + WAIT_FOR_GO_SECONDS
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return go.exists()


@stage(outputs=["ran_in"])
def where(record):
    """Sleep ``seconds``; output the process that ran it."""
    time.sleep(record.params.seconds)
    return f"{socket.gethostname()}:{os.getpid()}"


@stage(outputs=["squared"], cachers=[PickleCacher])
def cached_square(record):
    """``value ** 2``, cached; each execution leaves a file in ``marker_dir``, and this
    process's working directory is noted in the state."""
    params = record.params
    marker = Path(params.marker_dir) / f"{params.name}.{os.getpid()}.{time.time_ns()}"
    marker.write_text(os.getcwd())
    return params.value**2
