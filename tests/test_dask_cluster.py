"""dask clusters as their users run them: workers with several threads, live logs, workers
that join or die mid-run, files the workers must share, and a cluster of real separate
processes (``dask scheduler`` and ``dask worker``) in their own working directories."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from cluster_stages import Item, cached_square, chatty, waits_for_go, where
from parafactory import SharedFilesError, WorkerDiedError
from proc_stages import Job, act, read_runs

distributed = pytest.importorskip("distributed")

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def local_cluster(workers: int, threads: int, **options):
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        **options,
    )
    return cluster, distributed.Client(cluster, set_as_default=False)


@pytest.fixture
def cluster_of(request):
    """``cluster_of(workers, threads)``: a LocalCluster and its client, closed after."""
    opened = []

    def make(workers: int, threads: int, **options):
        cluster, client = local_cluster(workers, threads, **options)
        opened.append((cluster, client))
        return cluster, client

    yield make
    for cluster, client in opened:
        client.close()
        cluster.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("workers", "threads"), [(1, 4), (2, 2)])
def test_workers_with_several_threads_keep_every_line_with_its_own_record(
    make_manager, cluster_of, caplog, workers, threads
):
    _, client = cluster_of(workers, threads)
    items = [Item(name=f"r{i}", value=i, seconds=0.05, lines=3) for i in range(12)]
    with caplog.at_level(logging.INFO):
        with make_manager("threads") as manager:
            records = manager.map(items, [chatty], backend="dask", client=client, progress=False)
            log_file = manager.log_path
    assert [r.error for r in records] == [None] * 12
    assert [r.state["doubled"] for r in records] == [2 * i for i in range(12)]
    expected = Counter(
        f"[r{i}] {kind} r{i} line {line}"
        for i in range(12)
        for line in range(3)
        for kind in ("printed", "logged")
    )
    delivered = Counter(m for m in caplog.messages if m.startswith("[r"))
    assert delivered == expected  # each exactly once, with its own record's name
    in_file = Counter(re.findall(r"\[r\d+\] (?:printed|logged) r\d+ line \d", log_file.read_text()))
    assert in_file == expected


@pytest.mark.timeout(90)
def test_logs_from_a_dask_worker_arrive_while_the_stage_runs(make_manager, cluster_of, tmp_path):
    _, client = cluster_of(1, 1)

    class Go(logging.Handler):  # makes the file the stage waits for, once the line is here
        def emit(self, record):
            if "waiting for go" in record.getMessage():
                (tmp_path / "go").touch()

    handler = Go()
    logging.getLogger("cluster_stages").addHandler(handler)
    try:
        with make_manager("live") as manager:
            (record,) = manager.map(
                [Item(name="live", marker_dir=str(tmp_path))],
                [waits_for_go],
                backend="dask",
                client=client,
                progress=False,
            )
    finally:
        logging.getLogger("cluster_stages").removeHandler(handler)
    assert record.error is None
    assert record.state["saw_go"] is True  # the line came before the stage ended


@pytest.mark.timeout(120)
def test_workers_that_join_mid_run_get_work(make_manager, cluster_of):
    cluster, client = cluster_of(1, 1)
    items = [Item(name=f"r{i}", seconds=0.4) for i in range(16)]

    def grow():
        time.sleep(0.5)
        cluster.scale(3)

    grower = threading.Thread(target=grow)
    grower.start()
    try:
        with make_manager("elastic") as manager:
            records = manager.map(items, [where], backend="dask", client=client, progress=False)
    finally:
        grower.join()
    assert [r.error for r in records] == [None] * 16
    assert len({r.state["ran_in"] for r in records}) >= 2  # the late workers took some


@pytest.mark.timeout(120)
def test_a_stage_that_kills_its_dask_worker_fails_after_two_deaths(
    make_manager, cluster_of, tmp_path, caplog
):
    _, client = cluster_of(3, 1)  # dask's own default: a task may kill 3 workers
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = [Job(name=f"ok{i}", value=i, seconds=0.2, marker_dir=str(markers)) for i in range(4)]
    jobs.append(Job(name="culprit", action="exit13", seconds=0.3, marker_dir=str(markers)))
    with make_manager("killer") as manager:
        records = manager.map(
            jobs, [act], backend="dask", client=client, errors="continue", progress=False
        )
    by_name = {record.name: record for record in records}
    culprit = by_name.pop("culprit")
    assert isinstance(culprit.error, WorkerDiedError)
    assert (culprit.error.record_name, culprit.error.stage_name) == ("culprit", "act")
    assert "died" in str(culprit.error)
    assert len(read_runs(markers, "culprit")) == 2  # retried once; not dask's 4 times ours
    assert re.search(r"dask worker tcp://\S+ died", caplog.text)  # named by its address
    for name, record in by_name.items():
        assert record.error is None, name
        assert record.state == {"result": record.params.value * 10}, name


@pytest.mark.timeout(90)
def test_workers_that_cannot_see_the_cache_stop_the_run_saying_how_to_fix_it(
    make_manager, cluster_of, tmp_path, monkeypatch
):
    import parafactory._backends.dask as dask_backend

    made = dask_backend._visible_marker

    def unseen(setup):  # as if the workers were on machines without this directory
        marker = made(setup)
        marker.unlink()
        return marker

    monkeypatch.setattr(dask_backend, "_visible_marker", unseen)
    _, client = cluster_of(1, 1)
    items = [Item(name=f"r{i}", marker_dir=str(tmp_path)) for i in range(4)]
    with make_manager("unshared") as manager, pytest.raises(SharedFilesError) as caught:
        manager.map(items, [cached_square], backend="dask", client=client, progress=False)
    message = str(caught.value)
    assert "cannot see" in message and "root" in message and "absolute" in message
    assert not list(tmp_path.glob("r*.*"))  # no stage ran


@pytest.mark.timeout(90)
def test_a_client_executor_runs_as_the_dask_backend(make_manager, dask_client):
    items = [Item(name=f"r{i}", seconds=0.05) for i in range(6)]
    with make_manager("executor") as manager:
        records = manager.map(items, [where], backend=dask_client.get_executor(), progress=False)
    assert [r.error for r in records] == [None] * 6
    assert os.getpid() not in {int(r.state["ran_in"].split(":")[1]) for r in records}


# -- a cluster of real, separate processes ---------------------------------------------


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
    with open(log, "wb") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def process_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on loopback, each in a working
    directory of its own; yields a client. Every process is stopped after the test."""
    dask = [sys.executable, "-m", "distributed.cli.dask_{}"]
    scheduler_file = tmp_path / "scheduler.json"
    processes = []
    try:
        (tmp_path / "scheduler").mkdir()
        processes.append(
            start(
                [
                    *dask[:2],
                    dask[2].format("scheduler"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--dashboard-address",
                    ":0",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                tmp_path / "scheduler",
                tmp_path / "scheduler.log",
            )
        )
        deadline = time.monotonic() + 30
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for name in ("worker1", "worker2"):
            (tmp_path / name).mkdir()
            processes.append(
                start(
                    [
                        *dask[:2],
                        dask[2].format("worker"),
                        "--scheduler-file",
                        str(scheduler_file),
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--dashboard-address",
                        ":0",
                    ],
                    tmp_path / name,
                    tmp_path / f"{name}.log",
                )
            )
        client = distributed.Client(scheduler_file=str(scheduler_file), timeout=30)
        client.wait_for_workers(2, timeout=30)
        yield client
        client.close()
    finally:
        for process in reversed(processes):
            stop(process)


@pytest.mark.timeout(150)
def test_a_cached_sweep_twice_on_separate_scheduler_and_worker_processes(
    process_cluster, tmp_path, monkeypatch
):
    from parafactory import ArtifactManager

    driver = tmp_path / "driver"
    markers = tmp_path / "markers"
    driver.mkdir()
    markers.mkdir()
    monkeypatch.chdir(driver)  # the default root ".": this directory, not the workers'
    items = [Item(name=f"r{i}", value=i, marker_dir=str(markers)) for i in range(8)]
    for run in range(2):
        with ArtifactManager("separate", console_log=False) as manager:
            records = manager.map(
                items, [cached_square], backend="dask", client=process_cluster, progress=False
            )
        assert [r.error for r in records] == [None] * 8, run
        assert [r.state["squared"] for r in records] == [i * i for i in range(8)]
    executions = list(markers.iterdir())
    assert len(executions) == 8  # the second run computed nothing
    worked_in = {path.read_text() for path in executions}
    assert worked_in <= {str(tmp_path / "worker1"), str(tmp_path / "worker2")}
    assert len(list((driver / "data" / "cache").glob("separate_*_cached_square_squared.pkl"))) == 8
    for name in ("worker1", "worker2", "scheduler"):
        assert not (tmp_path / name / "data").exists(), name
