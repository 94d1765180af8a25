"""Which stage each local worker is running, kept where the parent can read it after a crash.

Each worker process writes ``(step id, stage position)`` into a 16-byte
memory-mapped slot file in the run's scratch directory as it starts a stage,
and ``-1`` when its chain ends: a memory write, no message. When a worker
dies, the parent reads the slots to learn which records were running.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

_SLOT = struct.Struct("qq")
_IDLE = -1
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
    _SLOT.pack_into(_slot_in(directory), 0, step_id, position)


def mark_idle(directory: str) -> None:
    """In a worker: this process finished its chain."""
    _SLOT.pack_into(_slot_in(directory), 0, _IDLE, 0)


def running_steps(directory: str) -> dict[int, int]:
    """In the parent: step id -> stage position, for every worker that was mid-chain.

    Slots of workers that no longer exist are read once, then removed.
    """
    running = {}
    for path in Path(directory).glob("*.status"):
        step_id, position = _SLOT.unpack(path.read_bytes()[: _SLOT.size])
        if step_id != _IDLE:
            running[step_id] = position
        if not _alive(int(path.stem)):
            path.unlink(missing_ok=True)
    return running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _slot_in(directory: str) -> mmap.mmap:
    global _slot
    if _slot is None or _slot[0] != directory:
        if _slot is not None:
            _slot[1].close()
        path = os.path.join(directory, f"{os.getpid()}.status")
        with open(path, "wb+") as file:
            file.write(_SLOT.pack(_IDLE, 0))
            file.flush()
            _slot = (directory, mmap.mmap(file.fileno(), _SLOT.size))
    return _slot[1]
