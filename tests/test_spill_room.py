"""Large results when shared memory is small: they travel through the result pipe instead of
a spill file, and every record still succeeds (``_transfer``: "when that filesystem has no
room for it, the value goes through the pipe").

``PARAFACTORY_SCRATCH_DIR`` (read by the parent as each run starts; loky workers get the
run's directory with their tasks) points the spill directory at a small tmpfs the test
mounts (as root), as small as a Docker container's default ``/dev/shm`` or smaller.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from parafactory import ArtifactManager, ExperimentParameters, stage

pytestmark = pytest.mark.timeout(90)

MiB = 1 << 20


@dataclasses.dataclass
class Sized(ExperimentParameters):
    value: int = 0
    mebibytes: float = 1.0


@stage(outputs=["big"])
def make_big(record):
    params = record.params
    elements = int(params.mebibytes * MiB) // 8
    return np.arange(elements, dtype=np.float64) + params.value


def expected(params: Sized) -> np.ndarray:
    return np.arange(int(params.mebibytes * MiB) // 8, dtype=np.float64) + params.value


def is_memory_mapped(array: np.ndarray) -> bool:
    base = array
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


@pytest.fixture
def small_tmpfs(tmp_path):
    """An 8 MiB tmpfs mounted under ``tmp_path``, unmounted after the test."""
    mount_point = tmp_path / "shm"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (this test runs as a normal user)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def run_sweep(tmp_path: Path, params: list[Sized], n_jobs: int):
    manager = ArtifactManager("spill_room", root=tmp_path, dry=True, console_log=False)
    return manager.map(params, [make_big], n_jobs=n_jobs, backend="loky", progress=False)


def assert_all_right(records, params: list[Sized]) -> None:
    assert [record.name for record in records] == [p.name for p in params]
    for record in records:
        assert record.error is None, (record.name, record.error)
        np.testing.assert_array_equal(record.state["big"], expected(record.params))


@pytest.mark.parametrize(
    ("mebibytes", "n_jobs"),
    [(20, 2), (3.5, 3)],
    ids=["none-fits", "some-fit-then-full"],
)
def test_large_results_travel_through_the_pipe_when_shared_memory_is_full(
    tmp_path, monkeypatch, small_tmpfs, mebibytes, n_jobs
):
    # none-fits: each 20 MiB result is larger than the whole 8 MiB filesystem.
    # some-fit-then-full: 3.5 MiB results, 3 workers finishing together: the first ones
    # fit, the spilled files stay until the run ends, and the filesystem then has no room
    # (or runs out in the middle of a write when workers race for the last of it).
    monkeypatch.setenv("PARAFACTORY_SCRATCH_DIR", str(small_tmpfs))
    params = [Sized(name=f"r{i}", value=i, mebibytes=mebibytes) for i in range(8)]

    records = run_sweep(tmp_path, params, n_jobs)

    assert_all_right(records, params)
    mapped = [is_memory_mapped(record.state["big"]) for record in records]
    if mebibytes > 8:
        assert not any(mapped)  # all came through the pipe, as arrays in memory
    else:
        assert 0 < sum(mapped) < len(mapped)  # some spilled, then the pipe took the rest
    assert os.listdir(small_tmpfs) == []  # the run's directory went when the run ended


def test_with_room_large_results_arrive_memory_mapped_from_the_scratch_dir(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"  # a plain directory with plenty of room
    scratch.mkdir()
    monkeypatch.setenv("PARAFACTORY_SCRATCH_DIR", str(scratch))
    params = [Sized(name=f"r{i}", value=i, mebibytes=4) for i in range(4)]

    records = run_sweep(tmp_path, params, 2)

    assert_all_right(records, params)
    for record in records:
        big = record.state["big"]
        assert is_memory_mapped(big), record.name
        assert Path(big.filename).parent.parent == scratch  # scratch/parafactory-PID-*/
    assert os.listdir(scratch) == []  # the run's directory went when the run ended
