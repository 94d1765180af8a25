"""Map on 2 loky workers, wait for Ctrl-C while the pool is idle, then map again.

Usage: python proc_idle_interrupt.py OUT_DIR

As a notebook user interrupting some other cell does: the interrupt reaches the idle,
warm pool too. Writes ``OUT_DIR/ready`` once the first map is done, waits up to 30 s for
a KeyboardInterrupt, maps again, and writes ``OUT_DIR/result.json``: the worker pids of
each map and whether the interrupt arrived.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for proc_stages

from parafactory import ArtifactManager  # noqa: E402
from proc_stages import Job, hold  # noqa: E402


def worker_pids(manager: ArtifactManager, out: Path, label: str) -> list[int]:
    markers = out / label
    markers.mkdir()
    # Long enough that both workers take records, even if one starts late.
    jobs = [
        Job(name=f"{label}{i}", action="sleep", seconds=0.25, marker_dir=str(markers))
        for i in range(6)
    ]
    records = manager.map(jobs, [hold], n_jobs=2, backend="loky", progress=False)
    return sorted({record.state["pid"] for record in records})


def main(out: Path) -> None:
    manager = ArtifactManager("idle", root=out)
    first = worker_pids(manager, out, "first")
    (out / "ready").write_text("")
    try:
        time.sleep(30)
        interrupted = False
    except KeyboardInterrupt:
        interrupted = True
    second = worker_pids(manager, out, "second")
    result = {"first": first, "second": second, "interrupted": interrupted}
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
