"""Map records on 2 loky workers that stay busy (or idle) until the script is killed.

Usage: python proc_gil.py OUT_DIR SCENARIO

SCENARIO ``c_call``: two records, each in ``sum(range(10**11))``, a C call that holds the
GIL for minutes and never checks for signals, so no Python code of its worker runs.
SCENARIO ``idle``: one record that sleeps for a minute; the pool's other worker never
receives a task.

Each record's stage writes its worker's pid to ``OUT_DIR/markers/{name}.started`` just
before it starts its long call. The test kills this script with SIGKILL.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from parafactory import ArtifactManager, ExperimentParameters, stage


@dataclasses.dataclass
class Long(ExperimentParameters):
    how: str = "c_call"  # c_call or sleep
    marker_dir: str = ""


@stage(outputs=["pid"])
def long_call(record):
    params = record.params
    (Path(params.marker_dir) / f"{params.name}.started").write_text(str(os.getpid()))
    if params.how == "c_call":
        sum(range(10**11))  # minutes in one C call, holding the GIL
    else:
        time.sleep(60)
    return os.getpid()


SCENARIOS = {"c_call": ["c_call", "c_call"], "idle": ["sleep"]}


def main(out: Path, scenario: str) -> None:
    markers = out / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    params = [
        Long(name=f"long{i}", how=how, marker_dir=str(markers))
        for i, how in enumerate(SCENARIOS[scenario])
    ]
    manager = ArtifactManager("parent_death", dry=True, console_log=False)
    manager.map(params, [long_call], n_jobs=2, backend="loky", progress=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
