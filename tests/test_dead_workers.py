"""Dead workers: a stage that kills its process fails only its own record (issue 3, item 4).

The culprit is retried at most once, alone; records that were running on the other
worker when it died still complete; the run never hangs. Every execution of a stage
leaves lines in a marker file (see ``proc_stages.act``), so the tests count them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from helpers import SCRIPTS, start_dying_cluster, start_script
from parafactory import WorkerDiedError
from proc_stages import Job, act, double, read_runs

SLEEPER_SECONDS = 1.0
RUN_SECONDS_LIMIT = 40  # a healthy run takes a few seconds; a hang hits this
HANG_SECONDS = 15  # for a script that starts a dask cluster (~3 s) and runs a few seconds


def make_jobs(markers, culprit_action, quick=4):
    """A sleeper (in flight while the culprit dies), the culprit, then quick records."""
    markers.mkdir(exist_ok=True)
    where = str(markers)
    return [
        Job(name="sleeper", action="sleep", seconds=SLEEPER_SECONDS, value=1, marker_dir=where),
        Job(name="culprit", action=culprit_action, seconds=0.3, value=2, marker_dir=where),
        *[Job(name=f"quick{i}", action="ok", value=10 + i, marker_dir=where) for i in range(quick)],
    ]


def overlaps(run, start, stop):
    """Whether an execution ran at some moment of [start, stop]."""
    run_stop = run["stop"] if run["stop"] is not None else float("inf")
    return run["start"] <= stop and run_stop >= start


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("action", "how"),
    [
        ("exit13", ["exit code 13"]),
        ("sigkill", ["SIGKILL", "out-of-memory"]),
        ("segfault", ["SIGSEGV"]),
    ],
)
def test_dying_stage_fails_only_its_record(make_manager, tmp_path, action, how):
    markers = tmp_path / "markers"
    jobs = make_jobs(markers, action)
    with make_manager("dead_workers") as manager:
        started = time.monotonic()
        records = manager.map(
            jobs, [act, double], n_jobs=2, backend="loky", errors="continue", progress=False
        )
        elapsed = time.monotonic() - started
    assert elapsed < RUN_SECONDS_LIMIT

    by_name = {record.name: record for record in records}
    culprit = by_name.pop("culprit")

    # The culprit's record, and only it, failed, with a message that says how.
    assert isinstance(culprit.error, WorkerDiedError)
    message = str(culprit.error)
    assert "worker" in message and "died" in message
    for words in how:
        assert words in message
    assert culprit.error.record_name == "culprit"
    assert culprit.error.stage_name == "act"
    assert "doubled" not in culprit.state
    for name, record in by_name.items():
        assert record.error is None, name
        job = record.params
        assert record.state == {"result": job.value * 10, "doubled": job.value * 20}, name
        assert record.stages == ["act", "double"], name

    # Executions: the culprit ran once plus at most one retry, and the retry ran alone.
    culprit_runs = read_runs(markers, "culprit")
    assert 1 <= len(culprit_runs) <= 2
    assert all(run["how"] == "dying" for run in culprit_runs)
    others = {name: read_runs(markers, name) for name in by_name}
    for name, runs in others.items():
        assert runs and runs[-1]["how"] == "end", name
    if len(culprit_runs) == 2:
        retry = culprit_runs[1]
        for name, runs in others.items():
            for run in runs:
                assert not overlaps(run, retry["start"], retry["stop"]), (name, run, retry)

    # The sleeper really was in flight on the other worker when the culprit first died,
    # and still completed.
    first_death = culprit_runs[0]["stop"]
    sleeper_runs = others["sleeper"]
    assert any(
        run["start"] < first_death
        and (run["how"] == "lost" or run["stop"] > first_death)
        and run["pid"] != culprit_runs[0]["pid"]
        for run in sleeper_runs
    ), (sleeper_runs, culprit_runs)


@pytest.mark.timeout(90)
def test_dying_stage_with_errors_raise_raises_worker_died(make_manager, tmp_path):
    markers = tmp_path / "markers"
    jobs = make_jobs(markers, "exit13", quick=2)
    with make_manager("dead_workers") as manager:
        started = time.monotonic()
        with pytest.raises(WorkerDiedError, match="exit code 13") as caught:
            manager.map(jobs, [act], n_jobs=2, backend="loky", errors="raise", progress=False)
        assert time.monotonic() - started < RUN_SECONDS_LIMIT
    assert caught.value.record_name == "culprit"
    assert caught.value.stage_name == "act"
    culprit = next(record for record in manager.records if record.name == "culprit")
    assert culprit.error is caught.value
    assert 1 <= len(read_runs(markers, "culprit")) <= 2


@pytest.fixture(scope="module")
def dying_dask_client():
    """A cluster of its own: these tests kill its workers."""
    pytest.importorskip("dask")
    pytest.importorskip("distributed")
    cluster, client = start_dying_cluster()
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.mark.timeout(110)
def test_dask_worker_exit_fails_only_its_record(make_manager, tmp_path, dying_dask_client):
    markers = tmp_path / "markers"
    markers.mkdir()
    where = str(markers)
    jobs = [Job(name=f"quick{i}", value=i, marker_dir=where) for i in range(3)]
    jobs.append(Job(name="sleeper", action="sleep", seconds=1.5, value=7, marker_dir=where))
    # The culprit waits a little before each death, so that results of other records
    # are fetched before its worker dies (see the test below for when they are not).
    jobs.append(Job(name="culprit", action="exit13", seconds=0.3, value=99, marker_dir=where))
    with make_manager("dead_dask") as manager:
        started = time.monotonic()
        records = manager.map(
            jobs, [act], backend="dask", client=dying_dask_client, errors="continue", progress=False
        )
        assert time.monotonic() - started < 90
    by_name = {record.name: record for record in records}
    culprit = by_name.pop("culprit")
    assert isinstance(culprit.error, WorkerDiedError)
    assert "worker" in str(culprit.error) and "died" in str(culprit.error)
    assert culprit.error.record_name == "culprit"
    assert "result" not in culprit.state
    assert read_runs(markers, "culprit")
    for name, record in by_name.items():
        assert record.error is None, name
        assert record.state == {"result": record.params.value * 10}, name


@pytest.mark.timeout(60)
def test_dask_worker_dying_while_sending_a_result_does_not_hang(tmp_path):
    pytest.importorskip("distributed")
    script = SCRIPTS / "proc_dask_lost_result.py"
    process = start_script(script, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = tmp_path / "result.json"
    deadline = time.monotonic() + HANG_SECONDS
    try:  # the run's end is when it writes its result; tearing the cluster down is dask's
        while not result.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert result.exists(), f"the run hung: it had not ended {HANG_SECONDS} s after it started"
    rows = {row["name"]: row for row in json.loads((tmp_path / "result.json").read_text())}
    victim = rows.pop("victim")
    assert victim["error"] == "WorkerDiedError", victim
    assert "died" in victim["message"]
    for name, row in rows.items():
        assert row["error"] is None, row
        assert row["state"] == ["result"], name


@pytest.mark.timeout(60)
def test_a_users_process_pool_that_breaks_ends_the_run_with_clear_errors(
    make_manager, tmp_path, caplog
):
    jobs = make_jobs(tmp_path / "markers", "exit13", quick=2)
    with make_manager("users_pool") as manager, ProcessPoolExecutor(max_workers=2) as pool:
        records = manager.map(jobs, [act], backend=pool, errors="continue", progress=False)
    by_name = {record.name: record for record in records}
    assert isinstance(by_name["culprit"].error, WorkerDiedError)
    assert all(
        record.error is None or isinstance(record.error, WorkerDiedError) for record in records
    )
    assert "cannot restart a pool it does not own" in caplog.text
