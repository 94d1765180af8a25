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
import operator
import weakref
from collections.abc import Iterator, Sequence, Set
from typing import Any, NamedTuple

from .._errors import quoted_names
from .._model.records import Record, WriteOnlyState
from .._model.stages import StageSpec

_LITERALS = frozenset({int, float, str, bytes, bool, type(None)})  # see _call_with_arguments


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
    needed_by: list[int] | tuple[()] = ()  # steps waiting on this one (a list once one does)
    copy_of: Record | None = None  # a copy step: the record takes a copy of this one's state
    path: _Path | None = None  # the calls made on the record up to the end of this step


class Plan(NamedTuple):
    """A planned run: the records the experiment created (hidden ones aside), its steps,
    the distinct stages it calls, and where each record's steps end."""

    records: list[Record]
    steps: list[Step]
    stages: list[StageSpec]
    last_steps: dict[Record, Step]  # each record's last step (hidden records' too)


class Planner:
    """Collects stage calls while the experiment runs in planning mode."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.records: list[Record] = []  # every record the experiment created
        self._listed: list[Record] = []  # ... of which not hidden: what records=None means
        self._last_step: dict[Record, Step] = {}  # each record's latest step
        self._observers: dict[Record, list[Step]] = {}  # aggregates that read each record
        self._plain_calls: dict[int, Call] = {}  # spec id -> its call without arguments
        self._literal_calls: dict[tuple[Any, ...], Call] = {}  # see _call_with_arguments
        self._root = _Path(None, None)  # every record's calls, as paths in one tree
        self._copied_from: dict[Record, Record] = {}  # copies made with make_copy
        self._written_records: list[Record] = []  # with state written while planning

    def add_record(self, record: Record, hidden: bool) -> None:
        """A record was created while planning."""
        self.records.append(record)
        if not hidden:
            self._listed.append(record)

    def add_copy(self, original: Record, copy: Record) -> None:
        """``original.make_copy()`` made ``copy``: a step in this process gives it a copy of
        the original's state once the original's earlier steps are done, and the
        original's later stages wait for it."""
        step = self._new_step(copy, True, self._last_step.get(copy))
        step.copy_of = original
        if original in self._last_step:
            self._link(self._last_step[original], step)
            step.path = self._last_step[original].path
        self._observers.setdefault(original, []).append(step)
        self._copied_from[copy] = original

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
            if records is None:  # this experiment's records, not those of earlier runs
                records = [other for other in self._listed if other is not record]
            call = Call(spec, args, kwargs, tuple(records))
            self._add_aggregate(call, record)
        else:
            if args or kwargs:
                call = self._call_with_arguments(spec, args, kwargs)
            else:  # shared, so a batch of records pickles each call once
                call = self._plain_calls.get(id(spec)) or self._plain_call(spec)
            previous = chain = self._last_step.get(record)
            if chain is None or chain.is_aggregate or record in self._observers:
                # A chain takes stages until an aggregate reads its record: later stages
                # must wait for that aggregate, so they start a new chain.
                chain = self._new_step(record, False, previous)
            chain.calls.append(call)
            path = chain.path or self._root
            chain.path = path.children.get(id(call)) or path.then(call)

    def problems(self) -> list[str]:
        """What is wrong with the plan, found before anything runs (empty when nothing is):
        parameter sets or stages sharing a name, and stage inputs nothing upstream provides."""
        return [
            *_parameter_name_clashes(self.records),
            *_stage_name_clashes(self._root),
            *self._missing_inputs(),
        ]

    @property
    def last_steps(self) -> dict[Record, Step]:
        """Each record's latest step, in the order records were first called on."""
        return self._last_step

    def stages(self) -> list[StageSpec]:
        """Every distinct stage or aggregate the plan calls."""
        specs = {id(node.call.spec): node.call.spec for node in self._root.nodes() if node.call}
        return list(specs.values())

    def _plain_call(self, spec: StageSpec) -> Call:
        """The one argument-free call of ``spec`` (made on its first use)."""
        call = self._plain_calls[id(spec)] = Call(spec, (), {})
        return call

    def _call_with_arguments(
        self, spec: StageSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Call:
        """A call of ``spec`` with arguments: shared like a plain call when every argument
        is a literal of a plain type, and by the records making it with equal ones (their
        representations equal: ``1``, ``1.0``, ``True`` and ``-0.0`` stay apart); made
        for this record alone otherwise (a mutable argument could change between calls)."""
        if not _LITERALS.issuperset(map(type, (*args, *kwargs.values()))):
            return Call(spec, args, kwargs)
        key = (id(spec), repr(args), repr(kwargs))
        call = self._literal_calls.get(key)
        if call is None:
            call = self._literal_calls[key] = Call(spec, args, kwargs)
        return call

    def _add_aggregate(self, call: Call, record: Record) -> None:
        step = self._new_step(record, True, self._last_step.get(record))
        step.calls.append(call)
        step.path = (step.path or self._root).then(call)
        for member in call.group:
            if member in self._last_step and member is not record:
                self._link(self._last_step[member], step)
            self._observers.setdefault(member, []).append(step)

    def _new_step(self, record: Record, is_aggregate: bool, previous: Step | None) -> Step:
        """A step on ``record`` after ``previous``, its latest one (if it has one)."""
        step = Step(len(self.steps), record, [], is_aggregate)
        self.steps.append(step)
        if previous is not None:
            self._link(previous, step)
            step.path = previous.path
        if record in self._observers:
            for observer in self._observers.pop(record):
                if observer is not step:
                    self._link(observer, step)
        self._last_step[record] = step
        return step

    @staticmethod
    def _link(before: Step, after: Step) -> None:
        # Links only ever go to the newest step, so a repeated link would be the last one.
        needed_by = before.needed_by
        if needed_by and needed_by[-1] == after.id:
            return
        if isinstance(needed_by, list):
            needed_by.append(after.id)
        else:  # the first step to wait on this one
            before.needed_by = [after.id]
        after.needs += 1

    def finish(self) -> None:
        """Planning is over: states become readable, and records whose state was written
        while planning are noted (their inputs are checked one by one)."""
        for record in self.records:
            record._planner = None
            state = record.state
            if isinstance(state, WriteOnlyState):
                if dict.__len__(state):
                    self._written_records.append(record)
                state.unlock()

    def _missing_inputs(self) -> list[str]:
        """Stage inputs that no earlier stage of the record outputs and its state lacks,
        one line per stage and input, naming every record affected. Each distinct
        sequence of calls is checked once; records are looked at only when one is wrong,
        or when their state was written while planning (or copied)."""
        gaps_at = self._root.gaps_below()
        special = set(self._written_records) | set(self._copied_from)
        if not gaps_at and not special:
            return []
        missing: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
        paths = {record: step.path or self._root for record, step in self._last_step.items()}
        for record in paths if gaps_at else special:
            path = paths.get(record, self._root)
            if record in special:
                gaps = path.missing_inputs(self._written(record))
            else:
                gaps = [gap for node in path.ancestry() for gap in gaps_at.get(node, ())]
            for gap in gaps:
                missing.setdefault(gap, []).append(record.name)
        return [
            f"stage {stage!r} needs input {name!r}, which no earlier stage outputs and the "
            f"state does not hold, on {_records_named(names)} (available: {list(available)}); "
            f"call a stage that outputs {name!r} on them first"
            for (stage, name, available), names in missing.items()
        ]

    def _written(self, record: Record) -> frozenset[str]:
        """The keys written to a record's state while planning (a copy's: its original's)."""
        written = frozenset(dict(dict.items(record.state)))
        original = self._copied_from.get(record)
        return written if original is None else written | self._written(original)


class _Path:
    """A sequence of calls made on a record, as a node of a tree: records on which the
    same calls were made share one node, so checking a sweep checks a few paths.

    A node holds its parent weakly: the planner holds the tree, and once it is gone a
    step's node holds no cycle with the records its calls aggregate, which then go by
    reference count (not at the collector's next pass over every record).
    """

    __slots__ = ("_parent", "call", "children", "distinct_stages", "__weakref__")

    def __init__(self, parent: _Path | None, call: Call | None) -> None:
        self._parent = None if parent is None else weakref.ref(parent)
        self.call = call
        self.children: dict[int, _Path] = {}
        # Whether every call along the path is of a regular stage none of the others calls.
        self.distinct_stages: bool = parent is None or (
            call is not None and parent.distinct_stages and _adds_a_stage(parent, call)
        )

    def then(self, call: Call) -> _Path:
        """The path of this one followed by ``call`` (calls are kept by the plan's steps,
        so their ids stay unique while planning)."""
        child = self.children.get(id(call))
        if child is None:
            child = self.children[id(call)] = _Path(self, call)
        return child

    def ancestry(self) -> list[_Path]:
        """This node and those above it, up to (not including) the root (while the
        planner, which holds the tree, is planning)."""
        nodes = []
        node: _Path | None = self
        while node is not None and node.call is not None:
            nodes.append(node)
            node = None if node._parent is None else node._parent()
        return nodes

    def missing_inputs(self, written: frozenset[str]) -> list[tuple[str, str, tuple[str, ...]]]:
        """(stage, input, what was available) for each input no earlier call provided,
        along this path, starting from the ``written`` state."""
        available = set(written)
        gaps = []
        for node in reversed(self.ancestry()):
            assert node.call is not None
            gaps += _gaps(node.call, available)
            available.update(node.call.spec.outputs)
        return gaps

    def gaps_below(self) -> dict[_Path, list[tuple[str, str, tuple[str, ...]]]]:
        """The nodes below this one (the root) whose call lacks an input, from an empty
        state: each node checked once, however many records share it."""
        found = {}
        pending: list[tuple[_Path, frozenset[str]]] = [(self, frozenset())]
        while pending:
            node, available = pending.pop()
            for child in node.children.values():
                assert child.call is not None
                gaps = _gaps(child.call, available)
                if gaps:
                    found[child] = gaps
                pending.append((child, available | frozenset(child.call.spec.outputs)))
        return found

    def nodes(self) -> Iterator[_Path]:
        """This node and every node below it."""
        pending = [self]
        while pending:
            node = pending.pop()
            yield node
            pending.extend(node.children.values())


def _adds_a_stage(path: _Path, call: Call) -> bool:
    """Whether ``call`` is of a regular stage that no call along ``path`` is of."""
    spec = call.spec
    earlier = (node.call.spec for node in path.ancestry() if node.call is not None)
    return not spec.is_aggregate and all(other is not spec for other in earlier)


def _gaps(call: Call, available: Set[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(stage, input, available) for each input of a regular stage's call that is neither
    available nor given as a keyword argument (unless it suppresses missing inputs)."""
    spec = call.spec
    if spec.is_aggregate or spec.suppress_missing_inputs:
        return []
    return [
        (spec.name, name, tuple(sorted(available)))
        for name in spec.inputs
        if name not in available and name not in call.kwargs
    ]


def _stage_name_clashes(root: _Path) -> list[str]:
    """Two different stage functions with one name would share cache files."""
    by_name: dict[str, dict[int, StageSpec]] = {}
    for node in root.nodes():
        if node.call is not None:
            by_name.setdefault(node.call.spec.name, {})[id(node.call.spec)] = node.call.spec
    return [
        f"{len(specs)} different stages are named {name!r}: "
        f"{' and '.join(_defined_at(spec) for spec in specs.values())}; they would share "
        "cache files: give each its own name"
        for name, specs in by_name.items()
        if len(specs) > 1
    ]


def _defined_at(spec: StageSpec) -> str:
    function = spec.function
    code = getattr(function, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{function.__module__}.{function.__qualname__}{where}"


def _parameter_name_clashes(records: list[Record]) -> list[str]:
    """Distinct parameter sets sharing a name: logs, reports and aggregates keyed by name
    could not tell them apart."""
    named = [params for params in map(operator.attrgetter("params"), records) if params is not None]
    if len(set(map(operator.attrgetter("name"), named))) == len(set(map(id, named))):
        return []  # as many names as parameter sets: no clash
    sets_named: dict[str, dict[int, Any]] = {}
    for record in records:
        if record.params is not None:
            sets_named.setdefault(record.params.name, {})[id(record.params)] = record.params
    return [
        f"{len(sets)} different parameter sets are named {name!r} (hashes "
        f"{quoted_names([p.hash for p in sets.values()])}): give each a name of its own"
        for name, sets in sets_named.items()
        if len(sets) > 1
    ]


def _records_named(names: list[str]) -> str:
    return f"{len(names)} record{'s' if len(names) > 1 else ''} ({quoted_names(names)})"
