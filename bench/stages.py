"""parafactory's side of the workloads: parameter sets, stages, aggregates, experiments.

Each ``@stage`` is a thin wrapper around the plain :func:`~bench.workloads.first`
and :func:`~bench.workloads.second` that the other runners call, so every
runner does the same work. Module-level, so worker processes can import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from parafactory import (
    ExperimentParameters,
    JoblibCacher,
    Lazy,
    PickleCacher,
    Record,
    aggregate,
    stage,
)

from .workloads import Outcome, Task, Workload, first, mark, second, total


@dataclasses.dataclass
class BenchParams(ExperimentParameters):
    """A task's fields as a parameter set."""

    kind: str = "tiny"
    index: int = 0
    work: int = 0


@dataclasses.dataclass
class CachedParams(BenchParams):
    """A parameter set whose cached stages leave a mark in ``marker_dir`` when they run."""

    marker_dir: str = ""


def params_of(prefix: str, task: Task) -> BenchParams:
    """The parameter set for ``task``."""
    return BenchParams(
        name=f"{prefix}-{task.index}", kind=task.kind, index=task.index, work=task.work
    )


def param_sets(workload: Workload) -> list[BenchParams]:
    """Fresh parameter sets for a workload's tasks (their hashes not computed yet)."""
    return [params_of(workload.name, task) for task in workload.tasks]


def task_of(params: Any) -> Task:
    """The task a parameter set describes."""
    return Task(params.kind, params.index, params.work)


@stage(outputs=["a"])
def pf_first(record: Record) -> Any:
    """:func:`first` as a stage."""
    return first(task_of(record.params))


@stage(inputs=["a"], outputs=["b"])
def pf_second(record: Record, a: Any) -> Any:
    """:func:`second` as a stage."""
    return second(task_of(record.params), a)


@aggregate(inputs=["b"], outputs=["total"])
def pf_total(record: Record, records: list[Record], b: dict[Record, int]) -> tuple[tuple[int, int]]:
    """:func:`total` as an aggregate, over the records in index order (a returned tuple is
    the outputs, as in curifactory: the pair is wrapped as the one output)."""
    return (total([b[member] for member in sorted(b, key=_index_of)]),)


@stage(outputs=["a"], cachers=[PickleCacher()])
def pf_first_cached(record: Record) -> Any:
    """:func:`first` as a cached stage that counts its executions."""
    mark(getattr(record.params, "marker_dir", ""))
    return first(task_of(record.params))


@stage(inputs=["a"], outputs=["b"], cachers=[PickleCacher()])
def pf_second_cached(record: Record, a: Any) -> Any:
    """:func:`second` as a cached stage that counts its executions."""
    mark(getattr(record.params, "marker_dir", ""))
    return second(task_of(record.params), a)


@stage(outputs=[Lazy("a")], cachers=[JoblibCacher()])
def pf_first_lazy(record: Record) -> Any:
    """:func:`first` as a stage whose output stays on disk."""
    return first(task_of(record.params))


@stage(inputs=["a"], outputs=[Lazy("b")], cachers=[JoblibCacher()])
def pf_second_lazy(record: Record, a: Any) -> Any:
    """:func:`second` as a stage whose output stays on disk."""
    return second(task_of(record.params), a)


def experiment_chains(param_sets: list[BenchParams], manager: Any) -> None:
    """W1–W3 and W5: both stages on a record per parameter set."""
    for params in param_sets:
        pf_second(pf_first(Record(manager, params)))


def experiment_with_total(param_sets: list[BenchParams], manager: Any) -> None:
    """W4: both stages on every record, then the aggregate over all of them."""
    experiment_chains(param_sets, manager)
    pf_total(Record(manager, None))


def experiment_cached(param_sets: list[BenchParams], manager: Any) -> None:
    """The cached rerun: both cached stages on a record per parameter set."""
    for params in param_sets:
        pf_second_cached(pf_first_cached(Record(manager, params)))


def experiment_lazy(param_sets: list[BenchParams], manager: Any) -> None:
    """W3 with lazy outputs: both lazy stages on a record per parameter set."""
    for params in param_sets:
        pf_second_lazy(pf_first_lazy(Record(manager, params)))


def outcome_of_records(records: Sequence[Record]) -> Outcome:
    """The outcome of a parafactory run (loading any artifact still on disk)."""
    states: dict[int, dict[str, Any]] = {}
    found_total = None
    for record in records:
        if record.params is None:
            found_total = record.state.get("total")
        else:
            states[_index_of(record)] = dict(record.state.items())
    return Outcome([states[index] for index in sorted(states)], found_total)


def _index_of(record: Record) -> int:
    return int(getattr(record.params, "index", -1))
