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
    needs: set[int] = dataclasses.field(default_factory=set)
    needed_by: list[int] = dataclasses.field(default_factory=list)


class Planner:
    """Collects stage calls while the experiment runs in planning mode."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._last_step: dict[int, Step] = {}  # record id -> its latest step
        self._open_chain: dict[int, Step] = {}  # record id -> chain still taking stages
        self._observers: dict[int, list[Step]] = {}  # record id -> aggregates that read it
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
        chain = self._open_chain.get(id(record))
        if chain is None:
            chain = self._new_step(record, is_aggregate=False)
            self._open_chain[id(record)] = chain
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
            self._open_chain.pop(id(member), None)
            if id(member) in self._last_step and member is not record:
                self._link(self._last_step[id(member)], step)
            self._observers.setdefault(id(member), []).append(step)

    def _new_step(self, record: Record, *, is_aggregate: bool) -> Step:
        key = id(record)
        step = Step(len(self.steps), record, [], is_aggregate)
        self.steps.append(step)
        previous = self._last_step.get(key)
        if previous is not None:
            self._link(previous, step)
        if key in self._observers:
            for observer in self._observers.pop(key):
                if observer is not step:
                    self._link(observer, step)
        self._open_chain.pop(key, None)
        self._last_step[key] = step
        return step

    @staticmethod
    def _link(before: Step, after: Step) -> None:
        if before.id not in after.needs:
            after.needs.add(before.id)
            before.needed_by.append(after.id)
