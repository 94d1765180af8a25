"""Stages and experiments for test_plan_preview: does ``parafactory plan`` say what the run
then does, call by call? Importable by worker processes as ``preview_stages``; the test
also writes this file's source to ``tmp_path`` under another name and edits stages there
(each ``version = 0  # edit <stage>`` line) to see code changes.

Every execution of a stage writes one empty file ``{stage}__{record hash}__{uuid}`` into
``executions/`` beside the run's cache directory, so executions count in any process.

Experiments take ``(param_sets, manager, made, **options)``: each record they create is
appended to ``made``, in the order they create it, so the records of a preview and of a
run are matched one to one.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parafactory import ExperimentParameters, PickleCacher, Record, aggregate, stage


@dataclasses.dataclass
class Point(ExperimentParameters):
    x: int = 0


def mark(record: Record, stage_name: str) -> None:
    """Note one execution of ``stage_name`` on ``record``."""
    manager = record.manager
    assert manager is not None
    directory = Path(manager.cache_path).parent / "executions"
    directory.mkdir(exist_ok=True)
    (directory / f"{stage_name}__{record.hash}__{uuid.uuid4().hex}").touch()


# -- stages -------------------------------------------------------------------------------------


@stage(outputs=["data"], cachers=[PickleCacher()])
def load(record):
    version = 0  # edit load
    mark(record, "load")
    return [record.params.x, version]


@stage(inputs=["data"], outputs=["model"], cachers=[PickleCacher()])
def fit(record, scale=1, shift=0, *, data):
    version = 0  # edit fit
    mark(record, "fit")
    return sum(data) * scale + shift + version


@stage(inputs=["model"], outputs=["summary"])
def describe(record, model):
    version = 0  # edit describe
    mark(record, "describe")
    return f"model {model} ({version})"


@stage(inputs=["model"], outputs=["score"], cachers=[PickleCacher()])
def score(record, model):
    version = 0  # edit score
    mark(record, "score")
    return model + 1 + version


@stage(outputs=["seed"], cachers=[PickleCacher()])
def seed(record):
    mark(record, "seed")
    return 7


@aggregate(inputs=["score"], outputs=["total"], cachers=[PickleCacher()])
def total(record, records, score):
    version = 0  # edit total
    mark(record, "total")
    return sum(score.values()) + version


@aggregate(inputs=["score"], outputs=["best"])
def best(record, records, score):
    mark(record, "best")
    return max(score.values(), default=None)


@stage(inputs=["total"], outputs=["report"], cachers=[PickleCacher()])
def publish(record, total):
    version = 0  # edit publish
    mark(record, "publish")
    return f"total {total} ({version})"


# -- experiments --------------------------------------------------------------------------------


def made_record(made: list[Record], manager: Any, params: Any, hide: bool = False) -> Record:
    record = Record(manager, params, hide=hide)
    made.append(record)
    return record


def chain(param_sets: Sequence[Point], manager: Any, made: list[Record]) -> None:
    """``load -> fit -> score`` on every record; ``describe`` (not cached) between fit and
    score on the records of even ``x``."""
    for params in param_sets:
        record = fit(load(made_record(made, manager, params)))
        if params.x % 2 == 0:
            describe(record)
        score(record)


def with_arguments(
    param_sets: Sequence[Point],
    manager: Any,
    made: list[Record],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
) -> None:
    """``load -> fit(*args, **kwargs) -> score`` on the records of even ``x``; the others
    call ``fit`` without arguments."""
    for params in param_sets:
        record = load(made_record(made, manager, params))
        if params.x % 2 == 0:
            fit(record, *args, **(kwargs or {}))
        else:
            fit(record)
        score(record)


def everything(
    param_sets: Sequence[Point], manager: Any, made: list[Record], shift: int = 0
) -> None:
    """Every kind of call at once: chains (``fit(shift=...)`` on the first record), an
    uncached stage, a branch with its own parameters from each record, a branch with its
    record's parameters on the first, a hidden record, a record without parameters, an
    aggregate over every listed record and one over an explicit group (with the hidden
    record), each followed by a stage, and an uncached aggregate."""
    records = []
    for index, params in enumerate(param_sets):
        record = load(made_record(made, manager, params))
        if index == 0:
            fit(record, shift=shift)
        else:
            fit(record)
        describe(record)
        branch = record.make_copy(Point(name=f"{params.name}_branch", x=params.x + 1000))
        made.append(branch)
        score(fit(branch))
        score(record)
        records.append(record)
    twin = records[0].make_copy()  # the same parameters: the same cache entries' hash
    made.append(twin)
    describe(twin)
    hidden = made_record(made, manager, Point(name="hidden", x=-1), hide=True)
    score(fit(load(hidden)))
    seed(made_record(made, manager, None))
    publish(total(made_record(made, manager, None)))
    publish(total(made_record(made, manager, None), [*records[:2], hidden]))
    best(made_record(made, manager, None), records)


def group_with_a_bare_record(param_sets: Sequence[Point], manager: Any, made: list[Record]) -> None:
    """``total`` then ``publish`` over the chains of all parameter sets but the last, and
    a record of the last on which no stage runs (its state has no ``score``)."""
    records = [score(fit(load(made_record(made, manager, p)))) for p in param_sets[:-1]]
    bare = made_record(made, manager, param_sets[-1])
    publish(total(made_record(made, manager, None), [*records, bare]))


def equal_parameters(param_sets: Sequence[Point], manager: Any, made: list[Record]) -> None:
    """Records storing one cache entry in one run: a branch with its record's parameters
    scores before its record does, and each of the first two parameter sets has a second
    record."""
    for params in param_sets:
        record = fit(load(made_record(made, manager, params)))
        twin = record.make_copy()
        made.append(twin)
        score(twin)
        score(record)
    for params in param_sets[:2]:
        score(fit(load(made_record(made, manager, params))))


def called_twice(param_sets: Sequence[Point], manager: Any, made: list[Record]) -> None:
    """``fit`` twice on each record, the second time from the first one's model: in two
    chains (a run tells the reasons of one chain's calls apart by stage only)."""
    for params in param_sets:
        record = fit(load(made_record(made, manager, params)))
        made.append(record.make_copy(add_to_manager=False))  # the next call: a new chain
        fit(record)
