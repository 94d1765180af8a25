"""Logs: log records and prints from stages in workers reach the parent's console and the
run's log file, tagged ``[record name]``; live with loky, by the record's end with dask
(issue 3, item 8)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

import pytest

from helpers import SCRIPTS, run_script
from proc_stages import Job, chatty

SCRIPT = SCRIPTS / "proc_logs.py"


def logged_pid(text, name):
    """The worker pid in ``[name] logged by name in pid N``, or None if absent."""
    match = re.search(rf"\[{name}\] logged by {name} in pid (\d+)", text)
    return int(match[1]) if match else None


def test_loky_worker_logs_and_prints_reach_console_and_log_file(tmp_path):
    completed = run_script(SCRIPT, tmp_path)
    parent = int((tmp_path / "parent.pid").read_text())
    console = completed.stderr.splitlines()
    log_file = Path((tmp_path / "log_path.txt").read_text()).read_text()
    for name in ["r0", "r1"]:
        worker = logged_pid(completed.stderr, name)
        assert worker is not None and worker != parent, completed.stderr  # ran in a worker
        assert f"[INFO] [{name}] logged by {name} in pid {worker}" in console
        assert f"[INFO] [{name}] printed by {name}" in console
        assert re.search(
            rf"\[INFO\] proc_stages: \[{name}\] logged by {name} in pid {worker}$",
            log_file,
            re.MULTILINE,
        ), log_file
        assert re.search(
            rf"\[INFO\] parafactory\.print: \[{name}\] printed by {name}$", log_file, re.MULTILINE
        ), log_file
    assert "printed by r0" not in completed.stdout


def run_in_thread(manager, jobs, **options):
    """Start ``manager.map(jobs, [chatty], ...)`` in a thread; returns (thread, outcome)."""
    outcome = {}

    def target():
        try:
            outcome["records"] = manager.map(jobs, [chatty], progress=False, **options)
        except BaseException as error:  # the test reports it
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_text(path, texts, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if all(text in content for text in texts):
            return content
        time.sleep(0.02)
    raise AssertionError(f"{texts} not in the log file after {seconds} s:\n{content}")


def check_run_ended(thread, outcome, names):
    thread.join(60)
    assert not thread.is_alive(), "the run did not end"
    assert "error" not in outcome, outcome.get("error")
    assert [record.state for record in outcome["records"]] == [{"said": name} for name in names]


@pytest.mark.timeout(90)
def test_loky_logs_arrive_while_the_stage_runs(make_manager, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = [Job(name=f"live{i}", seconds=2.0, marker_dir=str(markers)) for i in range(2)]
    with make_manager("live_logs") as manager:
        thread, outcome = run_in_thread(manager, jobs, n_jobs=2, backend="loky")
        expected = ["[live0] logged by live0 in pid", "[live0] printed by live0"]
        content = wait_for_text(manager.log_path, expected, 30)
        # The stage logs, then sleeps 2 s: its log lines are here before it ends.
        assert not (markers / "live0.ended").exists()
        check_run_ended(thread, outcome, ["live0", "live1"])
    worker = logged_pid(content, "live0")
    assert worker is not None and worker != os.getpid()
    messages = {(r.name, r.getMessage()) for r in caplog.records}
    assert ("proc_stages", f"[live0] logged by live0 in pid {worker}") in messages
    assert ("parafactory.print", "[live1] printed by live1") in messages


@pytest.mark.timeout(90)
def test_dask_logs_arrive_when_the_record_ends(make_manager, tmp_path, caplog, dask_client):
    caplog.set_level(logging.INFO)
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs = [
        Job(name="quick", seconds=0.0, marker_dir=str(markers)),
        Job(name="slow", seconds=3.0, marker_dir=str(markers)),
    ]
    with make_manager("dask_logs") as manager:
        thread, outcome = run_in_thread(manager, jobs, backend="dask", client=dask_client)
        expected = ["[quick] logged by quick in pid", "[quick] printed by quick"]
        wait_for_text(manager.log_path, expected, 30)
        # The quick record's lines came with its result, before the slow record ended.
        assert not (markers / "slow.ended").exists()
        check_run_ended(thread, outcome, ["quick", "slow"])
        content = manager.log_path.read_text()
    for name in ["quick", "slow"]:
        worker = logged_pid(content, name)
        assert worker is not None and worker != os.getpid()
        assert f"parafactory.print: [{name}] printed by {name}" in content
    messages = {(r.name, r.getMessage()) for r in caplog.records}
    assert ("parafactory.print", "[slow] printed by slow") in messages
    assert (
        "proc_stages",
        f"[slow] logged by slow in pid {logged_pid(content, 'slow')}",
    ) in messages
