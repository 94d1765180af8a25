"""Stages, parameters and cachers for the caching tests, importable by worker processes.

Loky workers (and ``spawn``ed multiprocessing children) import this module by name
(``cache_stages``): pytest puts ``tests/`` on ``sys.path`` and they inherit it; the
scripts under ``tests/scripts/`` add ``tests/`` to ``sys.path`` themselves.

Counting without shared memory, so it works in any process:

* every execution of a stage here writes one empty file ``{stage}__{record}__{uuid}``
  into ``params.marker_dir`` (:func:`executions` counts them);
* :class:`CountingCacher` writes one empty file ``{artifact file}__{uuid}`` into
  ``{cache_dir}/loads`` each time it loads an artifact (:func:`loads` counts them).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from parafactory import (
    ArtifactManager,
    Cacher,
    ExperimentParameters,
    JsonCacher,
    Lazy,
    PickleCacher,
    Record,
    aggregate,
    stage,
)
from parafactory._model.cache import Cache, Entry


@dataclasses.dataclass
class Sweep(ExperimentParameters):
    value: int = 0
    seconds: float = 0.0
    marker_dir: str = ""


def sweep(marker_dir: Path, count: int, **fields: Any) -> list[Sweep]:
    """``count`` parameter sets ``r00, r01, ...`` with ``value`` 0, 1, ... and a marker dir."""
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    return [
        Sweep(name=f"r{i:02d}", value=i, marker_dir=str(marker_dir), **fields) for i in range(count)
    ]


def manager_for(directory: Path, name: str = "cached", **options: Any) -> ArtifactManager:
    """A manager whose every file lives under ``directory``; same name + directory = same cache."""
    return ArtifactManager(name, root=directory, console_log=False, **options)


def cache_dir_of(directory: Path) -> Path:
    """The cache directory of the managers :func:`manager_for` makes under ``directory``."""
    return manager_for(directory, dry=True).cache_dir  # a dry manager writes nothing


# -- counting -------------------------------------------------------------------------------


def mark(record: Record, stage_name: str) -> None:
    """Note one execution of ``stage_name`` on ``record`` (one new file per execution)."""
    params = record.params
    directory = Path(params.marker_dir) if params is not None else None
    if directory is None or not str(directory):
        raise RuntimeError("record has no marker_dir to count executions in")
    name = params.name if params is not None else "none"
    (directory / f"{stage_name}__{name}__{uuid.uuid4().hex}").touch()


def mark_in(directory: Path | str, stage_name: str, name: str) -> None:
    """Note one execution in ``directory`` (for aggregates, whose record has no params)."""
    (Path(directory) / f"{stage_name}__{name}__{uuid.uuid4().hex}").touch()


def executions(marker_dir: Path, stage_name: str | None = None) -> list[str]:
    """The record names of the executions noted in ``marker_dir`` (of one stage, or all)."""
    marker_dir = Path(marker_dir)
    if not marker_dir.is_dir():
        return []
    found = []
    for path in marker_dir.iterdir():
        parts = path.name.split("__")
        if len(parts) == 3 and (stage_name is None or parts[0] == stage_name):
            found.append(parts[1])
    return sorted(found)


class CountingCacher(PickleCacher):
    """A pickle cacher that notes every load in ``{cache_dir}/loads``."""

    def load(self, path: Path) -> Any:
        loads_dir = Path(path).parent / "loads"
        loads_dir.mkdir(exist_ok=True)
        (loads_dir / f"{Path(path).name}__{uuid.uuid4().hex}").touch()
        return super().load(path)


def loads(cache_dir: Path, output: str | None = None) -> int:
    """How often :class:`CountingCacher` loaded artifacts (of ``output``) from ``cache_dir``."""
    loads_dir = Path(cache_dir) / "loads"
    if not loads_dir.is_dir():
        return 0
    names = [p.name.split("__")[0] for p in loads_dir.iterdir()]
    return sum(1 for n in names if output is None or n.endswith(f"_{output}.pkl"))


# -- a chain first -> second -> third, and aggregates over it ----------------------------------


@stage(outputs=["x"], cachers=[CountingCacher()])
def first(record):
    mark(record, "first")
    return record.params.value * 2


@stage(inputs=["x"], outputs=["y"], cachers=[CountingCacher()])
def second(record, x):
    mark(record, "second")
    return x + 1


@stage(inputs=["y"], outputs=["z"])
def third(record, y):
    """Not cached: runs on every run, reading only ``y``."""
    mark(record, "third")
    return y * 10


@aggregate(inputs=["y"], outputs=["total"], cachers=[CountingCacher()])
def total(record, records, y):
    mark_in(records[0].params.marker_dir, "total", "aggregate")
    return sum(y.values())


@aggregate(inputs=["x"], outputs=["x_sum"])
def x_sum(record, records, x):
    """Not cached: reads ``x`` of every record, never ``y``."""
    mark_in(records[0].params.marker_dir, "x_sum", "aggregate")
    return sum(x.values())


def chain_experiment(param_sets, manager):
    """first -> second on each record, then the cached ``total`` over them."""
    records = [second(first(Record(manager, params))) for params in param_sets]
    total(Record(manager, None), records)


def x_sum_experiment(param_sets, manager):
    """first -> second on each record, then ``x_sum`` (uncached, reads only ``x``)."""
    records = [second(first(Record(manager, params))) for params in param_sets]
    x_sum(Record(manager, None), records)


# -- lazy outputs -----------------------------------------------------------------------------


@stage(outputs=[Lazy("model"), "score"], cachers=[CountingCacher(), JsonCacher()])
def train(record):
    mark(record, "train")
    return {"weights": [record.params.value] * 3}, record.params.value / 10


@aggregate(inputs=["model"], outputs=["first_weights"])
def first_model_weights(record, records, model):
    """Reads the model of one record only, through its declared input."""
    chosen = min(model, key=lambda member: member.name)
    return model[chosen]["weights"]


@aggregate(outputs=["first_weights"])
def first_model_weights_from_state(record, records):
    """Reads the model of one record only, from that record's state."""
    chosen = min(records, key=lambda member: member.name)
    return chosen.state["model"]["weights"]


# -- resuming ---------------------------------------------------------------------------------


@stage(outputs=["square", "info"], cachers=[PickleCacher(), JsonCacher()])
def slow_square(record):
    mark(record, "slow_square")
    time.sleep(record.params.seconds)
    return record.params.value**2, {"name": record.params.name, "value": record.params.value}


# -- large results ------------------------------------------------------------------------------

BIG_ELEMENTS = 4 * 1024 * 1024 // 8  # 4 MiB of float64


@stage(outputs=["big", "small"])
def arrays(record):
    value = record.params.value
    return np.arange(BIG_ELEMENTS, dtype=np.float64) + value, np.arange(10) + value


@stage(outputs=["big"])
def slow_big(record):
    """Not cached: a large result after a pause, for interrupting a run that spills."""
    mark(record, "slow_big")
    time.sleep(record.params.seconds)
    return np.full(BIG_ELEMENTS, float(record.params.value))


@stage(outputs=["big"])
def big_then_fail(record):
    if record.params.value == 1:
        time.sleep(0.3)
        raise ValueError("failing after another record sent a big result")
    return np.full(BIG_ELEMENTS, float(record.params.value))


# -- writers that stall or race -------------------------------------------------------------------


class StallingCacher(Cacher):
    """Writes half its bytes, says so in ``{cache_dir}/half-written``, then stalls for a minute.

    Stalls only while ``{cache_dir}/stall`` exists; otherwise writes everything at once.
    """

    extension = "bin"

    def save(self, obj: bytes, path: Path) -> None:
        path = Path(path)
        cache_dir = path.parent.parent  # ``path`` is in the cache's staging folder
        with open(path, "wb") as file:
            if not (cache_dir / "stall").exists():
                file.write(obj)
                return
            file.write(obj[: len(obj) // 2])
            file.flush()
            os.fsync(file.fileno())
            (cache_dir / "half-written").write_text(str(path))
            time.sleep(60)
            file.write(obj[len(obj) // 2 :])

    def load(self, path: Path) -> bytes:
        return Path(path).read_bytes()


PAYLOAD = b"0123456789abcdef" * 4096  # 64 KiB


@stage(outputs=["blob"], cachers=[StallingCacher()])
def blob(record):
    mark(record, "blob")
    return PAYLOAD


def write_blob_eagerly(directory: str, marker_dir: str) -> None:
    """Run :func:`blob` eagerly on one record (a subprocess target)."""
    manager = manager_for(Path(directory))
    blob(Record(manager, Sweep(name="r00", marker_dir=marker_dir)))


class ChunkedCacher(Cacher):
    """Writes its bytes in chunks with pauses, so two writers overlap for sure."""

    extension = "bin"

    def save(self, obj: bytes, path: Path) -> None:
        chunk = len(obj) // 20
        with open(path, "wb") as file:
            for start in range(0, len(obj), chunk):
                file.write(obj[start : start + chunk])
                file.flush()
                time.sleep(0.02)

    def load(self, path: Path) -> bytes:
        return Path(path).read_bytes()


RACE_BYTES = 8 * 1024 * 1024
RACE_ENTRY = Entry("write", "samehash", ("data",), (ChunkedCacher(),), frozenset(), "code")


def race_writer(directory: str, fill: int, barrier: Any) -> None:
    """Store ``RACE_BYTES`` bytes of ``fill`` as the one artifact both racers write."""
    cache = Cache(Path(directory), prefix="race")
    payload = bytes([fill]) * RACE_BYTES
    barrier.wait(timeout=30)
    cache.store(RACE_ENTRY, {"data": payload}, upstream="", provenance="after-write")
