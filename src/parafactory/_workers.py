"""What runs in a worker: one record's chain of stages, in isolation.

The parent sends :class:`ChainTask` batches; for each, the worker runs the
stages on its copy of the record through the same runner as eager mode and
sends back a :class:`ChainResult` with the record's state (values a stage may
have changed in place included; artifacts still on disk left out). A failing
stage stops its chain; what the earlier stages computed still comes back.
Everything here is module-level and picklable, and none of it knows about
the manager.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import traceback
from typing import Any, NamedTuple

import cloudpickle

from . import _worker_logs
from ._cache import Artifact, Cache
from ._errors import UnpicklableStateError
from ._plan import Call
from ._records import Record
from ._stages import execute
from ._transfer import spill_large
from ._worker_status import mark_idle, mark_running


class ChainTask(NamedTuple):
    """One record's chain: the step it belongs to, a copy of the record, the calls to make."""

    step_id: int
    record: Record
    calls: list[Call]


@dataclasses.dataclass
class StageFailure:
    """A stage's exception as it left the worker, with the worker's formatted traceback."""

    stage_name: str
    exception: BaseException
    traceback: str


@dataclasses.dataclass
class ChainResult:
    """What a chain changed in its record's state, and how it ended."""

    step_id: int
    changed: dict[str, Any]
    removed: list[str]
    stages: list[str]
    output: Any
    provenance: str
    failure: StageFailure | None
    seconds: float
    logs: list[Any] = dataclasses.field(default_factory=list)
    logs_sent: tuple[int, int] | None = None  # (pid, count) of records sent live so far


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """How a worker reports back (the parent's pid, its log socket, the log level) and caches."""

    parent_pid: int
    log_address: str | None
    log_level: int
    cache: Cache | None = None
    scratch_dir: str | None = None  # local workers: for large results and status slots


def travelling_copy(record: Record) -> Record:
    """A copy of ``record`` that a worker may change without touching the parent's record."""
    rebuild, arguments = record.__reduce__()
    copy: Record = rebuild(*arguments)
    copy.stages = list(copy.stages)
    return copy


def run_chains(tasks: list[ChainTask], setup: WorkerSetup) -> list[ChainResult]:
    """Worker entry point: run each task's chain and return one result per task."""
    if setup.log_address is not None:
        _watch_parent(setup.parent_pid)
    results = []
    with _worker_logs.worker_logging(
        setup.parent_pid, setup.log_address, setup.log_level
    ) as collected:
        for task in tasks:
            result = run_chain(task, setup.cache, setup.scratch_dir)
            result.changed = spill_large(result.changed, setup.scratch_dir)
            if collected is not None:
                result.logs = collected.drain()
            result.logs_sent = _worker_logs.records_sent()
            results.append(result)
            if setup.scratch_dir is not None:
                mark_idle(setup.scratch_dir)
    return results


def run_chain(
    task: ChainTask, cache: Cache | None = None, scratch_dir: str | None = None
) -> ChainResult:
    """Run one chain of stages on the task's record, stopping at the first failure."""
    record = task.record
    stages_before = len(record.stages)
    before = dict(dict.items(record.state))
    started = time.perf_counter()
    failure = None
    with _worker_logs.tagged(record.name):
        for position, call in enumerate(task.calls):
            if scratch_dir is not None:
                mark_running(scratch_dir, task.step_id, position)
            try:
                execute(call.spec, record, None, call.args, call.kwargs, cache)
            except Exception as error:  # noqa: BLE001 - every stage failure is reported per record
                failure = StageFailure(call.spec.name, _travelling(error), traceback.format_exc())
                break
    state = record.state
    loaded: dict[str, Artifact] = getattr(state, "loaded", {})  # read from disk in this chain
    changed = {  # every value, as a stage may change one in place; on disk, as an artifact
        key: loaded.get(key, value)
        for key, value in dict.items(state)
        if not (isinstance(value, Artifact) and before.get(key) is value)
    }
    return ChainResult(
        step_id=task.step_id,
        changed=changed,
        removed=[key for key in before if key not in state],
        stages=record.stages[stages_before:],
        output=record._output,  # a reference when the output is in the state
        provenance=record._provenance,
        failure=failure,
        seconds=time.perf_counter() - started,
    )


def _travelling(error: Exception) -> Exception:
    """The exception itself if it can be pickled back to the parent, else a stand-in."""
    try:
        cloudpickle.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling failure means: send a stand-in
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def check_travels(record: Record) -> None:
    """Raise :class:`UnpicklableStateError` if a value written to ``record.state`` while
    planning cannot be sent to a worker process (what stages compute is checked as it is sent).
    """
    for key, value in dict.items(record.state):
        try:
            cloudpickle.dumps(value)
        except Exception as error:  # noqa: BLE001 - any pickling failure is reported the same way
            raise UnpicklableStateError(
                f"record {record.name!r} cannot be sent to a worker process: state[{key!r}] "
                f"holds a {type(value).__name__} that cannot be pickled ({error}). Create that "
                "value inside a stage, or run with n_jobs=1."
            ) from error


_watching = False


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker soon after its parent dies, even in the middle of a stage; once."""
    global _watching
    if _watching or os.getppid() != parent_pid:
        return
    _watching = True

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parafactory-parent-watch", daemon=True).start()
