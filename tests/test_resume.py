"""Resume: a sweep SIGKILLed halfway, rerun with the same command, computes only what is missing.

The sweep runs as a script (``scripts/proc_resume.py``) in its own process group, so
killing the group kills its loky workers too, as a batch system or a closed terminal
would. Each execution of the stage leaves a marker file as it starts.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from cache_stages import cache_dir_of, executions, manager_for, slow_square, sweep
from helpers import SCRIPTS, start_script
from parafactory._model.cache import Cache, Entry, Hit
from parafactory._model.parameters import parameter_set_hash

pytestmark = pytest.mark.timeout(90)

SCRIPT = SCRIPTS / "proc_resume.py"
RECORDS = 40
WORKERS = 2
SECONDS = 0.1


def start(directory: Path, *options: str) -> subprocess.Popen:
    directory.mkdir(parents=True, exist_ok=True)
    arguments = ("--records", str(RECORDS), "--n-jobs", str(WORKERS), *options)
    with open(directory / "output.txt", "ab") as output:
        return start_script(SCRIPT, directory, *arguments, stdout=output, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, directory: Path) -> None:
    try:
        process.wait(timeout=60)
    finally:
        kill_group(process)
    output = (directory / "output.txt").read_text(errors="replace")
    assert process.returncode == 0, output


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the script and every process it started (its own session), and wait for them."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes of the killed sweep are still alive"
        time.sleep(0.05)
    remove_leftovers(process.pid)


def remove_leftovers(pid: int) -> None:
    """What a SIGKILLed run cannot clean up: its spill directory and loky's semaphores."""
    places = ["/dev/shm", tempfile.gettempdir()]
    for place in places:
        for path in glob.glob(os.path.join(place, f"parafactory-{pid}-*")):
            shutil.rmtree(path, ignore_errors=True)
    for path in glob.glob(f"/dev/shm/sem.loky-{pid}-*"):
        with contextlib.suppress(OSError):
            os.unlink(path)


def wait_for_executions(markers: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while len(executions(markers)) < count:
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the sweep ended or stalled before {count} executions started")
        time.sleep(0.01)


def cached_records(directory: Path) -> set[str]:
    """Names of the records whose ``slow_square`` entry counts as cached."""
    cache = Cache(cache_dir_of(directory), prefix="resume")
    spec = slow_square.spec
    found = set()
    for params in sweep(directory / "markers", RECORDS, seconds=SECONDS):
        entry = Entry(
            spec.name,
            parameter_set_hash(params),
            spec.outputs,
            spec.cachers,
            spec.lazy,
            spec.fingerprint,
        )
        if isinstance(cache.lookup(entry, upstream=""), Hit):  # its first stage: no upstream
            found.add(params.name)
    return found


def test_killed_sweep_resumes_where_it_stopped(tmp_path):
    directory = tmp_path / "sweep"
    markers = directory / "markers"
    options = ("--seconds", str(SECONDS))

    interrupted = start(directory, *options)
    try:
        wait_for_executions(markers, RECORDS // 2, interrupted)
    finally:
        kill_group(interrupted)
    assert interrupted.returncode == -signal.SIGKILL

    first_run = collections.Counter(executions(markers))
    finished = cached_records(directory)
    assert 5 <= len(finished) <= RECORDS - 5, "the kill did not land mid-sweep"
    assert finished <= set(first_run)
    assert not (directory / "states.json").exists()

    finish(start(directory, *options), directory)

    second_run = collections.Counter(executions(markers)) - first_run
    every = {f"r{i:02d}" for i in range(RECORDS)}
    assert sorted(second_run.elements()) == sorted(every - finished)  # each missing one, once
    total = first_run + second_run
    assert set(total) == every
    assert sum(total.values()) <= RECORDS + 2 * WORKERS
    assert cached_records(directory) == every

    resumed_states = json.loads((directory / "states.json").read_text())
    assert resumed_states == uninterrupted_states(tmp_path / "reference")
    assert resumed_states["r07"] == {"square": 49, "info": {"name": "r07", "value": 7}}


def uninterrupted_states(directory: Path) -> dict:
    """The states the same sweep ends with when nothing interrupts it (run here, no pauses)."""
    records = manager_for(directory, "resume").map(
        sweep(directory / "markers", RECORDS), [slow_square], n_jobs=1, progress=False
    )
    assert len(executions(directory / "markers")) == RECORDS
    states = {record.name: dict(record.state.items()) for record in records}
    return json.loads(json.dumps(states))
