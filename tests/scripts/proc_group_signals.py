"""A cached sweep of 12 records that sleep 0.5 s each on 2 loky workers, to be signalled.

Usage: python proc_group_signals.py OUT_DIR

Each record's stage writes ``OUT_DIR/markers/{name}.done`` when it has slept. Logs go to
stderr as a user's script shows them (parafactory's console handler, INFO and up; no
progress display). However the run ends (SystemExit from SIGTERM/SIGHUP,
KeyboardInterrupt from Ctrl-C), ``OUT_DIR/result.json`` gets each record's name,
parameter hash, state and error before the exception goes on.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from parafactory import ArtifactManager, ExperimentParameters, PickleCacher, stage

RECORDS = 12
SECONDS = 0.5


@dataclasses.dataclass
class Nap(ExperimentParameters):
    value: int = 0
    marker_dir: str = ""


@stage(outputs=["slept"], cachers=[PickleCacher()])
def nap(record):
    params = record.params
    time.sleep(SECONDS)
    (Path(params.marker_dir) / f"{params.name}.done").write_text("")
    return params.value * 10


def main(out: Path) -> None:
    markers = out / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    params = [Nap(name=f"r{i:02d}", value=i, marker_dir=str(markers)) for i in range(RECORDS)]
    manager = ArtifactManager("signals", root=out)
    try:
        manager.map(params, [nap], n_jobs=2, backend="loky", progress=False)
    finally:
        rows = {
            record.name: {
                "hash": record.params.hash,
                "state": dict(record.state.items()),
                "error": repr(record.error) if record.error is not None else None,
            }
            for record in manager.records
        }
        (out / "result.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
