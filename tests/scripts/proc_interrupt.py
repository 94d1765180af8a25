"""Map 6 records on 2 loky workers: 2 finish at once, 4 sleep 60 s; wait to be interrupted.

Usage: python proc_interrupt.py OUT_DIR

Each record's stage writes its worker's pid to ``OUT_DIR/markers/{name}.pid``; the fast
ones then write ``{name}.done``. However the run ends, ``OUT_DIR/result.json`` gets
each record's name, state and error, and ``OUT_DIR/log_path.txt`` the run's log file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers, proc_stages

from helpers import note_run  # noqa: E402
from parafactory import ArtifactManager  # noqa: E402
from proc_stages import Job, hold  # noqa: E402


def main(out: Path) -> None:
    markers = out / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    where = str(markers)
    jobs = [Job(name=f"fast{i}", marker_dir=where) for i in range(2)]
    jobs += [Job(name=f"slow{i}", action="sleep", seconds=60, marker_dir=where) for i in range(4)]
    manager = ArtifactManager("interrupted", root=out)
    note_run(out, manager)
    try:
        manager.map(jobs, [hold], n_jobs=2, backend="loky", progress=False)
    finally:
        rows = [
            {
                "name": record.name,
                "state": record.state,
                "error": repr(record.error) if record.error is not None else None,
            }
            for record in manager.records
        ]
        (out / "result.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
