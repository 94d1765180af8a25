"""Map 2 records whose stage logs a line and prints a line, on 2 loky workers.

Usage: python proc_logs.py OUT_DIR

Writes the run's log file path to ``OUT_DIR/log_path.txt`` and this process's pid to
``OUT_DIR/parent.pid``; the parafactory console handler writes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for helpers, proc_stages

from helpers import note_run  # noqa: E402
from parafactory import ArtifactManager  # noqa: E402
from proc_stages import Job, chatty  # noqa: E402


def main(out: Path) -> None:
    manager = ArtifactManager("logs_demo", root=out)
    note_run(out, manager)
    jobs = [Job(name=f"r{i}", seconds=0.2) for i in range(2)]
    manager.map(jobs, [chatty], n_jobs=2, backend="loky", progress=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
