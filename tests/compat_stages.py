"""Stages and parameter classes for the curifactory-compatibility tests, importable by workers.

Loky and dask workers import this module by name (``compat_stages``): pytest puts
``tests/`` on ``sys.path`` and the worker processes inherit it. The code is written as
curifactory 0.20 code would be, with ``import parafactory as cf`` as its import line.

Executions are counted without shared memory, so they count in any process: each
execution of a counted stage writes one empty file ``{stage}__{record}__{uuid}`` into
``markers/`` beside the manager's cache directory (``record.manager.cache_path``, which
stages see in workers too); :func:`executions` reads them back.
"""

from __future__ import annotations

import collections
import copy
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import parafactory as cf
from parafactory.caching import JsonCacher

# How the compatibility tests run a scenario: eagerly, and with map/run on every backend
# (the ``backend`` fixture of conftest.py).
_PARALLEL = ["inprocess", "loky", "dask"]
EVERY_WAY = pytest.mark.parametrize(
    ("mode", "backend"),
    [("eager", "inprocess")] + [(m, b) for m in ("map", "run") for b in _PARALLEL],
    indirect=["backend"],
)
EAGER_OR_RUN = pytest.mark.parametrize(
    ("mode", "backend"),
    [("eager", "inprocess")] + [("run", b) for b in _PARALLEL],
    indirect=["backend"],
)

# -- parameter classes --------------------------------------------------------------------


@dataclass
class Params(cf.ExperimentParameters):
    """SPEC's ``Params``: ``m=1`` hashes to md5("m1") = ae7be26cdaa742ca148068d5ac90eaca."""

    m: int = 1


@dataclass
class AB(cf.ExperimentParameters):
    """The parameters of curifactory's ``cache_stages_store_and_agg`` scenario."""

    a: int = 5
    b: int = 6


Point = collections.namedtuple("Point", "x y")

RETURNS = {
    "nested": ((1, 2),),
    "pair": (1, 2),
    "point": Point(1, 2),
    "empty": (),
    "list": [1, 2],
}


@dataclass
class Returns(cf.ExperimentParameters):
    """Which of :data:`RETURNS` the SPEC 1 stages return."""

    returns: str = "pair"


@dataclass
class MyModelClass:
    """A dataclass *class* used as a parameter value (SPEC 8)."""

    layers: int = 3
    lr: float = 0.1


@dataclass
class ModelParams(cf.ExperimentParameters):
    model_type: type = MyModelClass
    seed: int = 0


@dataclass
class NoneParams(cf.ExperimentParameters):
    """SPEC 8's ``set_hash_functions`` example: only ``a`` counts."""

    a: int = 1
    b: object = None
    seed: int = 42
    workers: int = 8
    hash_representations: dict = cf.set_hash_functions(seed=None, workers=lambda self, obj: None)


# -- counting executions ----------------------------------------------------------------------


def markers_of(cache_path: str | os.PathLike) -> Path:
    return Path(cache_path).parent / "markers"


def mark(record: cf.Record, stage_name: str) -> None:
    """Note one execution of ``stage_name`` on ``record``."""
    directory = markers_of(record.manager.cache_path)
    directory.mkdir(parents=True, exist_ok=True)
    name = record.params.name if record.params is not None else "None"
    (directory / f"{stage_name}__{name}__{uuid.uuid4().hex}").touch()


def executions(cache_path: str | os.PathLike, clear: bool = True) -> list[str]:
    """``stage:record`` for each execution noted since the last call (sorted)."""
    directory = markers_of(cache_path)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        stage_name, name, _ = path.name.split("__")
        found.append(f"{stage_name}:{name}")
        if clear:
            path.unlink()
    return sorted(found)


# -- SPEC 1: returned values and outputs ----------------------------------------------------


@cf.stage(None, ["a"])
def one_output(record):
    return RETURNS[record.params.returns]


@cf.stage(None, ["a", "b"])
def two_outputs(record):
    return RETURNS[record.params.returns]


@cf.aggregate(None, ["a"])
def one_output_agg(record, records):
    return RETURNS[record.params.returns]


@cf.aggregate(None, ["a", "b"])
def two_outputs_agg(record, records):
    return RETURNS[record.params.returns]


# -- SPEC 2: keyword arguments at the call --------------------------------------------------


@cf.stage(None, ["x"])
def make_x(record):
    return record.params.m


@cf.stage(["x"], ["y"])
def use_x(record, x):
    return x


@cf.stage(["x"], ["y"], [JsonCacher])
def use_x_cached(record, x):
    mark(record, "use_x_cached")
    return x


@cf.aggregate(["x"], ["seen"])
def agg_x(record, records, x):
    return {key if isinstance(key, str) else key.params.name: value for key, value in x.items()}


# -- SPEC 3: suppress_missing_inputs --------------------------------------------------------


@cf.stage(None, ["a"])
def make_a(record):
    return 1


@cf.stage(["a", "b"], ["out"], suppress_missing_inputs=True)
def with_default(record, a, b="DEFAULT_B"):
    return [a, b]


@cf.stage(["a", "b"], ["out"], suppress_missing_inputs=True)
def no_default(record, a, b):
    return [a, b]


@cf.stage(["a", "b"], ["out"])
def default_unsuppressed(record, a, b="DEFAULT_B"):
    return [a, b]


# -- SPEC 5-7: records without parameters, overwrite, combo hashes --------------------------


@cf.stage(None, ["v"], [JsonCacher])
def make_v(record):
    mark(record, "make_v")
    return record.params.m if record.params is not None else 7


@cf.stage(None, ["v"])
def make_v_uncached(record):
    mark(record, "make_v_uncached")
    return record.params.m


@cf.stage(["v"], ["w"], [JsonCacher])
def times_ten(record, v):
    mark(record, "times_ten")
    return v * 10


@cf.aggregate(["v"], ["total"], [JsonCacher])
def total(record, records, v):
    mark(record, "total")
    return sum(v.values())


@cf.aggregate(["w"], ["total"], [JsonCacher])
def total_w(record, records, w):
    mark(record, "total_w")
    return sum(w.values())


@cf.stage(["total"], ["after"], [JsonCacher])
def after_total(record, total):
    mark(record, "after_total")
    return total + 1


@cf.aggregate(["v"], ["inner_total"], [JsonCacher])
def inner(record, records, v):
    return sum(v.values())


@cf.aggregate(["inner_total", "v"], ["outer_total"], [JsonCacher])
def outer(record, records, inner_total, v):
    return sum(inner_total.values()) + sum(v.values())


@cf.stage(None, ["seen_hash"], [JsonCacher])
def seen_hash(record):
    return record.params.hash


# -- SPEC 9: make_copy ------------------------------------------------------------------------


@cf.stage(None, ["lst"])
def make_list(record):
    return [1, [2, 3]]


@cf.stage(["lst"], ["lst"])
def append_orig(record, lst):
    lst[1].append("orig")  # in place: a shallow copy would see it
    return lst


@cf.stage(["lst"], ["seen"])
def look(record, lst):
    return copy.deepcopy(lst)


# -- SPEC 10: get_path / get_dir ----------------------------------------------------------------


@cf.stage(None, ["paths"])
def where(record):
    path = record.get_path("thing.txt")
    with open(path, "w") as file:
        file.write("x")
    directory = record.get_dir("mydir")
    return {
        "path": path,
        "written": os.path.isfile(path),
        "sub": record.get_path("thing", subdir="a/b", prefix="pre"),
        "other": record.get_path("thing", stage_name="other"),
        "dir": directory,
        "dir_made": os.path.isdir(directory),
        "types": sorted({type(path).__name__, type(directory).__name__}),
        "cache_path": record.manager.cache_path,
        "pid": os.getpid(),
    }


@cf.aggregate(None, ["agg_path"])
def agg_where(record, records):
    return record.get_path("thing")
