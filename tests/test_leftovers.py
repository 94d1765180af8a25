"""Nothing left behind: runs killed during large cached writes leave temporary files, spill
directories and semaphores, and the next run removes them (DESIGN: "the next run removes
what a dead run left in the cache directory or in shared memory"); a run that ends by
Ctrl-C or normally leaves none.

``scripts/proc_big_writes.py`` runs a sweep whose cached stage writes a 24 MiB array
per record, slowly; its results (numpy arrays over 1 MiB) also travel through the run's
spill directory in shared memory. Left behind, a dead run's files are named by pid:

* in the cache directory, temporary files (``.NAME.HOST-PID-XXXXXXXX.tmp.EXT``);
* in the scratch base (``/dev/shm``), ``parafactory-PID-*`` spill directories and loky's
  ``sem.loky-PID-*`` semaphores.

Other programs on this machine may be running (and dying) at the same time and leave
such entries of their own in ``/dev/shm``, so the checks there are limited to the pids
of the processes our scripts ran (each script's whole session, snapshotted while it ran).

``python tests/scripts/measure_kills.py leftovers 10`` does 10 kills by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import SCRIPTS, start_script
from parafactory import ArtifactManager
from parafactory._backends.local.scratch import scratch_base
from parafactory._leftovers import HOST
from proc_stages import PAUSE_SAVES, Job, report_with_pause

pytestmark = pytest.mark.timeout(120)

SCRIPT = SCRIPTS / "proc_big_writes.py"
RECORDS = 6
NAMED_BY_PID = re.compile(r"(?:parafactory|sem\.loky)-(?P<pid>\d+)-.*")
WRITER_PID = re.compile(r"\.[A-Za-z0-9_]+-(?P<pid>\d+)-[0-9a-f]{8}\.tmp")  # in a temporary name


def cache_dir(out: Path) -> Path:
    return out / "data" / "cache"


def temporary_files(out: Path) -> list[str]:
    """Temporary files in the cache directory and its staging folder, where they are made."""
    return sorted(p.name for p in cache_dir(out).rglob("*") if ".tmp" in p.name)


def shared_memory_entries(pids: set[int]) -> list[str]:
    """Spill directories and loky semaphores in the scratch base named by one of ``pids``."""
    found = []
    for name in os.listdir(scratch_base()):
        named = NAMED_BY_PID.fullmatch(name)
        if named and int(named["pid"]) in pids:
            found.append(name)
    return sorted(found)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def reaped(pid: int) -> bool:
    """Whether ``pid`` is gone from the process table (dead and reaped, not a zombie)."""
    return not os.path.exists(f"/proc/{pid}")


def session_pids(leader: int) -> set[int]:
    """The live processes of the process group ``leader`` leads (the script's session)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == leader:
                    found.add(int(entry.name))
    return found


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.02)


def start(out: Path) -> subprocess.Popen:
    with open(out / "output.txt", "ab") as output:  # the script appends to it
        return start_script(SCRIPT, out, str(RECORDS), stdout=output, stderr=subprocess.STDOUT)


def output_of(out: Path) -> str:
    return (out / "output.txt").read_text(errors="replace")


def wait_for_a_write(process: subprocess.Popen, out: Path) -> set[int]:
    """Until one of the script's processes is writing a cache file (temporary files that
    killed runs left do not count); returns the session's pids seen meanwhile."""
    pids: set[int] = set()

    def writing() -> bool:
        pids.update(session_pids(process.pid))
        assert process.poll() is None, f"the sweep ended before the kill:\n{output_of(out)}"
        writers = {int(found["pid"]) for found in map(WRITER_PID.search, temporary_files(out))}
        return bool(writers & pids)

    wait_for(writing, 60, "a cache write to start")
    pids.update(session_pids(process.pid))
    return pids


def end_session(process: subprocess.Popen, pids: set[int]) -> None:
    """Wait for every process of the script's session to end; SIGKILL stragglers after 5 s
    (workers must go within 2 s of their parent: test_parent_death checks that).

    Then wait until they are reaped too: orphaned workers are reaped by init, which here
    takes up to 2 s, and the library counts a zombie as a live process (see
    the tests of dead but unreaped processes below, which test that on its own).
    """
    process.wait(30)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not any(alive(pid) for pid in pids), 5, "the session to end")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in pids), 10, "the session to be killed")
    wait_for(lambda: all(reaped(pid) for pid in pids), 30, "init to reap the session")


def rerun(out: Path) -> int:
    """Run the sweep to its end on the same cache; returns the script's pid."""
    process = start(out)
    try:
        assert process.wait(90) == 0, output_of(out)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return process.pid


def assert_nothing_left(out: Path, pids: set[int]) -> None:
    assert not any(alive(pid) for pid in pids)
    assert temporary_files(out) == []
    assert shared_memory_entries(pids) == []


def assert_values_right(out: Path) -> None:
    result = json.loads((out / "result.json").read_text())
    assert result == {f"r{i}": True for i in range(RECORDS)}


def kill_at_random_then_rerun(out: Path, kills: int) -> list[str]:
    """SIGKILL the sweep ``kills`` times at random moments of its cache writes (the parent
    alone, or its whole process group, in turn), then rerun it to its end. Returns a
    report; raises AssertionError if anything was left behind or a value was wrong."""
    report, pids, left_by_kills = [], set(), []
    for kill in range(kills):
        process = start(out)
        try:
            pids |= wait_for_a_write(process, out)
            delay = random.uniform(0.0, 0.4)
            time.sleep(delay)
            pids |= session_pids(process.pid)
            assert process.poll() is None, "the sweep ended before the kill"
            # Its spill directory is there to be left behind (so are semaphores). It can
            # vanish later: any parafactory run on this machine removes those of dead runs.
            assert any(name.startswith("parafactory-") for name in shared_memory_entries(pids))
            whom = "parent" if kill % 2 == 0 else "group"
            if whom == "parent":
                os.kill(process.pid, signal.SIGKILL)
            else:
                os.killpg(process.pid, signal.SIGKILL)
        finally:
            end_session(process, pids | {process.pid})
        left = temporary_files(out) + shared_memory_entries(pids)
        left_by_kills.append(left)
        kinds = {kind: sum(kind in name for name in left) for kind in ("tmp", "parafactory", "sem")}
        report.append(f"kill {kill + 1} ({whom}, {delay:.2f} s into a write) left {kinds}")
    # The writers killed mid-write did leave temporary files, or this test would show nothing.
    assert any(any(".tmp" in name for name in left) for left in left_by_kills), left_by_kills

    pids.add(rerun(out))
    left = temporary_files(out) + shared_memory_entries(pids)
    report.append(f"after the rerun: {len(left)} left {left}")
    assert_nothing_left(out, pids)
    assert_values_right(out)
    report.append("rerun values right")
    return report


def test_what_killed_runs_leave_the_next_run_removes(tmp_path):
    kill_at_random_then_rerun(tmp_path, kills=3)


def test_ctrl_c_during_large_writes_leaves_nothing(tmp_path):
    process = start(tmp_path)
    try:
        pids = wait_for_a_write(process, tmp_path)
        time.sleep(random.uniform(0.0, 0.3))
        pids |= session_pids(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal sends Ctrl-C
        process.wait(30)
    finally:
        end_session(process, pids | {process.pid})
    assert process.returncode != 0, output_of(tmp_path)  # it was interrupted, not finished
    # The interrupted run cleans up after itself: the writers it killed left no temporary
    # file, its spill directory and semaphores are gone.
    assert_nothing_left(tmp_path, pids)

    pids.add(rerun(tmp_path))
    assert_nothing_left(tmp_path, pids)
    assert_values_right(tmp_path)


def test_a_run_that_finishes_leaves_nothing(tmp_path):
    pid = rerun(tmp_path)
    assert (tmp_path / "pids.txt").read_text().split() == [str(pid)]
    assert_nothing_left(tmp_path, {pid})
    assert_values_right(tmp_path)
    # and its cache is whole: the entries are there, under their final names only
    names = sorted(p.name for p in cache_dir(tmp_path).iterdir())
    assert len([n for n in names if n.endswith("_big_big.f8")]) == RECORDS
    assert len([n for n in names if n.endswith(".meta.json")]) == RECORDS


# A process that died stays in the process table as a zombie until its parent reaps it, or,
# for orphans such as the workers of a killed script, until init does: here init takes up
# to 2 s; in a container whose first process does not reap, forever. A zombie is a dead
# process: the next run must remove what it left, as it does once the zombie is reaped.


def test_temporary_files_of_dead_unreaped_writers_are_removed_by_the_next_run(tmp_path):
    # The sweep runs under scripts/late_reaper.py, which adopts its orphans and reaps them
    # only when told: the workers, killed mid-write with their parent, stay zombies.
    reaper = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "late_reaper.py"), sys.executable, str(SCRIPT)]
        + [str(tmp_path), str(RECORDS)],
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pids = wait_for_a_write(reaper, tmp_path)
        (sweep,) = map(int, (tmp_path / "pids.txt").read_text().split())
        os.kill(sweep, signal.SIGKILL)  # its workers die with it (test_parent_death)
        wait_for(lambda: not any(alive(pid) for pid in pids - {reaper.pid}), 10, "the deaths")
        writers = {int(WRITER_PID.search(name)["pid"]) for name in temporary_files(tmp_path)}
        assert writers and not any(reaped(pid) for pid in writers)  # dead, unreaped

        pids.add(rerun(tmp_path))
        left = temporary_files(tmp_path)
    finally:
        reaper.terminate()  # now it reaps them
        reaper.wait(10)
    assert left == [], "the next run left the temporary files of dead (zombie) writers"
    assert_values_right(tmp_path)


def test_shared_memory_of_a_dead_unreaped_run_is_removed_by_the_next_run(tmp_path):
    # The killed script is our child, kept unreaped while the sweep runs again; its spill
    # directory and loky's semaphores, named by its pid, are in shared memory.
    process = start(tmp_path)
    try:
        pids = wait_for_a_write(process, tmp_path)
        pids |= session_pids(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "the session to die")
        left = shared_memory_entries({process.pid})
        assert any(name.startswith("parafactory-") for name in left), left
        assert not reaped(process.pid)  # dead, not reaped yet: a zombie

        pids.add(rerun(tmp_path))
        left_after_rerun = shared_memory_entries(pids)
    finally:
        process.wait(10)
    assert left_after_rerun == [], "the next run left what a dead (zombie) run left"
    assert_values_right(tmp_path)


# A writer killed while it saves a stage's reportables, which the cache keeps in a folder
# of their own beside the entry's files (``{prefix}_{hash}_{stage}_reportables/``).

REPORTABLES_SCRIPT = SCRIPTS / "proc_reportable_writes.py"


def temporary_files_within(out: Path) -> list[Path]:
    """Temporary files in the cache directory and in every folder under it."""
    return sorted(cache_dir(out).rglob(".*.tmp*"))


@pytest.mark.parametrize("jobs", [1, 2])
def test_reportables_a_killed_writer_was_saving_are_removed_by_the_next_run(tmp_path, jobs):
    """The writer (the script with one job, its loky worker with two) is stopped while it
    pickles the reportables into their temporary file, and killed there with its run."""
    pause = tmp_path / "pause"
    pause.mkdir()
    environment = {**os.environ, PAUSE_SAVES: str(pause)}
    process = start_script(REPORTABLES_SCRIPT, tmp_path, str(jobs), env=environment)
    pids: set[int] = set()
    try:
        wait_for(lambda: any(pause.iterdir()) or process.poll() is not None, 60, "a save")
        assert process.poll() is None, "the sweep ended before the kill"
        pids = session_pids(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        end_session(process, pids | {process.pid})
    (writer,) = (int(path.name.split("-")[1]) for path in pause.iterdir())
    assert (writer == process.pid) == (jobs == 1)
    # the entry's output, saved, and its reportables, being saved, under temporary names
    left = temporary_files_within(tmp_path)
    assert {int(WRITER_PID.search(path.name)["pid"]) for path in left} == {writer}
    assert sorted(path.name.split(".")[1].rsplit("_")[-1] for path in left) == [
        "reportables",
        "reported",
    ]

    for run in ("next", "cached"):
        manager = ArtifactManager("paused", root=tmp_path, console_log=False)
        with manager:
            (record,) = manager.map([Job(name="r0", value=7)], [report_with_pause], n_jobs=jobs)
        assert temporary_files_within(tmp_path) == [], run
        assert [r.data["value"] for r in record.reportables] == [7], run


def test_a_live_writers_temporary_reportables_file_is_kept(tmp_path):
    """Named by a process that is alive (this one), the file may be being written."""
    staging = cache_dir(tmp_path) / ".staging"
    staging.mkdir(parents=True)
    live = staging / f".reportables.{HOST}-{os.getpid()}-0123abcd.tmp.pkl"
    live.write_bytes(b"half")
    with ArtifactManager("paused", root=tmp_path, console_log=False) as manager:
        manager.map([Job(name="r0", value=7)], [report_with_pause], n_jobs=1)
    assert live.read_bytes() == b"half"
