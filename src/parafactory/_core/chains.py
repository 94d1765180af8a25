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
import operator
import os
import time
import traceback
import uuid
from typing import Any, NamedTuple

from .._backends.local.isolation import must_retire, put_back, watch_this_worker, work_in
from .._backends.local.spill import spill_large
from .._backends.local.status import mark_idle, mark_retired, mark_running, stop_requested
from .._bounded import bounded
from .._errors import UnpicklableOutputError
from .._model.cache import Artifact, Cache, Provenance
from .._model.records import ManagerView, OutputOf, Record
from .._model.stages import execute, stored_artifact
from . import capture as _worker_logs
from .interrupts import stops_the_run
from .plan import Call
from .travel import dumps, travelling_exception, why_unpicklable


class ChainTask(NamedTuple):
    """One record's chain: the step it belongs to, a copy of the record, the calls to make."""

    step_id: int
    record: Record
    calls: list[Call]


@dataclasses.dataclass
class StageFailure:
    """A stage's exception as it left the worker, with the worker's formatted traceback.

    ``is_record_error``: the exception is already the error to give the record (one
    parafactory raised about the record), not one a stage raised.
    """

    stage_name: str
    exception: BaseException
    traceback: str
    is_record_error: bool = False


@dataclasses.dataclass
class ChainResult:
    """What a chain changed in its record's state, and how it ended.

    It travels to the parent as a plain tuple (:meth:`as_tuple`): pickled one record at a
    time, a tuple of built-in values costs a fraction of a dataclass or named tuple.
    """

    step_id: int
    changed: dict[str, Any]
    removed: list[str]
    stages: list[str]
    output: Any  # what the last stage returned, when it is not among its outputs
    output_keys: tuple[tuple[str, ...], bool] | None  # else: where in the state it is
    provenance: Provenance
    failure: StageFailure | None
    seconds: float
    logs: list[Any] = dataclasses.field(default_factory=list)
    logs_sent: tuple[int, int] | None = None  # (pid, count) of records sent live so far

    def as_tuple(self) -> tuple[Any, ...]:
        """The fields, in order: ``ChainResult(*result.as_tuple())`` rebuilds it."""
        return _CHAIN_RESULT_FIELDS(self)


_CHAIN_RESULT_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(ChainResult)))


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """How a worker reports back (the parent's pid, its log socket, the log level) and caches."""

    parent_pid: int
    log_address: str | None
    log_level: int
    cache: Cache | None = None
    scratch_dir: str | None = None  # local workers: for large results and status slots
    stop_at_failure: bool = False  # errors="raise": a batch starts no chain after a failure
    pickle_results: bool = False  # results go to another process: pickle each on its own
    timeout: float | None = None  # seconds any stage may run (the tighter of it and its own)
    manager: ManagerView | None = None  # what stages see as record.manager
    cwd: str | None = None  # local workers run in the parent's working directory


def travelling_copy(record: Record) -> Record:
    """A copy of ``record`` that a worker may change without touching the parent's record."""
    rebuild, arguments = record.__reduce__()
    copy: Record = rebuild(*arguments)
    copy.stages = list(copy.stages)
    return copy


def run_chains(tasks: list[ChainTask], setup: WorkerSetup) -> list[ChainResult | bytes]:
    """Worker entry point: run each task's chain and return one result per task, in order
    (fewer when ``errors="raise"`` stopped the batch early). Results that go back to
    another process are pickled one by one (see ``_pickling``)."""
    local_worker = setup.scratch_dir is not None and os.getpid() != setup.parent_pid
    if local_worker:
        _isolate_records(tasks, setup)
    results: list[ChainResult | bytes] = []
    last: ChainResult | None = None
    stop_early = False
    with _worker_logs.worker_logging(
        setup.parent_pid, setup.log_address, setup.log_level
    ) as collected:
        for task in tasks:
            if stop_early or (
                last is not None and setup.stop_at_failure and _stopping(last, setup)
            ):
                break  # the tasks not run get no result: the parent resends or drops them
            last = run_chain(task, setup)
            if local_worker:
                put_back(task.record.name)
                if must_retire():  # the rest of the batch goes back to the parent to resend
                    stop_early = True
            last.changed = spill_large(last.changed, setup.scratch_dir)
            if collected is not None:
                last.logs = collected.drain()
            last.logs_sent = _worker_logs.records_sent()
            results.append(_encoded(last, task, setup) if setup.pickle_results else last)
            if setup.scratch_dir is not None:
                mark_idle(setup.scratch_dir)
    return results


def _isolate_records(tasks: list[ChainTask], setup: WorkerSetup) -> None:
    """In a reused local worker: watch what stages change, and retire (exit before
    running anything) if an earlier record left it in a state it cannot undo."""
    assert setup.scratch_dir is not None
    if must_retire():
        mark_retired(setup.scratch_dir, tasks[0].step_id)
        os._exit(0)
    watch_this_worker()
    if setup.cwd is not None:
        work_in(setup.cwd)


def _stopping(last: ChainResult, setup: WorkerSetup) -> bool:
    """With ``errors="raise"``: whether a batch stops before its next chain, after a failure
    here or, for local workers, anywhere in the run (the parent raises the stop flag)."""
    if last.failure is not None:
        return True
    return setup.scratch_dir is not None and stop_requested(setup.scratch_dir)


def run_chain(task: ChainTask, setup: WorkerSetup) -> ChainResult:
    """Run one chain of stages on the task's record, stopping at the first failure."""
    record = task.record
    record.manager = setup.manager
    stages_before = len(record.stages)
    before = dict(dict.items(record.state)) if dict.__len__(record.state) else {}
    started = time.perf_counter()
    failure = None
    with _worker_logs.tagged(record.name):
        for position, call in enumerate(task.calls):
            if setup.scratch_dir is not None:
                mark_running(setup.scratch_dir, task.step_id, position)
            try:
                execute(call.spec, record, None, call.args, call.kwargs, setup.cache, setup.timeout)
            except BaseException as error:  # noqa: BLE001 - a stage's failure is its record's
                if _stops_the_run(error, setup):
                    raise
                failure = StageFailure(
                    call.spec.name, travelling_exception(error), bounded(traceback.format_exc())
                )
                break
    state, output = record.state, record._output
    loaded: dict[str, Artifact] = getattr(state, "loaded", {})  # read from disk in this chain
    changed = {  # every value, as a stage may change one in place; on disk, as an artifact
        key: loaded.get(key, value)
        for key, value in dict.items(state)
        if not (isinstance(value, Artifact) and before.get(key) is value)
    }
    in_state = isinstance(output, OutputOf)
    return ChainResult(
        task.step_id,
        changed,
        [key for key in before if key not in state] if before else [],
        record.stages[stages_before:],
        None if in_state else output,
        (output.keys, output.several) if in_state else None,
        record._provenance,
        failure,
        time.perf_counter() - started,
    )


def _stops_the_run(error: BaseException, setup: WorkerSetup) -> bool:
    """Ctrl-C and SIGTERM/SIGHUP in the parent's own process stop the run; anything a
    stage raises itself (``SystemExit``, ``KeyboardInterrupt`` too) is its failure."""
    return os.getpid() == setup.parent_pid and stops_the_run(error)


def _encoded(result: ChainResult, task: ChainTask, setup: WorkerSetup) -> bytes:
    """``result`` pickled for the parent. A value that cannot be pickled goes back as its
    cache file if its stage has a cacher; otherwise it stays here and the record fails
    with :class:`UnpicklableOutputError` at the stage that made it."""
    try:
        return dumps(result.as_tuple())
    except Exception:  # noqa: BLE001 - find the culprits below, value by value
        pass
    culprits = {key: why_unpicklable(value) for key, value in result.changed.items()}
    for key, error in culprits.items():
        if error is None:
            continue
        stored = _stored_artifact(key, task, setup)
        if stored is not None:
            result.changed[key] = stored
            continue
        del result.changed[key]
        if result.failure is None or not result.failure.is_record_error:
            result.failure = _unpicklable_output(key, error, task, result)
    if why_unpicklable(result.output) is not None:
        result.output = None
    return dumps(result.as_tuple())


def _producer(key: str, task: ChainTask) -> Call | None:
    """The last call of the chain whose stage outputs ``key``."""
    producers = [call for call in task.calls if key in call.spec.outputs]
    return producers[-1] if producers else None


def _stored_artifact(key: str, task: ChainTask, setup: WorkerSetup) -> Artifact | None:
    """The cache file this chain just wrote for output ``key``, if its stage caches it."""
    call = _producer(key, task)
    if call is None or setup.cache is None or not call.spec.cachers:
        return None
    return stored_artifact(call.spec, task.record, call.args, call.kwargs, setup.cache, key)


def _unpicklable_output(
    key: str, error: Exception, task: ChainTask, result: ChainResult
) -> StageFailure:
    call = _producer(key, task)
    stage_name = call.spec.name if call is not None else result.stages[-1]
    record_name = task.record.name
    value_type = type(task.record.state.get(key)).__name__
    failure = UnpicklableOutputError(
        f"stage {stage_name!r} on record {record_name!r}: output {key!r} is a {value_type} "
        f"that cannot be pickled back from the worker process ({error}). Give the stage a "
        f"cacher for {key!r} (its file travels instead), return something picklable, or "
        "run with n_jobs=1.",
        record_name=record_name,
        stage_name=stage_name,
    )
    _keep_stages_before(stage_name, task, result)
    return StageFailure(stage_name, failure, "", is_record_error=True)


def _keep_stages_before(stage_name: str, task: ChainTask, result: ChainResult) -> None:
    """Leave out of ``result`` what ``stage_name`` and the stages after it made: the record
    ends as if the chain had stopped there. Its provenance is then nobody's, so nothing
    cached downstream of it can count as valid for it."""
    if stage_name not in result.stages:
        return
    position = result.stages.index(stage_name)
    for call in task.calls[position:]:
        for output in call.spec.outputs:
            result.changed.pop(output, None)
    result.stages = result.stages[:position]
    result.provenance = f"incomplete-{uuid.uuid4().hex}"
