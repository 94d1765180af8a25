"""Stages and parameters for ``test_state``, ``test_aggregate_scope`` and
``test_parameter_classes``, importable by worker processes (as ``state_stages``).

Executions are counted with marker files (``cache_stages.mark``) and loads with
``cache_stages.CountingCacher``, so both count in any process.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cache_stages import CountingCacher, mark
from parafactory import ExperimentParameters, Lazy, Record, aggregate, stage


@dataclasses.dataclass
class Item(ExperimentParameters):
    value: int = 0
    marker_dir: str = ""


def items(marker_dir: Path, *named: tuple[str, int]) -> list[Item]:
    """One parameter set per ``(name, value)``, all noting executions in ``marker_dir``."""
    Path(marker_dir).mkdir(parents=True, exist_ok=True)
    return [Item(name=name, value=value, marker_dir=str(marker_dir)) for name, value in named]


# -- a stage with three cached outputs, the last one Lazy ---------------------------------------


@stage(
    outputs=["number", "table", Lazy("blob")],
    cachers=[CountingCacher(), CountingCacher(), CountingCacher()],
)
def produce(record):
    mark(record, "produce")
    value = record.params.value
    table = {"name": record.params.name, "squares": [i * i for i in range(value + 1)]}
    return value * 3, table, [value] * 4


# -- an aggregate reporting what it was given ----------------------------------------------------


@stage(outputs=["value"])
def emit(record):
    mark(record, "emit")
    return record.params.value


@aggregate(inputs=["value"], outputs=["members", "values"])
def collect(record, records, value):
    """The names of the records it was given, and the ``value`` of those that have one."""
    return sorted(member.name for member in records), {m.name: v for m, v in value.items()}


def emit_then_collect(param_sets: Any, manager: Any) -> None:
    """``emit`` on a record per parameter set, then ``collect`` with ``records=None``."""
    for params in param_sets:
        emit(Record(manager, params))
    collect(Record(manager, None))


def emit_twice_on_one_set(param_sets: Any, manager: Any) -> None:
    """Two records of each parameter set (the same object), each running ``emit``."""
    for params in param_sets:
        emit(Record(manager, params))
        emit(Record(manager, params))


def marker_count(marker_dir: Path) -> int:
    """How many executions of any stage were noted in ``marker_dir``."""
    return sum(1 for _ in Path(marker_dir).iterdir()) if Path(marker_dir).is_dir() else 0


# -- a record that goes back to a worker after an aggregate read it --------------------------


@aggregate(inputs=["number"], outputs=["numbers"])
def numbers(record, records, number):
    return sorted(number.values())


@stage(inputs=["number"], outputs=["half"])
def halve(record, number):
    mark(record, "halve")
    return number / 2


def produce_compare_halve(param_sets: Any, manager: Any) -> None:
    """``produce`` on each record, ``numbers`` over them, then ``halve`` on each: the
    records travel to workers a second time, holding the Lazy ``blob``."""
    records = [produce(Record(manager, params)) for params in param_sets]
    numbers(Record(manager, None), records)
    for record in records:
        halve(record)


def collect_midway(param_sets: Any, manager: Any) -> None:
    """``emit`` on the first two parameter sets, ``collect`` with ``records=None``, then
    ``emit`` on the rest: eagerly, the aggregate sees the first two only."""
    for params in param_sets[:2]:
        emit(Record(manager, params))
    collect(Record(manager, None))
    for params in param_sets[2:]:
        emit(Record(manager, params))
