"""Signals sent to a whole process group, as a terminal or a batch system sends them: the
parent, its loky workers and loky's helper processes (resource trackers) all get them.

``scripts/proc_group_signals.py`` runs a cached sweep of 12 records that sleep 0.5 s on
2 loky workers. Once a couple of records are done, the test signals the script's process
group (the script leads its own session, so nothing reaches pytest) and reads stderr.
SIGTERM and SIGHUP must end the run with one warning line and exit status 128 + signal;
Ctrl-C (SIGINT) with the warning and the main program's KeyboardInterrupt traceback, and
nothing from loky's helper processes or threads. What finished is kept, in the parent and
in the cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import SCRIPTS, start_script

pytestmark = pytest.mark.timeout(60)

SCRIPT = SCRIPTS / "proc_group_signals.py"
RECORDS = 12
COUPLE_OF_SECONDS = 2.0  # DESIGN: Ctrl-C "stops within a couple of seconds"
# What nothing may print, whatever the signal: loky's resource trackers warning about
# leaked semaphores or dying, a KeyError from their bookkeeping, a worker's or a thread's
# traceback, an exception ignored at interpreter exit.
NOISE = ("resource_tracker", "KeyError", "LokyProcess", "Exception in thread", "Exception ignored")


def signal_group_mid_sweep(out: Path, signum: int) -> tuple[subprocess.Popen, str, float]:
    """Start the sweep, signal its process group once 2 records are done (and a random
    moment more), and wait for it; returns the process, its stderr and how many seconds
    the script took to end after the signal."""
    markers = out / "markers"
    process = start_script(SCRIPT, out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(list(markers.glob("*.done"))) < 2:
            assert process.poll() is None, f"the sweep ended early:\n{process.stderr.read()}"
            assert time.monotonic() < deadline, "the sweep did not get going"
            time.sleep(0.02)
        time.sleep(0.3 + random.uniform(0.0, 0.5))
        sent = time.monotonic()
        os.killpg(process.pid, signum)
        while process.poll() is None and time.monotonic() - sent < 20:
            time.sleep(0.01)
        took = time.monotonic() - sent
        # stderr ends when every process holding it ended: loky's helpers included.
        _, stderr = process.communicate(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    return process, stderr, took


def not_info(stderr: str) -> list[str]:
    """The lines of stderr other than parafactory's INFO log lines."""
    return [line for line in stderr.splitlines() if not line.startswith("[INFO] ")]


def assert_finished_records_kept(out: Path, finished: int) -> None:
    """The records the warning counts as finished have their states in the parent, right,
    and their entries in the cache; the others have no state and no error."""
    rows = json.loads((out / "result.json").read_text())
    assert len(rows) == RECORDS
    kept = {name: row["state"] for name, row in rows.items() if row["state"]}
    assert len(kept) == finished >= 1
    for name, state in kept.items():
        assert state == {"slept": int(name[1:]) * 10}, name
    assert all(row["error"] is None for row in rows.values())
    cached = {p.name for p in (out / "data" / "cache").glob("*_nap.meta.json")}
    hashes = {name: rows[name]["hash"] for name in kept}
    for name, record_hash in hashes.items():
        assert f"signals_{record_hash}_nap.meta.json" in cached, name


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_to_the_group_prints_one_line_and_exits_128_plus_signal(tmp_path, signum):
    process, stderr, _ = signal_group_mid_sweep(tmp_path, signum)
    name = signal.Signals(signum).name

    assert process.returncode == 128 + signum, stderr
    for noise in (*NOISE, "Traceback"):
        assert noise not in stderr
    lines = not_info(stderr)
    assert len(lines) == 1, stderr  # the warning, and nothing else
    found = re.fullmatch(
        rf"\[WARNING\] run interrupted by {name}: (\d+) of {RECORDS} records finished.*",
        lines[0],
    )
    assert found, lines[0]
    assert_finished_records_kept(tmp_path, int(found[1]))


def test_ctrl_c_to_the_group_stops_with_only_the_main_programs_traceback(tmp_path):
    process, stderr, took = signal_group_mid_sweep(tmp_path, signal.SIGINT)

    assert took <= COUPLE_OF_SECONDS, f"took {took:.2f} s to stop after Ctrl-C"
    # An uncaught KeyboardInterrupt ends CPython by SIGINT (so the shell sees Ctrl-C).
    assert process.returncode == -signal.SIGINT, stderr
    for noise in NOISE:
        assert noise not in stderr
    # stderr, INFO lines aside, is exactly: the warning line, then one traceback, the
    # main program's, from the script's top level down to KeyboardInterrupt, which is
    # the last line (nothing printed after it at exit by loky's threads or helper
    # processes). Frames of loky inside that traceback would be allowed: the interrupt
    # lands wherever the main thread is; no other traceback is.
    lines = not_info(stderr)
    found = re.fullmatch(
        rf"\[WARNING\] run interrupted by Ctrl-C: (\d+) of {RECORDS} records finished.*",
        lines[0],
    )
    assert found, stderr
    assert lines[1] == "Traceback (most recent call last):", stderr
    assert stderr.count("Traceback (most recent call last):") == 1, stderr
    assert "proc_group_signals.py" in lines[2] and "<module>" in lines[2], stderr
    assert lines[-1] == "KeyboardInterrupt", stderr
    assert all(line.startswith("  ") for line in lines[2:-1]), stderr  # frames only
    assert_finished_records_kept(tmp_path, int(found[1]))
