"""A sweep of one record whose cached stage reports a reporter that pauses as it is saved.

Usage: PARAFACTORY_TEST_PAUSE_SAVES=DIR python proc_reportable_writes.py OUT_DIR N_JOBS

The process saving the stage's reportables (this one with N_JOBS 1, a loky worker with
2) touches ``DIR/saving-PID`` and sleeps, its temporary file open in the entry's
``_reportables/`` folder, for the test to kill it there. The cache is ``OUT_DIR/data/cache``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for proc_stages

from parafactory import ArtifactManager  # noqa: E402
from proc_stages import Job, report_with_pause  # noqa: E402

if __name__ == "__main__":
    manager = ArtifactManager("paused", root=Path(sys.argv[1]), console_log=False)
    manager.map([Job(name="r0", value=7)], [report_with_pause], n_jobs=int(sys.argv[2]))
