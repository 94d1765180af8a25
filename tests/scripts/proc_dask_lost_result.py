"""A dask worker dies while sending a finished record's result; the record's re-run dies too.

Usage: python proc_dask_lost_result.py OUT_DIR

Runs ``manager.map`` on a ``LocalCluster`` of 2 worker processes over three healthy
records and one (``victim``) whose first run finishes but kills its worker when the
result is pickled to be sent back, and whose re-runs die at once. Writes
``OUT_DIR/result.json``: each record's name, error type and message, and state keys.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers, proc_stages

from helpers import start_dying_cluster  # noqa: E402
from parafactory import ArtifactManager  # noqa: E402
from proc_stages import Job, act  # noqa: E402


def main(out: Path) -> None:
    markers = out / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    jobs = [Job(name=f"ok{i}", value=i, marker_dir=str(markers)) for i in range(3)]
    jobs.insert(1, Job(name="victim", action="dies_when_sent", marker_dir=str(markers)))
    cluster, client = start_dying_cluster()
    manager = ArtifactManager("lost_result", dry=True)
    try:
        manager.map(jobs, [act], backend="dask", client=client, errors="continue", progress=False)
    finally:
        rows = [
            {
                "name": record.name,
                "error": type(record.error).__name__ if record.error is not None else None,
                "message": str(record.error) if record.error is not None else None,
                "state": sorted(record.state),
            }
            for record in manager.records
        ]
        written = out / "result.json.partial"
        written.write_text(json.dumps(rows))
        written.replace(out / "result.json")  # the test polls for it: whole or absent
        client.close()
        cluster.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
