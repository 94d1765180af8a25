"""The files a run keeps beside its results: a read-only cache still serves a fully cached
sweep, a damaged run store does not stop a manager, and damaged worker status slots do
not stop a run.

Making a directory read-only for root (which ignores permissions) takes a read-only bind
mount; tests that need one are skipped where mounting is not permitted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import time

import pytest

from fault_stages import Fault, cached_double, cached_plus_one, damage_slots_then_die, started_pids
from parafactory import WorkerDiedError
from parafactory._backends.local import status as worker_status

pytestmark = pytest.mark.timeout(120)

STAGES = [cached_double, cached_plus_one]


# -- a read-only cache ------------------------------------------------------------------


@contextlib.contextmanager
def read_only(directory):
    """``directory`` made read-only, even for root, by a read-only bind mount onto itself."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command to make a read-only bind mount")
    path = str(directory)
    bound = subprocess.run(["mount", "--bind", path, path], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"bind mounts are not permitted here: {bound.stderr.strip()}")
    try:
        remount = ["mount", "-o", "remount,ro,bind", path]
        made = subprocess.run(remount, capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"read-only remounts are not permitted here: {made.stderr.strip()}")
        with pytest.raises(OSError):  # really read-only, for this (root) process too
            (directory / "probe").write_text("")
        yield
    finally:
        if subprocess.run(["umount", path]).returncode != 0:
            subprocess.run(["umount", "-l", path], check=True)  # busy: detach it anyway


def fill_cache(make_manager, markers, backend):
    """Run the sweep once, caching both stages; returns its parameter sets."""
    markers.mkdir()
    params = [Fault(name=f"r{i}", value=i, marker_dir=str(markers)) for i in range(4)]
    with make_manager("readonly") as manager:
        records = manager.map(params, STAGES, progress=False, **backend)
    assert all(record.error is None for record in records)
    return params


def executions(markers, params):
    return sum(len(started_pids(markers, p.name)) for p in params)


def rerun_read_only(make_manager, tmp_path, params, backend, caplog):
    """Rerun the sweep with the cache read-only; returns the warnings it logged."""
    cache_dir = tmp_path / "data" / "cache"
    listing = sorted(path.name for path in cache_dir.iterdir())
    caplog.clear()
    with read_only(cache_dir), caplog.at_level(logging.WARNING):
        with make_manager("readonly") as manager:
            records = manager.map(params, STAGES, progress=False, **backend)
            values = [(record.state["doubled"], record.state["plus_one"]) for record in records]
    assert all(record.error is None for record in records)
    assert values == [(2 * p.value, 2 * p.value + 1) for p in params]
    assert sorted(path.name for path in cache_dir.iterdir()) == listing  # nothing written
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_fully_cached_sweep_runs_from_a_read_only_cache(make_manager, tmp_path, caplog):
    markers = tmp_path / "markers"
    params = fill_cache(make_manager, markers, {"n_jobs": 1})
    computed = executions(markers, params)
    assert computed == 2 * len(params)

    warnings = rerun_read_only(make_manager, tmp_path, params, {"n_jobs": 1}, caplog)
    assert executions(markers, params) == computed, "a cached stage computed again"
    assert warnings == []  # the registry already held these parameter sets


def test_a_read_only_cache_whose_registry_lacks_the_sweep_warns_once(
    make_manager, tmp_path, caplog, backend
):
    markers = tmp_path / "markers"
    params = fill_cache(make_manager, markers, backend)
    computed = executions(markers, params)
    registry = tmp_path / "data" / "cache" / "params_registry.json"
    registry.unlink()

    warnings = rerun_read_only(make_manager, tmp_path, params, backend, caplog)
    assert executions(markers, params) == computed, "a cached stage computed again"
    assert len(warnings) == 1, warnings
    assert "registry" in warnings[0] and "not updated" in warnings[0]
    assert str(registry) in warnings[0]
    assert not registry.exists()


# -- a damaged run store -----------------------------------------------------------------

DAMAGED = {
    "garbage": b"\x00\xff\xfe not json at all",
    "truncated": b'{"parallel": 4, "oth',
    "a list": b"[1, 2, 3]",
    "a string number": b'{"parallel": "4"}',
    "a float": b'{"parallel": 2.5, "other": 7}',
    "null": b"null",
}


def store_warnings(caplog, store):
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and str(store) in r.getMessage()
    ]


def damaged_store(root, content: bytes):
    """``data/runs/store.json`` under ``root``, holding ``content``."""
    runs = root / "data" / "runs"
    runs.mkdir(parents=True)
    store = runs / "store.json"
    store.write_bytes(content)
    return store


@pytest.mark.parametrize("content", list(DAMAGED.values()), ids=list(DAMAGED))
def test_a_damaged_run_store_is_set_aside_and_numbering_starts_again(
    make_manager, tmp_path, caplog, content
):
    store = damaged_store(tmp_path, content)

    with caplog.at_level(logging.WARNING):
        first = make_manager("parallel")
    assert first.run_number == 1
    warnings = store_warnings(caplog, store)
    assert len(warnings) == 1, caplog.text
    assert "damaged" in warnings[0] and "store.json.damaged" in warnings[0]
    assert (store.parent / "store.json.damaged").read_bytes() == content
    assert json.loads(store.read_text()) == {"parallel": 1}

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        second = make_manager("parallel")
    assert second.run_number == 2
    assert store_warnings(caplog, store) == []
    assert first.log_path != second.log_path


@pytest.mark.parametrize("content", [DAMAGED["garbage"], DAMAGED["a float"]], ids=["bytes", "json"])
def test_a_dry_manager_only_warns_about_a_damaged_run_store(
    make_manager, tmp_path, caplog, content
):
    store = damaged_store(tmp_path, content)

    with caplog.at_level(logging.WARNING):
        dry = make_manager("parallel", dry=True)
    assert dry.run_number == 1
    warnings = store_warnings(caplog, store)
    assert len(warnings) == 1 and "damaged" in warnings[0], caplog.text
    assert store.read_bytes() == content  # left as it was
    assert sorted(path.name for path in store.parent.iterdir()) == ["store.json"]


# -- damaged status slots ----------------------------------------------------------------


def dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("content", [b"", b"\x01\x02\x03", b"\x00" * 16], ids=["empty", "3", "16"])
def test_status_slots_that_are_empty_or_short_are_unknown(tmp_path, content):
    live, gone = os.getpid(), dead_pid()
    (tmp_path / f"{live}.status").write_bytes(content)
    (tmp_path / f"{gone}.status").write_bytes(content)
    assert worker_status.running_stages(str(tmp_path)) == []
    assert worker_status.running_steps(str(tmp_path)) == {}
    assert (tmp_path / f"{live}.status").exists()  # a live worker's slot stays
    assert not (tmp_path / f"{gone}.status").exists()  # a dead one's is read once, removed

    # Beside them, a whole slot is still read.
    whole = worker_status._SLOT.pack(7, 1, time.monotonic() - 3.0)
    (tmp_path / "1.status").write_bytes(whole)
    assert worker_status.running_steps(str(tmp_path)) == {7: 1}
    [running] = worker_status.running_stages(str(tmp_path))
    assert (running.pid, running.step_id, running.position) == (1, 7, 1)
    assert running.seconds >= 3.0


def test_a_run_whose_scratch_holds_damaged_slots_survives_a_killed_worker(make_manager, tmp_path):
    """The culprit leaves an empty and a short slot file (named after live processes) in
    the scratch directory, then SIGKILLs its worker. With a time limit set, the parent
    reads every slot at each poll too. Only the culprit fails."""
    markers = tmp_path / "markers"
    markers.mkdir()
    where = str(markers)
    params = [
        Fault(name="sleeper", action="sleep", seconds=1.0, value=1, marker_dir=where),
        Fault(name="culprit", action="die", marker_dir=where),
        *[Fault(name=f"quick{i}", value=i, marker_dir=where) for i in range(4)],
    ]
    with make_manager("damaged_slots") as manager:
        started = time.monotonic()
        records = manager.map(
            params,
            [damage_slots_then_die],
            n_jobs=2,
            backend="loky",
            errors="continue",
            progress=False,
            timeout=60,
        )
        assert time.monotonic() - started < 60
    by_name = {record.name: record for record in records}
    culprit = by_name.pop("culprit")
    assert isinstance(culprit.error, WorkerDiedError)
    assert "SIGKILL" in str(culprit.error)
    assert 1 <= len(started_pids(markers, "culprit")) <= 2
    for name, record in by_name.items():
        assert record.error is None, (name, record.error)
        assert isinstance(record.state["pid"], int)
