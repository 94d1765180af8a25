"""Large numpy results come back from loky workers memory-mapped, through a temporary
directory that is removed when the run ends."""

from __future__ import annotations

import contextlib
import glob
import mmap
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from cache_stages import BIG_ELEMENTS, Sweep, arrays, big_then_fail, executions, manager_for
from helpers import SCRIPTS, start_script
from parafactory import StageFailedError

pytestmark = pytest.mark.timeout(60)


def spill_dirs(pid: int | None = None) -> set[str]:
    """The spill directories of process ``pid`` (this one by default), wherever they were made."""
    pattern = f"parafactory-{pid or os.getpid()}-*"
    places = ["/dev/shm", tempfile.gettempdir()]
    return {d for place in places for d in glob.glob(os.path.join(place, pattern))}


def is_memory_mapped(array: np.ndarray) -> bool:
    if isinstance(array, np.memmap):
        return True
    base = array.base
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def test_large_arrays_arrive_memory_mapped_and_small_ones_in_memory(tmp_path):
    before = spill_dirs()
    params = [Sweep(name=f"r{i}", value=i) for i in range(3)]

    records = manager_for(tmp_path).map(params, [arrays], n_jobs=2, progress=False)

    for value, record in enumerate(records):
        big, small = record.state["big"], record.state["small"]
        assert is_memory_mapped(big)
        assert big.shape == (BIG_ELEMENTS,) and big.dtype == np.float64
        assert big[0] == value and big[-1] == BIG_ELEMENTS - 1 + value
        np.testing.assert_array_equal(big, np.arange(BIG_ELEMENTS, dtype=np.float64) + value)
        assert type(small) is np.ndarray and not is_memory_mapped(small)
        np.testing.assert_array_equal(small, np.arange(10) + value)

    mapped_from = Path(records[0].state["big"].filename)
    assert not mapped_from.parent.exists()  # its directory went when the run ended
    assert spill_dirs() <= before


def test_memory_mapped_results_can_be_changed_without_touching_each_other(tmp_path):
    params = [Sweep(name=f"r{i}", value=i) for i in range(2)]
    records = manager_for(tmp_path).map(params, [arrays], n_jobs=2, progress=False)

    big = records[0].state["big"]
    big[:5] = -1.0  # copy-on-write: the parent may change what it got

    assert list(big[:6]) == [-1.0] * 5 + [5.0]
    assert records[1].state["big"][0] == 1.0


@pytest.mark.parametrize("errors", ["raise", "continue"])
def test_spill_directory_is_removed_when_the_run_fails(tmp_path, errors):
    before = spill_dirs()
    params = [Sweep(name=f"r{i}", value=i) for i in range(2)]
    manager = manager_for(tmp_path)

    if errors == "raise":
        with pytest.raises(StageFailedError, match="failing after"):
            manager.map(params, [big_then_fail], n_jobs=2, progress=False)
    else:
        manager.map(params, [big_then_fail], n_jobs=2, errors="continue", progress=False)
        assert manager.records[1].error is not None

    big = manager.records[0].state.get("big")
    if errors == "continue" or big is not None:
        assert is_memory_mapped(big)
        assert big[7] == 0.0
        assert not Path(big.filename).parent.exists()
    assert spill_dirs() <= before


SCRIPT = SCRIPTS / "proc_resume.py"


def test_spill_directory_is_removed_after_ctrl_c(tmp_path):
    """Ctrl-C in a terminal: SIGINT to the script's whole process group, mid-sweep."""
    options = ("--stage", "slow_big", "--records", "20", "--seconds", "0.2", "--n-jobs", "2")
    with open(tmp_path / "output.txt", "wb") as output:
        script = start_script(SCRIPT, tmp_path, *options, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(executions(tmp_path / "markers")) < 6 and script.poll() is None:
            assert time.monotonic() < deadline, "the sweep stalled"
            time.sleep(0.01)
        spilled = spill_dirs(script.pid)
        assert spilled, "no spill directory while large results were coming back"
        assert any(os.listdir(d) for d in spilled)
        os.killpg(script.pid, signal.SIGINT)
        script.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)
        script.wait(timeout=10)

    output_text = (tmp_path / "output.txt").read_text(errors="replace")
    assert script.returncode != 0, output_text
    assert "interrupted" in output_text or "KeyboardInterrupt" in output_text
    assert not any(os.path.exists(d) for d in spilled)
    assert spill_dirs(script.pid) == set()
