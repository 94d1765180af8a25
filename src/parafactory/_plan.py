"""Planning: turn an experiment's stage calls into a graph of steps.

``manager.run`` calls the experiment once with a :class:`Planner` attached to
every record it creates; stage calls are recorded instead of run. Each
record's consecutive regular stages form one *chain step* that a worker runs
in isolation; each aggregate call is an *aggregate step* that runs in the
parent. An aggregate depends on the steps that produced the state it would
have seen eagerly, and a record's later stages wait for every aggregate that
looked at it before they ran, so every step sees exactly the eager state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

from ._records import Record
from ._stages import StageSpec


class Call(NamedTuple):
    """One recorded stage call: the stage, its extra arguments and, for an aggregate, its group."""

    spec: StageSpec
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    group: tuple[Record, ...] = ()


@dataclasses.dataclass(eq=False, slots=True)
class Step:
    """A node of the plan: a chain of regular stages on one record, or one aggregate call."""

    id: int
    record: Record
    calls: list[Call]
    is_aggregate: bool
    needs: int = 0  # how many steps must finish before this one starts
    needed_by: list[int] = dataclasses.field(default_factory=list)  # steps waiting on this one


class Planner:
    """Collects stage calls while the experiment runs in planning mode."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._last_step: dict[Record, Step] = {}  # each record's latest step
        self._observers: dict[Record, list[Step]] = {}  # aggregates that read each record
        self._plain_calls: dict[int, Call] = {}  # spec id -> its call without arguments

    def add_call(
        self,
        spec: StageSpec,
        record: Record,
        records: Sequence[Record] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """Record one stage or aggregate call made on ``record``."""
        if spec.is_aggregate:
            if records is None:
                records = [other for other in record.manager.records if other is not record]
            self._add_aggregate(Call(spec, args, kwargs, tuple(records)), record)
            return
        chain = self._last_step.get(record)
        if chain is None or chain.is_aggregate or record in self._observers:
            # A chain takes stages until an aggregate reads its record: later stages must
            # wait for that aggregate, so they start a new chain.
            chain = self._new_step(record, is_aggregate=False)
        if args or kwargs:
            chain.calls.append(Call(spec, args, kwargs))
        else:  # shared, so a batch of records pickles each call once
            chain.calls.append(self._plain_calls.get(id(spec)) or self._plain_call(spec))

    def _plain_call(self, spec: StageSpec) -> Call:
        call = self._plain_calls[id(spec)] = Call(spec, (), {})
        return call

    def _add_aggregate(self, call: Call, record: Record) -> None:
        step = self._new_step(record, is_aggregate=True)
        step.calls.append(call)
        for member in call.group:
            if member in self._last_step and member is not record:
                self._link(self._last_step[member], step)
            self._observers.setdefault(member, []).append(step)

    def _new_step(self, record: Record, *, is_aggregate: bool) -> Step:
        step = Step(len(self.steps), record, [], is_aggregate, 0, [])
        self.steps.append(step)
        previous = self._last_step.get(record)
        if previous is not None:
            self._link(previous, step)
        if record in self._observers:
            for observer in self._observers.pop(record):
                if observer is not step:
                    self._link(observer, step)
        self._last_step[record] = step
        return step

    @staticmethod
    def _link(before: Step, after: Step) -> None:
        # Links only ever go to the newest step, so a repeated link would be the last one.
        if not before.needed_by or before.needed_by[-1] != after.id:
            before.needed_by.append(after.id)
            after.needs += 1
