"""Run numbers: each run of an experiment name gets the next number, kept on disk."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

STORE_FILE = "store.json"


def next_run_number(runs_dir: Path, name: str, *, dry: bool) -> int:
    """Claim the next run number for ``name`` (1, 2, ...); ``dry`` only peeks."""
    store_path = runs_dir / STORE_FILE
    if dry:
        return _read(store_path).get(name, 0) + 1
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / ".store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs started at once get distinct numbers
        numbers = _read(store_path)
        numbers[name] = numbers.get(name, 0) + 1
        temporary = store_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(numbers, indent=2, sort_keys=True))
        os.replace(temporary, store_path)
    return numbers[name]


def _read(store_path: Path) -> dict[str, int]:
    try:
        numbers: dict[str, int] = json.loads(store_path.read_text())
    except FileNotFoundError:
        return {}
    return numbers
