"""Time limits: ``timeout=`` on ``map``/``run`` and on ``@stage`` stops a stage that runs
longer; its record fails with StageTimeoutError and the other records finish.

How a stage is stopped depends on where it runs. Python code is stopped from inside:
by SIGALRM in a process's main thread (in-process and in loky workers; this also breaks
a ``time.sleep``), by an asynchronous exception in a dask worker's thread (checked
between bytecodes, so a single long ``time.sleep`` there ends first). A stage stuck in a
C call that holds the GIL cannot be stopped from inside: a loky worker running one is
killed by the parent once the limit has passed by a grace of 2 s; in-process and on dask
such a stage runs to its end, so it is not tested there.

The stages are in ``fault_stages``; a stage that must be stopped would run 30 s.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fault_stages import (
    NEAR_LIMIT_SECONDS,
    Fault,
    lenient_experiment,
    near_and_instant,
    spin,
    spin_experiment,
    spin_for_one_second_at_most,
    started_pids,
)
from parafactory import StageFailedError, StageTimeoutError, stage
from parafactory._model.time_limits import call_with_time_limit

# pytest-timeout's default method takes SIGALRM for itself; parafactory then leaves it
# alone and cannot break a time.sleep in-process. The thread method leaves it free, as
# it is in a user's script.
pytestmark = pytest.mark.timeout(180, method="thread")

LIMIT = 1.0
KILL_GRACE = 2.0
RUN_SECONDS_LIMIT = 25  # far above a few limits, below one stage that is never stopped

# What Python code each backend can stop: a single long time.sleep in a dask worker's
# thread only ends when the sleep does. A C call that holds the GIL ("gil") cannot be
# stopped in-process (SIGALRM's handler only runs between bytecodes) nor on dask: only a
# loky worker stuck in one is stopped, by killing it (see the test below).
STOPPABLE = {
    "inprocess": ["loop", "sleep", "naps", "catch"],
    "loky": ["loop", "sleep", "naps", "catch"],
    "dask": ["loop", "naps", "catch"],
}


def backend_name(backend):
    if backend.get("backend") == "dask":
        return "dask"
    return "inprocess" if backend.get("n_jobs") == 1 and "backend" not in backend else "loky"


def slow_and_quick(markers: Path, slow_actions, quick=4):
    markers.mkdir(exist_ok=True)
    where = str(markers)
    slow = [
        Fault(name=f"slow_{action}", action=action, marker_dir=where) for action in slow_actions
    ]
    fast = [Fault(name=f"ok{i}", value=i, marker_dir=where) for i in range(quick)]
    return slow + fast


def assert_timed_out(record, stage_name, limit=LIMIT):
    error = record.error
    assert isinstance(error, StageTimeoutError), (record.name, repr(error))
    assert isinstance(error, StageFailedError)
    assert error.limit == limit
    assert (error.record_name, error.stage_name) == (record.name, stage_name)
    message = str(error)
    for part in [repr(record.name), repr(stage_name), f"{limit:g} s"]:
        assert part in message, message
    assert "pid" not in record.state
    assert record.stages == []


def assert_finished(records):
    for record in records:
        assert record.error is None, (record.name, record.error)
        assert isinstance(record.state["pid"], int)


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def test_a_stage_past_the_runs_timeout_fails_its_record_and_the_others_finish(
    manager, backend, tmp_path
):
    actions = STOPPABLE[backend_name(backend)]
    params = slow_and_quick(tmp_path / "markers", actions)
    records, elapsed = timed(
        manager.map, params, [spin], timeout=LIMIT, errors="continue", progress=False, **backend
    )
    assert elapsed < RUN_SECONDS_LIMIT, "a stage was not stopped at its limit"
    slow, fast = records[: len(actions)], records[len(actions) :]
    for record in slow:
        assert_timed_out(record, "spin")
        assert len(started_pids(tmp_path / "markers", record.name)) == 1  # not retried
    assert_finished(fast)


def test_errors_raise_raises_the_timeout(manager, backend, tmp_path):
    params = slow_and_quick(tmp_path / "markers", ["loop"], quick=2)
    started = time.monotonic()
    with pytest.raises(StageTimeoutError) as caught:
        manager.map(params, [spin], timeout=LIMIT, errors="raise", progress=False, **backend)
    assert time.monotonic() - started < RUN_SECONDS_LIMIT
    assert caught.value.record_name == "slow_loop"
    assert caught.value.limit == LIMIT
    slow = next(record for record in manager.records if record.name == "slow_loop")
    assert slow.error is caught.value
    assert_timed_out(slow, "spin")


def test_run_takes_a_timeout_too(manager, backend, tmp_path):
    params = slow_and_quick(tmp_path / "markers", ["naps"], quick=2)
    records = manager.run(
        spin_experiment, params, timeout=LIMIT, errors="continue", progress=False, **backend
    )
    assert_timed_out(records[0], "spin")
    assert_finished(records[1:])


@pytest.mark.parametrize(
    ("experiment", "run_timeout", "stage_name"),
    [
        (None, None, "spin_for_one_second_at_most"),  # the stage's own limit alone
        (None, 60, "spin_for_one_second_at_most"),  # the stage's own is the tighter
        (lenient_experiment, LIMIT, "spin_for_a_minute_at_most"),  # the run's is the tighter
    ],
    ids=["stage-only", "stage-tighter", "run-tighter"],
)
def test_the_tighter_of_the_runs_and_the_stages_own_limit_applies(
    manager, backend, tmp_path, experiment, run_timeout, stage_name
):
    params = slow_and_quick(tmp_path / "markers", ["loop"], quick=2)
    options = {"timeout": run_timeout, "errors": "continue", "progress": False, **backend}
    if experiment is None:
        stages = [spin_for_one_second_at_most]
        records, elapsed = timed(manager.map, params, stages, **options)
    else:
        records, elapsed = timed(manager.run, experiment, params, **options)
    assert elapsed < RUN_SECONDS_LIMIT
    assert_timed_out(records[0], stage_name, limit=LIMIT)
    assert_finished(records[1:])


def test_a_loky_worker_whose_stage_was_stopped_runs_the_next_records(manager, tmp_path):
    """Stopped from inside, the worker lives on: one worker runs every record."""
    params = slow_and_quick(tmp_path / "markers", ["loop", "sleep"], quick=3)
    records = manager.map(
        params, [spin], n_jobs=1, backend="loky", timeout=LIMIT, errors="continue", progress=False
    )
    assert_timed_out(records[0], "spin")
    assert_timed_out(records[1], "spin")
    assert_finished(records[2:])
    markers = tmp_path / "markers"
    pids = {pid for record in records for pid in started_pids(markers, record.name)}
    pids |= {record.state["pid"] for record in records[2:]}
    assert len(pids) == 1, pids


def test_dask_workers_whose_stage_was_stopped_run_the_next_records(manager, tmp_path, dask_client):
    workers_before = dask_client.run(os.getpid)
    params = slow_and_quick(tmp_path / "markers", ["loop", "naps"], quick=4)
    records, elapsed = timed(
        manager.map,
        params,
        [spin],
        backend="dask",
        client=dask_client,
        timeout=LIMIT,
        errors="continue",
        progress=False,
    )
    assert elapsed < RUN_SECONDS_LIMIT
    assert_timed_out(records[0], "spin")
    assert_timed_out(records[1], "spin")
    assert_finished(records[2:])
    assert dask_client.run(os.getpid) == workers_before, "a dask worker was restarted"
    assert {record.state["pid"] for record in records[2:]} <= set(workers_before.values())


def process_gone(pid, within=10.0):
    """Whether process ``pid`` is gone (or a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_a_loky_stage_stuck_in_a_c_call_gets_its_worker_killed(manager, tmp_path):
    """``sum(range(10**11))`` holds the GIL and never checks for signals: SIGALRM cannot
    stop it, so the parent kills its worker after the limit plus a grace of 2 s."""
    markers = tmp_path / "markers"
    params = slow_and_quick(markers, ["gil"], quick=8)
    records, elapsed = timed(
        manager.map,
        params,
        [spin],
        n_jobs=2,
        backend="loky",
        timeout=LIMIT,
        errors="continue",
        progress=False,
    )
    assert elapsed >= LIMIT + KILL_GRACE * 0.9, "the worker was killed before the grace ran out"
    assert elapsed < RUN_SECONDS_LIMIT + 15, "the stuck stage was not stopped"
    stuck = records[0]
    assert_timed_out(stuck, "spin")
    assert "killed" in str(stuck.error)
    assert_finished(records[1:])  # only that record failed
    started = started_pids(markers, "slow_gil")
    assert len(started) == 1, "a record stopped for its time limit must not be retried"
    assert process_gone(started[0]), "the stuck worker is still running"


@pytest.mark.parametrize("bad", [0, -1, "5"])
def test_invalid_timeouts_are_refused(manager, bad):
    params = [Fault(name="never")]
    with pytest.raises(ValueError, match="timeout"):
        manager.map(params, [spin], n_jobs=1, timeout=bad, progress=False)
    with pytest.raises(ValueError, match="timeout"):
        manager.run(spin_experiment, params, n_jobs=1, timeout=bad, progress=False)
    assert manager.records == []  # refused before anything was planned or ran

    with pytest.raises(ValueError, match="timeout"):

        @stage(inputs=None, outputs=["x"], timeout=bad)
        def limited(record):
            return 1


def test_stages_that_finish_in_time_are_unaffected(manager, backend):
    params = [Fault(name=f"ok{i:03d}", value=i) for i in range(100)]
    records = manager.map(params, [spin], timeout=5, progress=False, **backend)
    assert_finished(records)
    assert [record.stages for record in records] == [["spin"]] * 100


def test_no_stray_timeout_fires_after_stages_that_end_near_their_limit(manager, backend):
    """Stages ending just before, at or just after their 20 ms limit; records in between
    have no limit at all, so a timeout that fired late would fail one of them (or the run)."""
    params = []
    for i in range(160):
        if i % 2:
            params.append(Fault(name=f"q{i:03d}", action="instant", value=i))
        else:
            near = NEAR_LIMIT_SECONDS * (0.5 + (i % 7) / 6)  # 10 to 30 ms
            params.append(Fault(name=f"n{i:03d}", action="near", value=i, seconds=near))
    records = manager.run(near_and_instant, params, errors="continue", progress=False, **backend)

    near = [record for record in records if record.params.action == "near"]
    assert any(record.error is not None for record in near), "no stage reached its limit"
    assert any(record.error is None for record in near), "no stage ended before its limit"
    for record in records:
        if record.params.action == "instant":
            assert record.error is None, (record.name, repr(record.error))
            assert record.state == {"quick": record.params.value}
        elif record.error is not None:
            assert isinstance(record.error, StageTimeoutError), repr(record.error)
            assert record.error.limit == NEAR_LIMIT_SECONDS
        else:
            assert record.state == {"spent": record.params.value}

    # Nothing fires later either: here, and in the workers' next records.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
    again = [Fault(name=f"again{i:02d}", value=i) for i in range(40)]
    assert_finished(manager.map(again, [spin], progress=False, **backend))


def test_in_process_a_users_own_alarm_is_left_alone(manager, tmp_path):
    """With a SIGALRM handler and timer of the user's own, Python code is still stopped
    (another way) and the user's handler and timer are still in place afterwards."""
    calls = []

    def users_handler(signum, frame):
        calls.append(signum)

    previous = signal.signal(signal.SIGALRM, users_handler)
    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        params = slow_and_quick(tmp_path / "markers", ["loop"], quick=1)
        records, elapsed = timed(
            manager.map, params, [spin], n_jobs=1, timeout=LIMIT, errors="continue", progress=False
        )
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        handler = signal.getsignal(signal.SIGALRM)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert elapsed < RUN_SECONDS_LIMIT
    assert_timed_out(records[0], "spin")
    assert_finished(records[1:])
    assert 50 < remaining <= 100, "the user's timer was changed"
    assert handler is users_handler
    assert calls == []


def _busy(seconds: float) -> float:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


# A limit may also arrive in a garbage collector's callback that runs in the stage's
# thread (distributed installs one), where Python reports it as unraisable and drops it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("where", ["main thread", "other threads"])
def test_a_limit_running_out_as_its_stage_ends_is_a_timeout_or_nothing(where):
    """Thousands of 50 µs limits around bodies of 0 to 1.5 times as long, with Python
    switching threads every 10 µs: the limit often arrives in parafactory's own code just
    before or after the stage. Each call ends in its value or StageTimeoutError, never in
    another exception, and nothing is raised after the call returned."""
    limit = 50e-6
    outcomes = {"value": 0, "timeout": 0}
    others: list[BaseException] = []

    def calls(count: int) -> None:
        for i in range(count):
            try:
                try:
                    seconds = limit * (i % 4) / 2
                    assert call_with_time_limit(limit, "r", "near", _busy, seconds) == seconds
                    outcomes["value"] += 1
                except StageTimeoutError:
                    outcomes["timeout"] += 1
                _busy(2 * limit)  # where a stray exception would arrive
            except BaseException as error:  # noqa: BLE001 - the test's point
                others.append(error)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(10e-6)
    try:
        if where == "main thread":
            calls(4000)
        else:
            threads = [threading.Thread(target=calls, args=(2500,)) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert others == []
    assert outcomes["value"] > 0 and outcomes["timeout"] > 0, outcomes


@pytest.mark.parametrize("where", ["main thread", "other thread"])
def test_a_limited_stage_inside_another_is_stopped_by_its_own_limit(where):
    """Each limit stops the call it was set on: the inner call's error names the inner
    limit when that runs out first, and the outer's when the outer runs out first."""

    def outer(inner_limit: float) -> None:
        call_with_time_limit(inner_limit, "r", "inner", _busy, 30)

    def stopped_by(outer_limit: float, inner_limit: float) -> tuple[str, float]:
        with pytest.raises(StageTimeoutError) as stopped:
            call_with_time_limit(outer_limit, "r", "outer", outer, inner_limit)
        return stopped.value.stage_name, stopped.value.limit

    cases = [(2.0, 0.1), (0.1, 2.0)]
    if where == "main thread":
        found = [stopped_by(*case) for case in cases]
    else:
        with ThreadPoolExecutor(1) as pool:
            found = [pool.submit(stopped_by, *case).result() for case in cases]
    assert found == [("inner", 0.1), ("outer", 0.1)]
