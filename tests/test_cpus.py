"""Tests for parafactory._run.cpus: CPU counting from fake /proc and /sys trees, n_jobs, threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parafactory._run.cpus import (
    N_JOBS_VARIABLE,
    THREAD_LIMIT_VARIABLES,
    resolve_n_jobs,
    thread_limits,
    usable_cpu_count,
)

MANY = 64


@pytest.fixture(autouse=True)
def _many_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the machine has MANY CPUs, all in this process's affinity mask."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(MANY)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: MANY)


def write(root: Path, relative: str, text: str) -> None:
    """Write ``text`` to ``root/relative``, creating parent directories."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def count(root: Path, **environ: str) -> int:
    """Return usable_cpu_count() seen through the fake tree and environment."""
    return usable_cpu_count(proc_root=root, environ=environ)


def test_no_sources_means_affinity(tmp_path: Path) -> None:
    assert count(tmp_path) == MANY


def test_affinity_is_the_least(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "proc/self/cgroup", "0::/job\n")
    write(tmp_path, "sys/fs/cgroup/job/cpu.max", "800000 100000\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7})
    assert count(tmp_path, SLURM_CPUS_PER_TASK="16") == 3


def test_without_sched_getaffinity_uses_cpu_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert count(tmp_path) == 6


def test_cpu_count_none_means_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert count(tmp_path) == 1


# cgroup v2 and v1: the files of a fake tree, and the count they allow


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # cgroup v2
        pytest.param(
            {
                "proc/self/cgroup": "0::/user.slice/job\n",
                "sys/fs/cgroup/user.slice/job/cpu.max": "150000 100000\n",
            },
            2,
            id="v2_quota_rounds_up",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "0::/job\n",
                "sys/fs/cgroup/job/cpu.max": "1000 100000\n",
            },
            1,
            id="v2_small_quota_is_at_least_one",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "0::/job\n",
                "sys/fs/cgroup/job/cpu.max": "max 100000\n",
            },
            MANY,
            id="v2_max_is_no_limit",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "0::/outer/middle/inner\n",
                "sys/fs/cgroup/outer/middle/inner/cpu.max": "max 100000\n",
                "sys/fs/cgroup/outer/middle/cpu.max": "300000 100000\n",
                "sys/fs/cgroup/outer/cpu.max": "800000 100000\n",
            },
            3,
            id="v2_tighter_parent_wins",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "0::/outer/inner\n",
                "sys/fs/cgroup/outer/inner/cpu.max": "200000 100000\n",
                "sys/fs/cgroup/outer/cpu.max": "800000 100000\n",
            },
            2,
            id="v2_tighter_child_wins",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "0::/\n",
                "sys/fs/cgroup/cpu.max": "400000 100000\n",
            },
            4,
            id="v2_root_of_namespaced_container",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "0::/../../..\n",
                "cpu.max": "100000 100000\n",
            },
            MANY,
            id="v2_path_cannot_escape_cgroup_root",
        ),
        # cgroup v1
        pytest.param(
            {
                "proc/self/cgroup": "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            },
            3,
            id="v1_quota_over_period",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "5:cpu,cpuacct:/docker/abc\n",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1\n",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            },
            MANY,
            id="v1_quota_minus_one_is_no_limit",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "5:cpu,cpuacct:/docker/abc\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "400000\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            4,
            id="v1_falls_back_to_mount_root",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "2:cpuacct:/\n1:cpu:/slurm/job\n",
                "sys/fs/cgroup/cpu/slurm/job/cpu.cfs_quota_us": "50000\n",
                "sys/fs/cgroup/cpu/slurm/job/cpu.cfs_period_us": "100000\n",
            },
            1,
            id="v1_plain_cpu_controller_dir",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "2:cpuacct:/job\n",
                "sys/fs/cgroup/cpu/job/cpu.cfs_quota_us": "100000\n",
                "sys/fs/cgroup/cpu/job/cpu.cfs_period_us": "100000\n",
            },
            MANY,
            id="cpuacct_alone_is_not_cpu",
        ),
        pytest.param(
            {
                "proc/self/cgroup": "3:cpu,cpuacct:/a\n0::/a\n",
                "sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us": "600000\n",
                "sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us": "100000\n",
                "sys/fs/cgroup/a/cpu.max": "500000 100000\n",
            },
            5,
            id="hybrid_v1_and_v2_take_the_least",
        ),
    ],
)
def test_cgroup_limit(tmp_path: Path, files: dict[str, str], expected: int) -> None:
    for relative, text in files.items():
        write(tmp_path, relative, text)
    assert count(tmp_path) == expected


# Slurm


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"SLURM_CPUS_PER_TASK": "4", "SLURM_CPUS_ON_NODE": "32"}, 4, id="slurm_cpus_per_task"
        ),
        pytest.param({"SLURM_CPUS_ON_NODE": "12"}, 12, id="slurm_cpus_on_node"),
        pytest.param(
            {"SLURM_CPUS_PER_TASK": "lots", "SLURM_CPUS_ON_NODE": "12"},
            12,
            id="slurm_garbled_per_task_falls_back_to_on_node",
        ),
        pytest.param({"SLURM_JOB_CPUS_PER_NODE": "6"}, 6, id="slurm_job_cpus_per_node"),
        pytest.param(
            {"SLURM_JOB_CPUS_PER_NODE": "6(x2),4"}, 6, id="slurm_job_cpus_per_node_several"
        ),
        pytest.param(
            {"SLURM_CPUS_ON_NODE": "12", "SLURM_JOB_CPUS_PER_NODE": "24"},
            12,
            id="slurm_cpus_on_node_before_job_cpus_per_node",
        ),
    ],
)
def test_slurm_limit(tmp_path: Path, environ: dict[str, str], expected: int) -> None:
    assert count(tmp_path, **environ) == expected


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert usable_cpu_count(proc_root=tmp_path) == 5


# Garbage never crashes


@pytest.mark.parametrize(
    ("relative", "text"),
    [
        ("proc/self/cgroup", "not a cgroup file\n::\n0:\n"),
        ("sys/fs/cgroup/job/cpu.max", "banana\n"),
        ("sys/fs/cgroup/job/cpu.max", "150000 0\n"),
        ("sys/fs/cgroup/job/cpu.max", "1 2 3\n"),
        ("sys/fs/cgroup/job/cpu.max", ""),
        ("sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "lots\n"),
        ("sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "0\n"),
    ],
)
def test_garbled_files_are_ignored(tmp_path: Path, relative: str, text: str) -> None:
    write(tmp_path, "proc/self/cgroup", "0::/job\n4:cpu,cpuacct:/job\n")
    write(tmp_path, "sys/fs/cgroup/job/cpu.max", "max 100000\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n")
    write(tmp_path, relative, text)
    assert count(tmp_path, SLURM_CPUS_PER_TASK="-3", SLURM_CPUS_ON_NODE="") == MANY


def test_binary_and_directory_in_place_of_files(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_bytes(b"0::/job\n")
    (tmp_path / "sys/fs/cgroup/job/cpu.max").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/cpu.max").write_bytes(b"\xff\xfe\x00")
    assert count(tmp_path) == MANY


def test_real_machine_is_positive() -> None:
    assert usable_cpu_count() >= 1


# resolve_n_jobs


@pytest.mark.parametrize(
    ("n_jobs", "expected"),
    [(None, 8), (-1, 8), (-2, 7), (-8, 1), (-9, 1), (-100, 1), (1, 1), (3, 3), (100, 100)],
)
def test_resolve_n_jobs(n_jobs: int | None, expected: int) -> None:
    assert resolve_n_jobs(n_jobs, environ={}, usable=8) == expected


def test_resolve_uses_usable_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert resolve_n_jobs(None, environ={}) == 3
    assert resolve_n_jobs(-2, environ={"SLURM_CPUS_PER_TASK": "2"}) == 1


@pytest.mark.parametrize("n_jobs", [None, -1])
def test_env_override(n_jobs: int | None) -> None:
    assert resolve_n_jobs(n_jobs, environ={N_JOBS_VARIABLE: "5"}, usable=8) == 5


def test_env_override_does_not_apply_to_explicit_counts() -> None:
    environ = {N_JOBS_VARIABLE: "5"}
    assert resolve_n_jobs(2, environ=environ, usable=8) == 2
    assert resolve_n_jobs(-2, environ=environ, usable=8) == 7


def test_env_override_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(N_JOBS_VARIABLE, "6")
    assert resolve_n_jobs(None, usable=2) == 6


@pytest.mark.parametrize("value", ["0", "-1", "four", "", "2.5"])
def test_bad_env_override(value: str) -> None:
    with pytest.raises(ValueError, match=N_JOBS_VARIABLE) as info:
        resolve_n_jobs(None, environ={N_JOBS_VARIABLE: value}, usable=8)
    assert repr(value) in str(info.value)


def test_zero_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive int, -1 or None"):
        resolve_n_jobs(0, environ={}, usable=8)


@pytest.mark.parametrize("n_jobs", [True, False, 2.0, "4", [2]])
def test_non_int_is_rejected(n_jobs: object) -> None:
    with pytest.raises(TypeError, match="positive int, -1 or None"):
        resolve_n_jobs(n_jobs, environ={}, usable=8)  # type: ignore[arg-type]


# thread_limits


@pytest.mark.parametrize(
    ("n_workers", "cpus", "threads"),
    [(1, 8, "8"), (2, 8, "4"), (3, 8, "2"), (8, 8, "1"), (16, 8, "1"), (4, 1, "1")],
)
def test_thread_limits(n_workers: int, cpus: int, threads: str) -> None:
    limits = thread_limits(n_workers, cpus, environ={})
    assert limits == {name: threads for name in THREAD_LIMIT_VARIABLES}
    assert n_workers * int(threads) <= max(cpus, n_workers)


def test_thread_limit_variables() -> None:
    assert THREAD_LIMIT_VARIABLES == (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "BLIS_NUM_THREADS",
    )


@pytest.mark.parametrize(("users", "expected"), [("1", "1"), ("3", "3"), ("64", "4"), ("x", "4")])
def test_thread_limits_never_raise_a_count_the_user_set(users: str, expected: str) -> None:
    limits = thread_limits(2, 8, environ={"OMP_NUM_THREADS": users})
    assert limits["OMP_NUM_THREADS"] == expected
    assert limits["MKL_NUM_THREADS"] == "4"  # the user set no other


def test_loky_max_cpu_count_caps_usable_cpus(tmp_path: Path) -> None:
    assert count(tmp_path, LOKY_MAX_CPU_COUNT="3") == 3
    assert count(tmp_path, LOKY_MAX_CPU_COUNT="3", SLURM_CPUS_PER_TASK="2") == 2
    assert count(tmp_path, LOKY_MAX_CPU_COUNT="0") == MANY  # not a count: no limit


def test_n_jobs_none_follows_loky_max_cpu_count_and_slurm(tmp_path: Path) -> None:
    assert resolve_n_jobs(None, environ={"LOKY_MAX_CPU_COUNT": "3"}) == 3
    assert resolve_n_jobs(None, environ={"SLURM_JOB_CPUS_PER_NODE": "5"}) == 5


def test_thread_limits_rejects_no_workers() -> None:
    with pytest.raises(ValueError, match="n_workers"):
        thread_limits(0, 8)
