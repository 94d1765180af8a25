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
_slot: tuple[str, mmap.mmap] | None = None  # (scratch directory, this process's slot)


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
