"""A sweep as a new user writes it: parameters and stages in the script itself
(``__main__``, so they travel to the loky workers by value), which log as they go.

Usage: python console_demo.py OUT_DIR MODE

MODE ``continue`` or ``raise``: records r0, r3, r6 and r9 of twelve fail in stage
``second`` (with ``errors=MODE``); ``ok``: none fails. Stage outputs are cached in OUT_DIR,
so running ``ok`` again loads everything from the cache. The run's log file path goes to
``OUT_DIR/log_path.txt``.
"""

import dataclasses
import logging
import sys
import time
from pathlib import Path

from parafactory import ArtifactManager, ExperimentParameters, PickleCacher, stage

log = logging.getLogger("console_demo")


@dataclasses.dataclass
class Point(ExperimentParameters):
    x: int = 0
    fail: bool = False


def check(value, fail):
    if fail and value % 3 == 0:
        raise ValueError(f"no good: {value}")
    return value


@stage(outputs=["a"], cachers=[PickleCacher])
def first(record):
    log.info("first on %s", record.params.x)
    time.sleep(0.15)
    return record.params.x


@stage(inputs=["a"], outputs=["b"], cachers=[PickleCacher])
def second(record, a):
    log.info("second on %s", a)
    time.sleep(0.15)
    return 2 * check(a, record.params.fail)


def main(out: Path, mode: str) -> None:
    manager = ArtifactManager("console_demo", root=out)
    (out / "log_path.txt").write_text(str(manager.log_path))
    points = [Point(name=f"r{i}", x=i, fail=mode != "ok") for i in range(12)]
    manager.map(
        points, [first, second], n_jobs=2, errors="raise" if mode == "raise" else "continue"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
