"""Map 6 quick records on 2 loky workers and let the progress display write to stderr.

Usage: python proc_progress.py OUT_DIR PROGRESS [FAILING_RECORD]

PROGRESS is ``default`` (``progress=None``) or ``off`` (``progress=False``). With a
FAILING_RECORD name, that record's stage raises and the run uses ``errors="continue"``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for proc_stages

from parafactory import ArtifactManager  # noqa: E402
from proc_stages import Job, act  # noqa: E402


def main(out: Path, progress: str, failing: str | None) -> None:
    markers = out / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    jobs = [
        Job(
            name=f"r{i}",
            action="raise" if f"r{i}" == failing else "ok",
            value=i,
            marker_dir=str(markers),
        )
        for i in range(6)
    ]
    manager = ArtifactManager("progress_demo", dry=True)
    manager.map(
        jobs,
        [act],
        n_jobs=2,
        backend="loky",
        errors="continue" if failing else "raise",
        progress=None if progress == "default" else False,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
