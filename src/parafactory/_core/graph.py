"""The run graph: which steps of a plan are waiting, ready, running, done, failed or skipped,
and why. Pure bookkeeping: no I/O, no clocks, no processes; the scheduler feeds it.

A step is ready once every step it needs has settled. A chain step goes to a worker, a
parent step (an aggregate, or a record's copy) runs in the parent. When a step fails, the
later steps of its record (and copies of the record) are skipped, and so on down; an
aggregate still runs over whatever its records hold (the scheduler skips one left with
nothing, see :meth:`RunGraph.skipped`). A chain whose worker died is retried
once, alone; a second death fails it. After ``stop()`` (``errors="raise"``) nothing more
is handed out.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Sequence
from typing import Any

from .._model.records import Record
from .plan import Step

DEATHS_BEFORE_FAILING = 2  # the first death may be a neighbour's; the retry runs alone


class State(enum.Enum):
    """Where a step is."""

    WAITING = "waiting"  # for steps it needs
    READY = "ready"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


SETTLED = frozenset({State.OK, State.FAILED, State.SKIPPED})


class RunGraph:
    """The state of every step of a plan, as the run goes."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = steps
        self.stopped = False
        self._state = {step.id: State.WAITING for step in steps}
        self._why: dict[int, Any] = {}  # failed: the error; skipped: the step it needed
        self._waiting = {step.id: step.needs for step in steps}
        self._doomed: dict[int, int] = {}  # step id -> the failed step that dooms it
        self._first_skipped: dict[int, int] = {}  # record id -> its first step skipped
        self._steps_left = collections.Counter(id(step.record) for step in steps)
        self._chains: collections.deque[Step] = collections.deque()
        self._parent_steps: collections.deque[Step] = collections.deque()
        self._alone: collections.deque[Step] = collections.deque()  # retried after a death
        self._deaths: collections.Counter[int] = collections.Counter()
        self._unsettled = len(steps)
        for step in steps:
            if not step.needs:
                self._make_ready(step)

    # -- reading -------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """Every step is done, failed or skipped."""
        return self._unsettled == 0

    def state(self, step_id: int) -> State:
        return self._state[step_id]

    def why(self, step_id: int) -> Any:
        """A failed step's error; for a skipped one, the id of the step it needed that
        failed or was skipped (``None`` for one skipped itself, see :meth:`skipped`)."""
        return self._why.get(step_id)

    def first_skipped(self, record: Record) -> Step | None:
        """The first step of ``record`` that was skipped (``why`` says what it needed that
        failed), or ``None`` if none was."""
        step_id = self._first_skipped.get(id(record))
        return None if step_id is None else self.steps[step_id]

    def has_ready_work(self) -> bool:
        return bool(self._chains or self._parent_steps or self._alone)

    def ready_chains(self) -> int:
        return len(self._chains)

    # -- handing out work ----------------------------------------------------------------

    def next_parent_step(self) -> Step | None:
        """An aggregate or a copy that may run now in the parent."""
        if self.stopped or not self._parent_steps:
            return None
        return self._running(self._parent_steps.popleft())

    def next_chain(self) -> Step | None:
        """A chain that may go to a worker now (none while one waits to be retried alone)."""
        if self.stopped or self._alone or not self._chains:
            return None
        return self._running(self._chains.popleft())

    def next_alone(self) -> Step | None:
        """A chain to retry alone, after its worker died: the caller sends it when nothing
        else runs (a worker's death takes what runs beside it)."""
        if self.stopped or not self._alone:
            return None
        return self._running(self._alone.popleft())

    def _running(self, step: Step) -> Step:
        self._state[step.id] = State.RUNNING
        return step

    # -- hearing back ----------------------------------------------------------------------

    def done(self, step_id: int) -> list[Record]:
        """A step ended well; returns the records now finished (every step settled)."""
        return self._settle(self.steps[step_id], State.OK, None)

    def failed(self, step_id: int, error: Any) -> list[Record]:
        """A step failed with ``error``; its record's later steps will be skipped."""
        return self._settle(self.steps[step_id], State.FAILED, error)

    def skipped(self, step_id: int) -> list[Record]:
        """A step handed out was not run after all (an aggregate whose records all failed,
        leaving it nothing): skipped, and so are its record's later steps."""
        return self._settle(self.steps[step_id], State.SKIPPED, None)

    def resend(self, step_id: int) -> None:
        """A chain handed out but not run (its batch stopped early, its worker was lost
        beside another's death): ready again, ahead of the others."""
        self._state[step_id] = State.READY
        self._chains.appendleft(self.steps[step_id])

    def died(self, step_id: int) -> bool:
        """A chain's worker died while running it. Returns whether it is retried (alone);
        if not, the caller fails it."""
        self._deaths[step_id] += 1
        if self._deaths[step_id] >= DEATHS_BEFORE_FAILING:
            return False
        self._state[step_id] = State.READY
        self._alone.append(self.steps[step_id])
        return True

    def stop(self) -> None:
        """Hand out nothing more (what runs may still end)."""
        self.stopped = True

    # -- settling ------------------------------------------------------------------------

    def _settle(self, step: Step, state: State, why: Any) -> list[Record]:
        finished: list[Record] = []
        pending = [(step, state, why)]
        while pending:
            step, state, why = pending.pop()
            self._state[step.id] = state
            if why is not None:
                self._why[step.id] = why
            if state is State.SKIPPED:
                self._first_skipped.setdefault(id(step.record), step.id)
            self._unsettled -= 1
            self._steps_left[id(step.record)] -= 1
            if self._steps_left[id(step.record)] == 0:
                finished.append(step.record)
            pending += self._release(step, state)
        return finished

    def _release(self, step: Step, state: State) -> list[tuple[Step, State, Any]]:
        """The steps that were waiting on ``step``: ready now, or skipped if they need
        what it would have made."""
        skipped = []
        for later_id in step.needed_by:
            later = self.steps[later_id]
            if state is not State.OK and step.record in (later.record, later.copy_of):
                self._doomed.setdefault(later_id, self._doomed.get(step.id, step.id))
            self._waiting[later_id] -= 1
            if self._waiting[later_id]:
                continue
            if later_id in self._doomed:
                skipped.append((later, State.SKIPPED, self._doomed[later_id]))
            else:
                self._make_ready(later)
        return skipped

    def _make_ready(self, step: Step) -> None:
        self._state[step.id] = State.READY
        (self._parent_steps if step.is_aggregate else self._chains).append(step)
