"""A sweep whose cached stage writes a 24 MiB array per record, slowly, in 1 MiB chunks.

Usage: python proc_big_writes.py OUT_DIR [RECORDS]

Records ``r0, r1, ...`` (6 by default) run on 2 loky workers; record ``rI``'s array holds
the value I everywhere. Everything goes under OUT_DIR (the cache in ``data/cache``). The
script appends its pid to ``OUT_DIR/pids.txt`` as it starts and, when the sweep ends,
writes ``OUT_DIR/result.json``: for each record, whether its array is whole and right.
Running it again on the same OUT_DIR resumes from the cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from parafactory import ArtifactManager, Cacher, ExperimentParameters, stage

ELEMENTS = 3 * (1 << 20)  # float64: 24 MiB
CHUNK = 1 << 20
PAUSE = 0.01  # seconds between chunks: a write takes a quarter second or more


class SlowArrayCacher(Cacher):
    """Raw float64 bytes, written a chunk at a time with pauses (a slow disk)."""

    extension = "f8"

    def save(self, obj, path):
        data = memoryview(np.ascontiguousarray(obj, dtype=np.float64)).cast("B")
        with open(path, "wb") as file:
            for start in range(0, len(data), CHUNK):
                file.write(data[start : start + CHUNK])
                file.flush()
                time.sleep(PAUSE)

    def load(self, path):
        return np.fromfile(path, dtype=np.float64)


@dataclasses.dataclass
class Big(ExperimentParameters):
    value: int = 0


@stage(outputs=["big"], cachers=[SlowArrayCacher()])
def big(record):
    return np.full(ELEMENTS, float(record.params.value))


def main(out: Path, count: int) -> None:
    with open(out / "pids.txt", "a") as pids:
        pids.write(f"{os.getpid()}\n")
    params = [Big(name=f"r{i}", value=i) for i in range(count)]
    manager = ArtifactManager("leftovers", root=out, console_log=False)
    records = manager.map(params, [big], n_jobs=2, backend="loky", progress=False)
    result = {}
    for record in records:
        array = np.asarray(record.state["big"])
        whole = array.shape == (ELEMENTS,)
        result[record.name] = bool(whole and (array == record.params.value).all())
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 6)
