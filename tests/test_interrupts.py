"""Interrupts: Ctrl-C, SIGTERM, SIGHUP and a killed parent (issue 3, item 5).

``scripts/proc_interrupt.py`` maps 6 records on 2 loky workers; 2 finish at once and 4
sleep for a minute. Once the fast ones are done, the test signals the script (started
in its own session, so nothing reaches pytest) and checks that it stops within 2 s,
leaves no worker behind and keeps the finished records' states.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import SCRIPTS, start_script
from proc_stages import Job, start_program

SCRIPT = SCRIPTS / "proc_interrupt.py"
FAST = ["fast0", "fast1"]
SLOW = ["slow0", "slow1", "slow2", "slow3"]


def alive(pid):
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not re.search(r"^State:\s+Z", status, re.MULTILINE)


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


class Sweep:
    """The script, running in ``tmp_path``; knows where its markers are."""

    def __init__(self, tmp_path):
        self.out = tmp_path
        self.markers = tmp_path / "markers"
        self.process = start_script(
            SCRIPT, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def wait_for_fast_records(self):
        """Until the fast records finished and two slow ones are running on the workers."""

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"script ended early:\n{self.process.communicate()[1]}")
            done = all((self.markers / f"{name}.done").exists() for name in FAST)
            running = sum((self.markers / f"{name}.pid").exists() for name in SLOW)
            return done and running == 2

        wait_until(ready, 30, "the fast records to finish")
        time.sleep(0.5)  # the parent collects the fast records' results

    def worker_pids(self):
        return {int(path.read_text()) for path in self.markers.glob("*.pid")}

    def results(self):
        rows = json.loads((self.out / "result.json").read_text())
        return {row["name"]: row for row in rows}

    def log_text(self):
        return Path((self.out / "log_path.txt").read_text()).read_text()

    def kill_session(self):
        """Kill whatever the script left in its session (its process group)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


@pytest.fixture
def sweep(tmp_path):
    started = Sweep(tmp_path)
    yield started
    started.kill_session()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("signum", "how", "to_group"),
    [
        (signal.SIGINT, "Ctrl-C", False),
        (signal.SIGINT, "Ctrl-C", True),  # as a terminal sends it: to every process of its group
        (signal.SIGTERM, "SIGTERM", False),
        (signal.SIGHUP, "SIGHUP", False),
    ],
    ids=["SIGINT", "SIGINT-to-group", "SIGTERM", "SIGHUP"],
)
def test_signal_stops_run_kills_workers_and_keeps_finished_records(sweep, signum, how, to_group):
    sweep.wait_for_fast_records()
    workers = sweep.worker_pids()
    parent = sweep.process.pid
    assert workers and parent not in workers
    assert all(alive(pid) for pid in workers)

    sent = time.monotonic()
    if to_group:
        os.killpg(parent, signum)  # the script leads its own session's process group
    else:
        sweep.process.send_signal(signum)
    try:
        _, stderr = sweep.process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the script was still running 10 s after {how}")
    stopped_after = time.monotonic() - sent
    assert stopped_after < 2.0, f"took {stopped_after:.2f} s to stop after {how}"

    # No worker process left (a second of grace for the kernel to tear them down).
    wait_until(lambda: not any(alive(pid) for pid in workers), 1.0, "the workers to exit")

    # Finished records kept their states; the others have none and no error.
    rows = sweep.results()
    assert sorted(rows) == sorted(FAST + SLOW)
    for name in FAST:
        assert rows[name]["state"] == {"pid": int((sweep.markers / f"{name}.pid").read_text())}
        assert rows[name]["error"] is None
    for name in SLOW:
        assert rows[name]["state"] == {}
        assert rows[name]["error"] is None

    line = f"run interrupted by {how}: 2 of 6 records finished"
    assert sweep.process.returncode != 0
    assert line in stderr
    assert line in sweep.log_text()
    if signum == signal.SIGINT:
        assert "KeyboardInterrupt" in stderr or sweep.process.returncode == -signal.SIGINT
        assert "LokyProcess" not in stderr  # workers leave Ctrl-C to the parent: no tracebacks
    else:
        assert sweep.process.returncode == 128 + signum
        assert "Traceback" not in stderr


@pytest.mark.timeout(60)
def test_workers_exit_when_the_parent_is_killed(sweep):
    sweep.wait_for_fast_records()
    workers = sweep.worker_pids()
    assert workers and all(alive(pid) for pid in workers)

    os.kill(sweep.process.pid, signal.SIGKILL)
    sweep.process.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in workers), 5.0, "orphaned workers to exit")


@pytest.mark.timeout(60)
def test_ctrl_c_while_the_pool_is_idle_leaves_the_warm_workers_alone(tmp_path):
    # A notebook user interrupting some other cell sends SIGINT to the kernel's process
    # group, warm workers included: they must neither die nor print tracebacks.
    process = start_script(
        SCRIPTS / "proc_idle_interrupt.py", tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: (tmp_path / "ready").exists() or process.poll() is not None, 30, "ready")
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["interrupted"] is True
    assert len(result["first"]) == 2
    assert set(result["second"]) <= set(result["first"])  # the same warm workers ran it
    assert "Traceback" not in stderr


def ignored_signals(pid):
    """The signals process ``pid`` ignores, from the SigIgn mask in /proc."""
    mask = int(re.search(r"^SigIgn:\s+(\w+)", Path(f"/proc/{pid}/status").read_text(), re.M)[1], 16)
    return {signum for signum in signal.Signals if mask >> (signum - 1) & 1}


def test_programs_a_stage_starts_still_stop_on_ctrl_c(manager):
    (record,) = manager.map([Job(name="starter")], [start_program], n_jobs=2, progress=False)
    program = record.state["program_pid"]
    try:
        assert record.state["worker_pid"] != os.getpid()  # it ran in a loky worker
        assert signal.SIGINT not in ignored_signals(program)
    finally:
        os.kill(program, signal.SIGKILL)
