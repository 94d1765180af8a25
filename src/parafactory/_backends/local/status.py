"""Which stage each local worker is running, kept where the parent can read it after a crash.

Each worker process writes ``(step id, stage position, start time)`` into a
memory-mapped slot file in the run's scratch directory (named by its process
id) as it starts a stage, and ``-1`` when its chain ends: a memory write, no
message. When a worker dies, the parent reads the slots to learn which records
were running; while a run goes, it reads them to stop a stage past its time
limit.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path
from typing import NamedTuple

from ..._leftovers import process_alive

_SLOT = struct.Struct("qqd")  # step id, stage position, when it started (monotonic clock)
_IDLE = -1
RETIRED = -2  # the position a worker that retired itself leaves in its slot
_STOP_FILE = "stop"
_slot: tuple[str, mmap.mmap] | None = None  # (scratch directory, this process's slot)
_stop_flag: tuple[str, mmap.mmap] | None = None  # (scratch directory, the run's stop flag)


def create_stop_flag(directory: str) -> None:
    """In the parent, as the run starts: a one-byte flag its workers map, unset."""
    Path(directory, _STOP_FILE).write_bytes(b"\0")


def request_stop(directory: str) -> None:
    """In the parent: workers start no further chain of their current batch."""
    with open(os.path.join(directory, _STOP_FILE), "r+b") as flag:
        flag.write(b"\1")


def stop_requested(directory: str) -> bool:
    """In a worker: whether the parent asked to start no further chain (a memory read)."""
    global _stop_flag
    if _stop_flag is None or _stop_flag[0] != directory:
        if _stop_flag is not None:
            _stop_flag[1].close()
        with open(os.path.join(directory, _STOP_FILE), "rb") as flag:
            _stop_flag = (directory, mmap.mmap(flag.fileno(), 1, access=mmap.ACCESS_READ))
    return _stop_flag[1][0] == 1


def mark_running(directory: str, step_id: int, position: int) -> None:
    """In a worker: this process now runs stage ``position`` of step ``step_id``."""
    _SLOT.pack_into(_slot_in(directory), 0, step_id, position, time.monotonic())


def mark_retired(directory: str, step_id: int) -> None:
    """In a worker about to exit on purpose, handed ``step_id``: not that record's fault."""
    _SLOT.pack_into(_slot_in(directory), 0, step_id, RETIRED, 0.0)


def mark_idle(directory: str) -> None:
    """In a worker: this process finished its chain."""
    _SLOT.pack_into(_slot_in(directory), 0, _IDLE, 0, 0.0)


def running_steps(directory: str) -> dict[int, int]:
    """In the parent: step id -> stage position, for every worker that was mid-chain.

    Slots of workers that no longer exist are read once, then removed.
    """
    running = {}
    for path in Path(directory).glob("*.status"):
        slot = _read_slot(path)
        if slot is not None and slot.step_id != _IDLE:
            running[slot.step_id] = slot.position
        if not process_alive(int(path.stem)):
            path.unlink(missing_ok=True)
    return running


class Running(NamedTuple):
    """A stage a live worker is running."""

    pid: int
    step_id: int
    position: int
    seconds: float  # how long it has been running


def running_stages(directory: str) -> list[Running]:
    """In the parent: the stage each live worker runs now, and for how long."""
    now = time.monotonic()
    found = []
    for path in Path(directory).glob("*.status"):
        slot = _read_slot(path)
        if slot is not None and slot.step_id != _IDLE and slot.position >= 0:
            found.append(Running(int(path.stem), slot.step_id, slot.position, now - slot.started))
    return found


class _Slot(NamedTuple):
    step_id: int
    position: int
    started: float


def _read_slot(path: Path) -> _Slot | None:
    """A slot, or ``None`` when it cannot be read whole and steady (two reads that agree):
    then what that worker runs is unknown, and a lost batch's tasks are all suspects."""
    try:
        first, second = path.read_bytes(), path.read_bytes()
    except OSError:
        return None
    if len(first) < _SLOT.size or first != second:
        return None
    return _Slot(*_SLOT.unpack(first[: _SLOT.size]))


def _slot_in(directory: str) -> mmap.mmap:
    global _slot
    if _slot is None or _slot[0] != directory:
        if _slot is not None:
            _slot[1].close()
        path = os.path.join(directory, f"{os.getpid()}.status")
        temporary = f"{path}.new"
        with open(temporary, "wb+") as file:  # written whole, then renamed: never seen empty
            file.write(_SLOT.pack(_IDLE, 0, 0.0))
            file.flush()
            _slot = (directory, mmap.mmap(file.fileno(), _SLOT.size))
        os.replace(temporary, path)
    return _slot[1]
