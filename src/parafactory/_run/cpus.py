"""How many worker processes a sweep may use, and how many native threads each may run.

``os.cpu_count()`` overcounts in containers, cgroups and Slurm jobs, so the worker count
is the least of every limit we can see (affinity, cgroup quota, Slurm's allocation, and
``LOKY_MAX_CPU_COUNT`` as loky and joblib honour it); workers also cap BLAS/OpenMP thread
pools so that workers × threads never oversubscribes the CPUs they were given, never
raising a thread count the user set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

N_JOBS_VARIABLE = "PARAFACTORY_N_JOBS"

THREAD_LIMIT_VARIABLES: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
)

_V1_CONTROLLER_DIRS = ("cpu,cpuacct", "cpu")
# Most specific first: the task's CPUs, then this node's, then the job's per node
# ("8", or "8(x2),4": the first node's count is this one's in a single-node job).
_SLURM_VARIABLES = ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE")
_LOKY_VARIABLE = "LOKY_MAX_CPU_COUNT"
_N_JOBS_ACCEPTED = (
    "a positive int, -1 or None for all usable CPUs, or -2, -3, ... for all but 1, 2, ..."
)


def usable_cpu_count(
    *, proc_root: Path = Path("/"), environ: Mapping[str, str] | None = None
) -> int:
    """Return the CPUs this process may use: the least of affinity, cgroup quota, Slurm's
    allocation and ``$LOKY_MAX_CPU_COUNT``.

    ``proc_root`` is where ``/proc`` and ``/sys`` are looked up (tests pass a fake tree);
    ``environ`` defaults to ``os.environ``. Unreadable sources impose no limit.
    """
    env = os.environ if environ is None else environ
    limits = [
        _affinity_count(),
        _cgroup_limit(proc_root),
        _slurm_limit(env),
        _positive_int(env.get(_LOKY_VARIABLE)),
    ]
    return max(1, min(limit for limit in limits if limit is not None))


def resolve_n_jobs(
    n_jobs: int | None,
    *,
    environ: Mapping[str, str] | None = None,
    usable: int | None = None,
) -> int:
    """Turn a joblib-style ``n_jobs`` into a worker count of at least 1.

    ``None`` and ``-1`` mean ``$PARAFACTORY_N_JOBS`` if set, else all usable CPUs;
    ``-2`` means all but one, and so on. ``usable`` overrides :func:`usable_cpu_count`.
    """
    if isinstance(n_jobs, bool) or not (n_jobs is None or isinstance(n_jobs, int)):
        raise TypeError(f"n_jobs must be {_N_JOBS_ACCEPTED}; got {n_jobs!r}")
    if n_jobs == 0:
        raise ValueError(f"n_jobs must be {_N_JOBS_ACCEPTED}; got 0")
    if n_jobs is not None and n_jobs > 0:
        return n_jobs
    env = os.environ if environ is None else environ
    if n_jobs in (None, -1) and N_JOBS_VARIABLE in env:
        return _env_n_jobs(env[N_JOBS_VARIABLE])
    cpus = usable_cpu_count(environ=env) if usable is None else usable
    return max(1, cpus + 1 + (-1 if n_jobs is None else n_jobs))


def thread_limits(
    n_workers: int, cpus: int, *, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return env vars capping each worker's native thread pools so workers × threads ≤ cpus.

    A count the user set (in ``environ``, default ``os.environ``) is kept when it fits,
    lowered when it does not, and never raised.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1; got {n_workers!r}")
    env = os.environ if environ is None else environ
    per_worker = max(1, cpus // n_workers)
    limits = {}
    for name in THREAD_LIMIT_VARIABLES:
        chosen = _positive_int(env.get(name))
        limits[name] = str(per_worker if chosen is None else min(chosen, per_worker))
    return limits


def _env_n_jobs(value: str) -> int:
    """Parse ``$PARAFACTORY_N_JOBS``, which must be a positive integer."""
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{N_JOBS_VARIABLE} must be a positive integer; got {value!r}")
    return count


def _affinity_count() -> int:
    """Return how many CPUs the affinity mask allows, or the machine's count without one."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0))
        except OSError:
            pass
    return os.cpu_count() or 1


def _slurm_limit(environ: Mapping[str, str]) -> int | None:
    """Return the CPUs Slurm gave this task, or None outside a Slurm job."""
    for name in _SLURM_VARIABLES:
        value = environ.get(name)
        count = _positive_int(value.split(",")[0].split("(")[0] if value else None)
        if count is not None:
            return count
    return None


def _cgroup_limit(proc_root: Path) -> int | None:
    """Return the tightest cgroup v1/v2 CPU quota on this process, or None if unlimited."""
    text = _read_text(proc_root / "proc/self/cgroup")
    if text is None:
        return None
    cgroup_root = proc_root / "sys/fs/cgroup"
    limits: list[int | None] = []
    for controllers, path in _cgroup_entries(text):
        if controllers == "":
            limits.extend(_v2_limit(d / "cpu.max") for d in _ancestors(cgroup_root, path))
        elif "cpu" in controllers.split(","):
            limits.extend(_v1_limit(cgroup_root / c, path) for c in _V1_CONTROLLER_DIRS)
    return min((limit for limit in limits if limit is not None), default=None)


def _cgroup_entries(text: str) -> Iterator[tuple[str, str]]:
    """Yield (controllers, path) from ``/proc/self/cgroup`` lines, skipping garbled ones."""
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) == 3 and parts[2].startswith("/"):
            yield parts[1], parts[2]


def _ancestors(cgroup_root: Path, path: str) -> Iterator[Path]:
    """Yield the cgroup directory for ``path``, then each parent up to ``cgroup_root``."""
    parts = _relative_parts(path)
    for depth in range(len(parts), -1, -1):
        yield cgroup_root.joinpath(*parts[:depth])


def _relative_parts(path: str) -> list[str]:
    """Split an absolute cgroup path into components, dropping any that could escape."""
    return [p for p in PurePosixPath(path).parts[1:] if p not in (".", "..")]


def _v2_limit(cpu_max: Path) -> int | None:
    """Return the CPUs a cgroup v2 ``cpu.max`` file allows, or None if unlimited/unreadable."""
    text = _read_text(cpu_max)
    fields = text.split() if text is not None else []
    if len(fields) != 2:
        return None
    return _quota_cpus(fields[0], fields[1])


def _v1_limit(mount: Path, path: str) -> int | None:
    """Return the CPUs a cgroup v1 CFS quota allows, or None if unlimited/unreadable."""
    directory = mount.joinpath(*_relative_parts(path))
    if not directory.is_dir():
        directory = mount  # Containers mount their own cgroup at the controller root.
    quota = _read_text(directory / "cpu.cfs_quota_us")
    period = _read_text(directory / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    return _quota_cpus(quota.strip(), period.strip())


def _quota_cpus(quota: str, period: str) -> int | None:
    """Return ceil(quota / period), at least 1, or None for "max", -1 or garbage."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.ceil(quota_us / period_us))


def _positive_int(value: str | None) -> int | None:
    """Return ``value`` as a positive int, or None if missing or not one."""
    try:
        count = int(value) if value is not None else 0
    except ValueError:
        return None
    return count if count > 0 else None


def _read_text(path: Path) -> str | None:
    """Return a file's text, or None if it is missing, unreadable or not text."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
