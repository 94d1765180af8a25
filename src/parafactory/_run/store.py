"""Run numbers: each run of an experiment name gets the next number, kept on disk."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger("parafactory")

STORE_FILE = "store.json"


def next_run_number(runs_dir: Path, name: str, *, dry: bool) -> int:
    """Claim the next run number for ``name`` (1, 2, ...); ``dry`` only peeks."""
    store_path = runs_dir / STORE_FILE
    if dry:
        return _read(store_path, set_aside=False).get(name, 0) + 1
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / ".store.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs started at once get distinct numbers
        numbers = _read(store_path, set_aside=True)
        numbers[name] = numbers.get(name, 0) + 1
        temporary = store_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(numbers, indent=2, sort_keys=True))
        os.replace(temporary, store_path)
    return numbers[name]


def _read(store_path: Path, *, set_aside: bool) -> dict[str, int]:
    """The run numbers kept in ``store_path``. A damaged store is named in a warning and
    (unless ``set_aside`` is false, for a dry run) moved to ``store.json.damaged``, and
    numbering starts again at 1: logs and reports keep their timestamps, so nothing is
    overwritten."""
    try:
        numbers = json.loads(store_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        if isinstance(numbers, dict) and all(isinstance(n, int) for n in numbers.values()):
            return numbers
        problem = "it is not a map of experiment names to run numbers"
    aside = store_path.with_name(f"{store_path.name}.damaged")
    if set_aside:
        with contextlib.suppress(OSError):
            os.replace(store_path, aside)
    logger.warning(
        "the run store %s is damaged (%s)%s; run numbers start again from 1",
        store_path,
        problem,
        f"; it was moved to {aside}" if set_aside else "",
    )
    return {}
