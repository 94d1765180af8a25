"""Records do not leak into each other through a reused local worker.

A stage may change its process: its working directory, environment variables, resource
limits. In a reused worker the next record would inherit that (one record's memory limit
failing the records after it), so after each record the worker puts back what a stage
changed, as it was before the worker's first record. Python's audit events say what a
stage touched, so a record that touched nothing costs one set lookup.

A hard resource limit lowered by a stage cannot be raised again without privileges: the
worker then retires before its next batch (the parent retries that batch elsewhere,
without counting it against the records).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import resource
import sys
from typing import Any

logger = logging.getLogger("parafactory")

_CWD, _ENVIRONMENT, _LIMITS = "working directory", "environment", "resource limits"
_EVENTS = {
    "os.chdir": _CWD,
    "os.putenv": _ENVIRONMENT,
    "os.unsetenv": _ENVIRONMENT,
    "resource.setrlimit": _LIMITS,
    "resource.prlimit": _LIMITS,
}
_LIMIT_NAMES = [name for name in dir(resource) if name.startswith("RLIMIT_")]


@dataclasses.dataclass
class _Baseline:
    """The worker as it was before its first record."""

    cwd: str
    environment: dict[str, str]
    limits: dict[int, tuple[int, int]]
    touched: set[str] = dataclasses.field(default_factory=set)
    restoring: bool = False
    must_retire: bool = False


# One per worker process: taken before its first record, then compared after each.
_baseline: _Baseline | None = None


def watch_this_worker() -> None:
    """Start noting what stages change in this (local worker) process; idempotent."""
    global _baseline
    if _baseline is not None:
        return
    limits = {}
    for name in _LIMIT_NAMES:
        limits[getattr(resource, name)] = resource.getrlimit(getattr(resource, name))
    _baseline = _Baseline(os.getcwd(), dict(os.environ), limits)
    sys.addaudithook(_note)


def work_in(directory: str) -> None:
    """Run this batch's records in ``directory`` (the parent's working directory, which
    may have changed since this worker started: a notebook's ``%cd``), and put it back
    there after each record."""
    if _baseline is not None and _baseline.cwd != directory:
        os.chdir(directory)
        _baseline.cwd = directory


def must_retire() -> bool:
    """Whether a stage left this worker in a state it cannot be put back from."""
    return _baseline is not None and _baseline.must_retire


def put_back(record_name: str) -> None:
    """After a record: undo what its stages changed in this worker."""
    baseline = _baseline
    if baseline is None or not baseline.touched:
        return
    baseline.restoring = True
    try:
        if _CWD in baseline.touched:
            with contextlib.suppress(OSError):
                os.chdir(baseline.cwd)
        if _ENVIRONMENT in baseline.touched:
            _restore_environment(baseline.environment)
        if _LIMITS in baseline.touched:
            _restore_limits(baseline, record_name)
    finally:
        baseline.touched.clear()
        baseline.restoring = False


def _note(event: str, args: tuple[Any, ...]) -> None:
    baseline = _baseline
    what = _EVENTS.get(event)
    if what is not None and baseline is not None and not baseline.restoring:
        baseline.touched.add(what)


def _restore_environment(environment: dict[str, str]) -> None:
    for key in [key for key in os.environ if key not in environment]:
        del os.environ[key]
    for key, value in environment.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _restore_limits(baseline: _Baseline, record_name: str) -> None:
    for limit, values in baseline.limits.items():
        if resource.getrlimit(limit) == values:
            continue
        try:
            resource.setrlimit(limit, values)
        except (ValueError, OSError) as error:
            baseline.must_retire = True
            logger.warning(
                "a stage of record %r lowered a hard resource limit of worker %d that cannot "
                "be raised again (%s); the worker retires before its next batch",
                record_name,
                os.getpid(),
                error,
            )
