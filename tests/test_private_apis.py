"""Loud checks of what parafactory relies on beyond its dependencies' documented APIs.

Each private use sits in one small function that says why; these tests fail, naming
the dependency, the day a new version of it changes what that function relies on.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from loky import get_reusable_executor
from loky.process_executor import TerminatedWorkerError

from parafactory import _digests
from parafactory._backends.executor import pool_size
from parafactory._backends.local import pool as local_pool
from parafactory._model import time_limits


def test_cpython_md5_module_is_used_and_agrees_with_hashlib() -> None:
    """``_digests`` takes CPython's private ``_md5`` (faster for short texts)."""
    _md5 = pytest.importorskip("_md5", reason="this Python is built without _md5")
    assert _digests.md5 is _md5.md5
    for text in ("", "name'default'", "é" * 100):
        assert _digests.md5_hex(text) == hashlib.md5(text.encode()).hexdigest()


@pytest.mark.parametrize("pool_type", [ProcessPoolExecutor, ThreadPoolExecutor])
def test_standard_pools_still_say_their_size_in_max_workers(pool_type: type) -> None:
    """``pool_size`` reads the private ``_max_workers`` of concurrent.futures' pools."""
    with pool_type(max_workers=3) as pool:
        assert pool._max_workers == 3
        assert pool_size(pool, default=1) == 3


def _exit_with(code: int) -> None:
    os._exit(code)


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize(("task", "code"), [(_exit_with, 7), (_kill_self, -signal.SIGKILL)])
def test_loky_still_names_a_dead_workers_exit_code_in_its_message(task, code) -> None:
    """``exit_code`` parses "{SIGKILL(-9)}" from loky's ``TerminatedWorkerError`` text."""
    executor = get_reusable_executor(max_workers=1, reuse=False)
    args = (code,) if task is _exit_with else ()
    with pytest.raises(TerminatedWorkerError) as caught:
        executor.submit(task, *args).result(timeout=60)
    executor.shutdown(wait=True)
    assert local_pool.exit_code(caught.value) == code, str(caught.value)


def _blocked_signals(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk line for {pid}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_resource_trackers_start_with_hangup_blocked(tmp_path: Path) -> None:
    """``ensure_running`` (loky's and multiprocessing's resource trackers, undocumented)
    still starts the tracker from the calling thread, so it inherits the signal mask."""
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = {sys.path!r}
        from parafactory._backends.local import pool
        from loky.backend import resource_tracker as loky_tracker
        from multiprocessing import resource_tracker as mp_tracker
        pool._start_resource_trackers_deaf_to_hangup()
        print(loky_tracker._resource_tracker._pid, mp_tracker._resource_tracker._pid)
        sys.stdout.flush()
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        pids = [int(pid) for pid in child.stdout.readline().split()]
        assert len(pids) == 2, "the trackers' pids moved: update this test's lookup"
        for pid in pids:
            assert _blocked_signals(pid) & (1 << (signal.SIGHUP - 1)), pid
    finally:
        child.communicate(input="", timeout=30)


def test_async_exception_reaches_a_busy_thread() -> None:
    """Time limits raise in the stage's thread through ``PyThreadState_SetAsyncExc``."""
    outcome: list[str] = []

    def busy() -> None:
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pass
            outcome.append("ran out")
        except KeyboardInterrupt:
            outcome.append("interrupted")

    thread = threading.Thread(target=busy)
    thread.start()
    time.sleep(0.1)
    time_limits._raise_in(thread.ident, KeyboardInterrupt)
    thread.join(timeout=10)
    assert outcome == ["interrupted"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_kernel_kills_a_worker_whose_parent_died() -> None:
    """``prctl(PR_SET_PDEATHSIG)`` through ctypes: an orphaned worker dies at once."""
    grandchild = textwrap.dedent(
        f"""
        import sys, time
        sys.path[:0] = {sys.path!r}
        from parafactory._backends.local import lifetime
        assert lifetime._kernel_kills_orphans()
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    parent = textwrap.dedent(
        f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {grandchild!r}], stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"ready"
        print(child.pid, flush=True)
        sys.stdin.read()
        """
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    pid = int(middle.stdout.readline())
    middle.kill()
    middle.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), "the orphaned process outlived its parent"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"
