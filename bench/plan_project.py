"""The experiment ``parafactory plan`` previews in the bench, written as a user's small
``experiments/`` module would be: a parameter class, two cached stages, ``get_params``
giving ``$BENCH_PLAN_RECORDS`` parameter sets and ``run`` calling both stages on a record
per set. It imports parafactory alone (not the bench's workloads, which bring numpy), so
the time measured is parafactory's."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from parafactory import ExperimentParameters, PickleCacher, Record, stage


@dataclasses.dataclass
class PlanParams(ExperimentParameters):
    """A tiny task's fields (those of :class:`~bench.stages.BenchParams`)."""

    kind: str = "tiny"
    index: int = 0
    work: int = 0


@stage(outputs=["a"], cachers=[PickleCacher()])
def plan_first(record: Record) -> int:
    """Next to nothing, cached."""
    return record.params.index + 1


@stage(inputs=["a"], outputs=["b"], cachers=[PickleCacher()])
def plan_second(record: Record, a: int) -> int:
    """Next to nothing again, from the first stage's output, cached."""
    return a * 2


def get_params() -> list[PlanParams]:
    """``$BENCH_PLAN_RECORDS`` tiny parameter sets."""
    count = int(os.environ["BENCH_PLAN_RECORDS"])
    return [PlanParams(name=f"plan-{i}", index=i) for i in range(count)]


def run(param_sets: list[PlanParams], manager: Any) -> None:
    """Both cached stages on a record per parameter set."""
    for params in param_sets:
        plan_second(plan_first(Record(manager, params)))
