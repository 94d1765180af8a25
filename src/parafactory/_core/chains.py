"""What runs in a worker: one record's chain of stages, in isolation.

The parent sends :class:`ChainTask` batches; for each, the worker runs the stages on its
copy of the record through the same runner as eager mode and sends back a
:class:`ChainResult`: what the chain changed in the record's state (values a stage may
have changed in place included; artifacts still on disk left out), how long each stage
took, and how the chain ended. A failing stage stops its chain; what the earlier stages
computed still comes back. Around the chains, a backend's :class:`WorkerHooks` do what
its workers need (status slots, log channels, isolation, spilling large results).
Everything here is module-level and picklable, and none of it knows about the manager or
any backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import operator
import os
import socket
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

from .._bounded import bounded
from .._errors import UnpicklableOutputError
from .._model.cache import Artifact, Cache, Provenance
from .._model.records import ManagerView, OutputOf, Record
from .._model.reportables import Reportable, travelling
from .._model.stages import execute, say, stored_artifact
from .capture import tagged
from .interrupts import stops_the_run
from .plan import Call
from .travel import dumps, loads, travelling_exception, why_unpicklable

WORKER = f"{socket.gethostname()}:{os.getpid()}"  # re-read in each worker: see worker_name


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


Timing = tuple[str, float, float, bool]
"""One stage run: its name, when it started and ended (``time.time()``), from the cache."""


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
    timings: list[Timing]
    worker: str  # "host:pid" of the process that ran it
    logs: list[Any] = dataclasses.field(default_factory=list)
    logs_sent: tuple[int, int] | None = None  # (pid, count) of records sent live so far
    reportables: dict[str, list[Reportable]] | None = None  # by stage, what stages reported
    recomputed: dict[str, str] = dataclasses.field(default_factory=dict)  # stage: why

    @property
    def seconds(self) -> float:
        """How long the chain took."""
        return self.timings[-1][2] - self.timings[0][1] if self.timings else 0.0

    def as_tuple(self) -> tuple[Any, ...]:
        """The fields, in order: ``ChainResult(*result.as_tuple())`` rebuilds it."""
        return _CHAIN_RESULT_FIELDS(self)


_CHAIN_RESULT_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(ChainResult)))


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What every chain of a run needs, wherever it runs."""

    parent_pid: int
    cache: Cache | None = None
    stop_at_failure: bool = False  # errors="raise": a batch starts no chain after a failure
    timeout: float | None = None  # seconds any stage may run (the tighter of it and its own)
    manager: ManagerView | None = None  # what stages see as record.manager

    def absolute(self) -> WorkerSetup:
        """This setup with its paths made absolute here, in the parent: for workers that
        work in another directory (a dask worker), where a relative path would name
        another place."""
        cache = self.cache
        if cache is not None:
            cache = dataclasses.replace(cache, directory=cache.directory.absolute())
        manager = self.manager
        if manager is not None:
            path = os.path.abspath(manager.cache_path)
            manager = dataclasses.replace(manager, cache_path=path, cache=cache)
        return dataclasses.replace(self, cache=cache, manager=manager)


class WorkerHooks:
    """What a backend does in its workers around the chains of a batch. This base does
    nothing: chains run in the parent's own process, and results stay objects."""

    @contextlib.contextmanager
    def batch(self, tasks: list[ChainTask]) -> Iterator[None]:
        """Around a batch: open what its chains need."""
        yield

    @contextlib.contextmanager
    def chain(self, task: ChainTask) -> Iterator[list[Any]]:
        """Around one chain: the record is named in what its stages log and print; yields
        the list of log records to send back with its result."""
        with tagged(task.record.name) as collected:
            yield collected

    def stage_started(self, step_id: int, position: int) -> None:
        """A stage starts (cheap: it runs for every stage)."""

    def chain_ended(self, task: ChainTask) -> bool:
        """A chain ended; returns whether the batch must stop here (its other tasks go
        back to the parent to send again)."""
        return False

    def stop_requested(self) -> bool:
        """Whether the parent asked to start no further chain (``errors="raise"``)."""
        return False

    def finish(self, result: ChainResult, task: ChainTask, setup: WorkerSetup) -> Any:
        """The result as it goes back to the parent."""
        return result


def travelling_copy(record: Record) -> Record:
    """A copy of ``record`` that a worker may change without touching the parent's record."""
    rebuild, arguments = record.__reduce__()
    copy: Record = rebuild(*arguments)
    copy.stages = list(copy.stages)
    return copy


def run_chains(tasks: list[ChainTask], setup: WorkerSetup, hooks: WorkerHooks) -> list[Any]:
    """Worker entry point: run each task's chain and return one result per task, in order
    (fewer when the batch stopped early: ``errors="raise"``, or a worker that must retire)."""
    results: list[Any] = []
    with hooks.batch(tasks):
        for task in tasks:
            result = run_chain(task, setup, hooks)
            results.append(hooks.finish(result, task, setup))
            if hooks.chain_ended(task) or (
                setup.stop_at_failure and (result.failure is not None or hooks.stop_requested())
            ):
                break  # the tasks not run get no result: the parent resends or drops them
    return results


def run_chain(task: ChainTask, setup: WorkerSetup, hooks: WorkerHooks) -> ChainResult:
    """Run one chain of stages on the task's record, stopping at the first failure."""
    record = task.record
    record.manager = setup.manager
    stages_before = len(record.stages)
    before = dict(dict.items(record.state)) if dict.__len__(record.state) else {}
    failure = None
    timings: list[Timing] = []
    recomputed: dict[str, str] = {}
    with hooks.chain(task) as logs:
        for position, call in enumerate(task.calls):
            hooks.stage_started(task.step_id, position)
            started = time.time()
            try:
                outcome = execute(
                    call.spec, record, None, call.args, call.kwargs, setup.cache, setup.timeout
                )
            except BaseException as error:  # a stage's failure is its record's
                if _stops_the_run(error, setup):
                    raise
                timings.append((call.spec.name, started, time.time(), False))
                failure = StageFailure(
                    call.spec.name, travelling_exception(error), bounded(traceback.format_exc())
                )
                break
            say(logging.DEBUG, call.spec, record, outcome)
            timings.append((call.spec.name, started, time.time(), outcome.cached))
            if outcome.why is not None:
                recomputed[call.spec.name] = outcome.why
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
        timings,
        worker_name(),
        logs,
        reportables=travelling(record._reportables),
        recomputed=recomputed,
    )


def worker_name() -> str:
    """This process, as ``host:pid``."""
    global WORKER
    if not WORKER.endswith(f":{os.getpid()}"):  # a forked child: its own pid
        WORKER = f"{socket.gethostname()}:{os.getpid()}"
    return WORKER


def _stops_the_run(error: BaseException, setup: WorkerSetup) -> bool:
    """Ctrl-C and SIGTERM/SIGHUP in the parent's own process stop the run; anything a
    stage raises itself (``SystemExit``, ``KeyboardInterrupt`` too) is its failure."""
    return os.getpid() == setup.parent_pid and stops_the_run(error)


def encoded(result: ChainResult, task: ChainTask, setup: WorkerSetup) -> bytes:
    """``result`` pickled for the parent, on its own (a value that cannot travel then
    fails its own record, never its batch). A value that cannot be pickled goes back as
    its cache file if its stage has a cacher; otherwise it stays here and the record
    fails with :class:`UnpicklableOutputError` at the stage that made it."""
    try:
        return dumps(result.as_tuple())
    except Exception:  # find the culprits below, value by value
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
    _leave_unpicklable_reportables(result, task)
    return dumps(result.as_tuple())


def decoded(task: ChainTask, result: Any) -> ChainResult:
    """In the parent: a worker's result for ``task``, unpickled if it was pickled. One
    that cannot be read here fails its own record (nothing of it can be applied)."""
    if not isinstance(result, bytes):
        return result  # type: ignore[no-any-return]
    try:
        return ChainResult(*loads(result))
    except Exception as error:  # whatever breaks, it breaks this record only
        stage_name = task.calls[-1].spec.name
        failure = UnpicklableOutputError(
            f"the result of record {task.record.name!r} (stages up to {stage_name!r}) cannot "
            f"be unpickled in this process ({type(error).__name__}: {error}); the classes its "
            "state holds must be importable here, or run with n_jobs=1",
            record_name=task.record.name,
            stage_name=stage_name,
        )
        failed = StageFailure(stage_name, failure, "", is_record_error=True)
        provenance = task.record._provenance
        return ChainResult(task.step_id, {}, [], [], None, None, provenance, failed, [], "")


def _leave_unpicklable_reportables(result: ChainResult, task: ChainTask) -> None:
    """Leave out of ``result`` each reportable that cannot be pickled; its record fails,
    at the stage that reported it."""
    for stage_name, listed in (result.reportables or {}).items():
        for reportable in list(listed):
            error = why_unpicklable(reportable)
            if error is None:
                continue
            listed.remove(reportable)
            if result.failure is None or not result.failure.is_record_error:
                failure = UnpicklableOutputError(
                    f"stage {stage_name!r} on record {task.record.name!r} reported "
                    f"{reportable!r}, which cannot be pickled back from the worker process "
                    f"({error}). Keep what a reportable holds picklable (FigureReporter "
                    "holds the picture, not the figure), or run with n_jobs=1.",
                    record_name=task.record.name,
                    stage_name=stage_name,
                )
                result.failure = StageFailure(stage_name, failure, "", is_record_error=True)


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
