"""The worker side of the worker count: native thread caps seen in loky workers, and
``PARAFACTORY_N_JOBS`` deciding how many workers a run with ``n_jobs=None`` uses."""

import dataclasses
import os
import time

import pytest

import parafactory._run.cpus as cpus
from parafactory import ExperimentParameters, stage
from parafactory._run.cpus import usable_cpu_count

CAPPED = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclasses.dataclass
class Params(ExperimentParameters):
    x: int = 0


@stage(outputs=["threads", "pid"])
def report_threads(record):
    time.sleep(0.05)  # long enough that every worker of the pool takes records
    return {name: os.environ.get(name) for name in CAPPED}, os.getpid()


@pytest.fixture
def manager(make_manager, monkeypatch):
    for name in (*cpus.THREAD_LIMIT_VARIABLES, cpus.N_JOBS_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    return make_manager("threads")


def run(manager, count=6, **options):
    param_sets = [Params(name=f"r{i}", x=i) for i in range(count)]
    records = manager.map(param_sets, [report_threads], progress=False, **options)
    assert [r.error for r in records] == [None] * count
    return records


def thread_caps(records):
    """The one thread count every capped variable had in every worker."""
    values = {value for r in records for value in r.state["threads"].values()}
    assert None not in values, f"a thread pool variable was not set in a worker: {values}"
    assert len(values) == 1, values
    return int(values.pop())


def test_two_workers_times_threads_fit_usable_cpus(manager):
    records = run(manager, n_jobs=2)
    pids = {r.state["pid"] for r in records}
    assert os.getpid() not in pids and len(pids) <= 2
    threads = thread_caps(records)
    usable = usable_cpu_count()
    assert threads >= 1
    if usable >= 2:
        assert 2 * threads <= usable
    assert threads == max(1, usable // 2)  # and no smaller than it has to be


def test_one_loky_worker_may_use_every_usable_cpu(manager):
    records = run(manager, n_jobs=1, backend="loky")
    assert len({r.state["pid"] for r in records} - {os.getpid()}) == 1
    assert thread_caps(records) == usable_cpu_count()


def test_thread_caps_follow_a_faked_slurm_allocation(manager, monkeypatch):
    # 64 CPUs in the affinity mask, no cgroup quota, but Slurm gave this task 8.
    monkeypatch.setattr(cpus, "_affinity_count", lambda: 64)
    monkeypatch.setattr(cpus, "_cgroup_limit", lambda proc_root: None)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert usable_cpu_count() == 8
    records = run(manager, n_jobs=2)
    assert thread_caps(records) == 4  # 2 workers x 4 threads = 8 CPUs


def test_user_thread_setting_in_parent_does_not_oversubscribe(manager, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    records = run(manager, n_jobs=2)
    assert thread_caps(records) == max(1, usable_cpu_count() // 2)


def test_a_thread_count_the_user_set_is_never_raised(manager, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    records = run(manager, count=2, n_jobs=1, backend="loky")  # one worker: room for more
    assert {r.state["threads"]["OMP_NUM_THREADS"] for r in records} == {"1"}
    others = {r.state["threads"]["MKL_NUM_THREADS"] for r in records}
    assert others == {str(usable_cpu_count())}


@pytest.mark.parametrize("n_jobs", [None, -1])
def test_parafactory_n_jobs_1_runs_in_process(manager, monkeypatch, n_jobs):
    # resolve_n_jobs gives 1, and open_backend runs one worker with no backend named
    # in the parent's own process (no pool), so every stage runs in this process.
    monkeypatch.setenv("PARAFACTORY_N_JOBS", "1")
    records = run(manager, n_jobs=n_jobs)
    assert {r.state["pid"] for r in records} == {os.getpid()}


def test_parafactory_n_jobs_1_with_loky_uses_one_worker_process(manager, monkeypatch):
    monkeypatch.setenv("PARAFACTORY_N_JOBS", "1")
    records = run(manager, n_jobs=None, backend="loky")
    pids = {r.state["pid"] for r in records}
    assert len(pids) == 1 and os.getpid() not in pids
    assert thread_caps(records) == usable_cpu_count()


def test_parafactory_n_jobs_sets_the_worker_count_and_caps(manager, monkeypatch):
    monkeypatch.setenv("PARAFACTORY_N_JOBS", "2")
    records = run(manager, count=8, n_jobs=None)
    pids = {r.state["pid"] for r in records}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert thread_caps(records) == max(1, usable_cpu_count() // 2)
