"""The scheduler: runs a plan's steps on a backend's executor, as soon as their inputs are ready.

::

    plan steps ──ready chains──▶ batches ──submit──▶ executor ──▶ workers
        ▲                                                          │
        │          aggregates run here, in the parent              │
        └──── states applied to the parent's records ◀── results ──┘

It speaks only ``concurrent.futures`` (``submit``, ``wait``, ``Future``) and
keeps its own map of what is in flight, so when a worker dies it knows which
records were running (local workers mark each stage they start in a shared
memory slot) and retries only those, alone. Failures are per record; Ctrl-C, SIGTERM and
SIGHUP stop the workers and keep every finished record's state.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import math
import os
import signal
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Literal

from .._backends import Backend
from .._backends.local import log_listener as _log_listener
from .._backends.local.spill import unspill
from .._backends.local.status import RETIRED, request_stop, running_stages, running_steps
from .._bounded import bounded
from .._errors import StageFailedError, StageTimeoutError, UnpicklableOutputError, WorkerDiedError
from .._model.cache import Hit
from .._model.records import OutputOf, Record, copy_state
from .._model.stages import arguments_digest, execute, lookup, take_outputs
from .._model.time_limits import KILL_GRACE_SECONDS, effective_limit
from .._run import report as _report
from .._run.progress import Progress
from . import capture as _worker_logs
from .chains import ChainResult, ChainTask, StageFailure, WorkerSetup, run_chains, travelling_copy
from .interrupts import Terminated, stop_signals_raise, stops_the_run
from .plan import Step
from .travel import loads

logger = logging.getLogger("parafactory")

ErrorPolicy = Literal["raise", "continue"]
_TASK_SECONDS = 0.05  # batch short chains until a task takes about this long
_POLL_SECONDS = 0.25
_BROKEN_POOL_SECONDS = 10.0
_DEATHS_BEFORE_FAILING = 2  # the first death may be a neighbour's; the retry runs alone


class _Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, shown as its cause."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


class Scheduler:
    """Runs every step of a plan once, respecting its dependencies."""

    def __init__(
        self,
        steps: Sequence[Step],
        backend: Backend,
        *,
        errors: ErrorPolicy,
        progress: Progress,
        setup: WorkerSetup,
        time_limited: bool = False,
    ) -> None:
        self.steps = steps
        self.time_limited = time_limited  # some stage has a time limit: watch the workers
        self.backend = backend
        self.errors = errors
        self.progress = progress
        self.setup = setup
        self.first_error: StageFailedError | None = None
        self._outcomes: dict[int, _Outcome] = {}
        self._waiting = {step.id: step.needs for step in steps}
        self._doomed: set[int] = set()
        self._steps_left = collections.Counter(id(step.record) for step in steps)
        self._ready_chains: collections.deque[Step] = collections.deque()
        self._ready_aggregates: collections.deque[Step] = collections.deque()
        self._quarantine: collections.deque[Step] = collections.deque()
        self._isolated: Future[Any] | None = None
        self._deaths: collections.Counter[int] = collections.Counter()
        self._in_flight: dict[Future[Any], list[ChainTask]] = {}
        self._seconds_per_chain: float | None = None
        self._stopping = False
        self._overdue: dict[int, StageTimeoutError] = {}  # steps whose worker was killed
        self._references: dict[tuple[tuple[str, ...], bool], OutputOf] = {}
        for step in steps:
            if not step.needs:
                self._make_ready(step)

    def run(self) -> None:
        """Run the plan; raise the first stage failure when ``errors="raise"``."""
        try:
            with stop_signals_raise():
                self._loop()
        except (KeyboardInterrupt, Terminated) as stop:
            self._abort(stop)
        self._finish()

    def _loop(self) -> None:
        while len(self._outcomes) < len(self.steps):
            self._run_ready_aggregates()
            self._dispatch()
            if self._in_flight:
                self._collect()
            elif self._stopping:
                return
            elif len(self._outcomes) < len(self.steps) and not self._has_ready_work():
                raise RuntimeError("parafactory scheduler stalled: steps wait on each other")

    def _has_ready_work(self) -> bool:
        return bool(self._ready_aggregates or self._ready_chains or self._quarantine)

    # -- sending work ------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._stopping or self._isolated is not None:
            return
        if self._quarantine:
            # Alone means alone: a worker's death also kills what runs or waits beside it
            # (every task of a loky pool, every task queued on that dask worker).
            if not self._in_flight:
                self._isolated = self._submit([self._quarantine.popleft()])
            return
        limit = 2 * self.backend.workers
        while self._ready_chains and len(self._in_flight) < limit and not self._stopping:
            batch: list[Step] = []
            size = self._batch_size()
            while self._ready_chains and len(batch) < size:
                step = self._ready_chains.popleft()
                if not self._take_from_cache(step):
                    batch.append(step)
            if batch:
                future = self._submit(batch)
                if future.done():  # an executor that runs what it is given at once
                    self._settle(future)

    def _take_from_cache(self, step: Step) -> bool:
        """Finish a chain whose every stage is cached without dispatching it (nothing loads)."""
        record = step.record
        provenance = record._provenance
        hits = []
        for call in step.calls:
            arguments = arguments_digest(call.args, call.kwargs)
            found = lookup(call.spec, record, provenance, arguments, self.setup.cache)
            if not isinstance(found, Hit):
                return False  # the worker looks again, and says why it recomputes
            hits.append((call.spec, found))
            provenance = found.provenance
        for spec, found in hits:
            take_outputs(spec, record, found)
        self._resolve(step, _Outcome.OK)
        return True

    def _batch_size(self) -> int:
        if self._seconds_per_chain is None:
            return 1
        by_time = int(_TASK_SECONDS / max(self._seconds_per_chain, 1e-7))
        fair_share = math.ceil(len(self._ready_chains) / (2 * self.backend.workers))
        return max(1, min(by_time, fair_share))

    def _submit(self, steps: list[Step]) -> Future[Any]:
        pickled = self.backend.pickles_tasks  # pickling copies records: no copy needed here
        tasks = [
            ChainTask(step.id, step.record if pickled else travelling_copy(step.record), step.calls)
            for step in steps
        ]
        try:
            future = self.backend.executor.submit(run_chains, tasks, self.setup)
        except Exception as error:  # noqa: BLE001 - e.g. a user's broken pool: fail these tasks
            future = Future()
            future.set_exception(error)
        self._in_flight[future] = tasks
        return future

    # -- receiving results ---------------------------------------------------------------

    def _collect(self) -> None:
        done, _ = wait(list(self._in_flight), timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
        for future in done:
            if future in self._in_flight:  # else: handled while draining a broken pool
                self._settle(future)
        if self.time_limited and self.setup.scratch_dir is not None:
            self._stop_overdue(self.setup.scratch_dir)

    def _stop_overdue(self, scratch_dir: str) -> None:
        """Kill a local worker whose stage overran its time limit and did not stop by
        itself (stuck in C code): its record fails, the others are retried elsewhere."""
        for running in running_stages(scratch_dir):
            step = self.steps[running.step_id]
            spec = step.calls[min(running.position, len(step.calls) - 1)].spec
            limit = effective_limit(spec.timeout, self.setup.timeout)
            if limit is None or running.seconds < limit + KILL_GRACE_SECONDS:
                continue
            if running.step_id in self._overdue:
                continue
            self._overdue[running.step_id] = StageTimeoutError(
                f"stage {spec.name!r} on record {step.record.name!r} ran longer than its time "
                f"limit of {limit:g} s and did not stop, so its worker was killed",
                record_name=step.record.name,
                stage_name=spec.name,
                limit=limit,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signal.SIGKILL)

    def _settle(self, future: Future[Any]) -> None:
        """Apply a finished task's results, or deal with its loss."""
        tasks = self._in_flight.pop(future)
        if future is self._isolated:
            self._isolated = None
        error = future.exception()
        if error is None:
            self._apply_batch(tasks, future.result())
        else:
            self._lost(tasks, error)

    def _apply_batch(self, tasks: list[ChainTask], results: list[ChainResult | bytes]) -> None:
        """Apply a batch's results, in task order. A batch stopped early has fewer: the
        tasks it did not run are sent again, unless the run is stopping."""
        decoded = [_decoded(task, result) for task, result in zip(tasks, results, strict=False)]
        if decoded:  # one worker ran them: its last count covers every log line they made
            _log_listener.catch_up(decoded[-1].logs_sent)
        for result in decoded:
            self._apply(result)
        if not self._stopping:
            for task in reversed(tasks[len(decoded) :]):
                self._ready_chains.appendleft(self.steps[task.step_id])

    def _apply(self, result: ChainResult) -> None:
        step = self.steps[result.step_id]
        record = step.record
        record.state.update(unspill(result.changed))
        for key in result.removed:
            record.state.pop(key, None)
        if result.stages:
            record.stages.extend(result.stages)  # the stages this chain ran
            keys = result.output_keys
            record.output = result.output if keys is None else self._output_of(keys)
            record._provenance = result.provenance
        if result.logs:
            _log_listener.replay(result.logs)
        self._learn_chain_seconds(result.seconds)
        if result.failure is None:
            self._resolve(step, _Outcome.OK)
        else:
            self._fail(step, _stage_error(record, result.failure))

    def _output_of(self, keys: tuple[tuple[str, ...], bool]) -> OutputOf:
        """One reference per set of output keys, shared by the records that need it."""
        reference = self._references.get(keys)
        if reference is None:
            reference = self._references[keys] = OutputOf(*keys)
        return reference

    def _learn_chain_seconds(self, seconds: float) -> None:
        previous = self._seconds_per_chain
        self._seconds_per_chain = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    # -- aggregates, in the parent ---------------------------------------------------------

    def _run_ready_aggregates(self) -> None:
        while self._ready_aggregates and not self._stopping:
            step = self._ready_aggregates.popleft()
            if step.copy_of is not None:  # record.make_copy(), now that its original is ready
                copy_state(step.copy_of, step.record)
                self._resolve(step, _Outcome.OK)
                continue
            call = step.calls[0]
            try:
                with _worker_logs.tagged(step.record.name):
                    execute(
                        call.spec,
                        step.record,
                        call.group,
                        call.args,
                        call.kwargs,
                        self.setup.cache,
                        self.setup.timeout,
                    )
            except BaseException as error:  # noqa: BLE001 - failures are per record
                if stops_the_run(error):
                    raise
                self._fail(step, _stage_error(step.record, StageFailure(call.spec.name, error, "")))
            else:
                self._resolve(step, _Outcome.OK)

    # -- dead workers ----------------------------------------------------------------------

    def _lost(self, tasks: list[ChainTask], error: BaseException) -> None:
        death = self.backend.death(error)
        if death is None:
            for task in tasks:
                step = self.steps[task.step_id]
                failure = StageFailure(_first_stage(step), error, "")
                self._fail(step, _stage_error(step.record, failure))
            return
        if self.backend.one_death_fails_all:
            tasks = tasks + self._drain_broken_pool()
            self.backend.restart()
        self._retry_after_death(tasks, death)

    def _drain_broken_pool(self) -> list[ChainTask]:
        """Collect what the other tasks of a broken pool finished; return the lost ones."""
        pending = list(self._in_flight)
        wait(pending, timeout=_BROKEN_POOL_SECONDS)
        lost: list[ChainTask] = []
        for future in pending:
            tasks = self._in_flight.pop(future)
            if future.done() and future.exception() is None:
                self._apply_batch(tasks, future.result())
            else:
                future.cancel()
                lost += tasks
        self._isolated = None
        return lost

    def _retry_after_death(self, tasks: list[ChainTask], death: str) -> None:
        ids = [task.step_id for task in tasks]
        scratch = self.setup.scratch_dir
        running = running_steps(scratch) if scratch is not None else {}
        explained = {i for i in ids if i in self._overdue or running.get(i) == RETIRED}
        if explained:  # a worker killed for its time limit, or one that retired
            suspects: set[int] = set()
        else:  # each stage a dead worker was running; if unknown, every task
            suspects = {i for i in ids if i in running} or set(ids)
        for step_id in ids:
            step = self.steps[step_id]
            position = running.get(step_id, 0)
            if step_id in self._overdue:
                self._fail(step, self._overdue.pop(step_id))
                continue
            if step_id not in suspects:
                self._ready_chains.appendleft(step)
                continue
            self._deaths[step_id] += 1
            if self._deaths[step_id] < _DEATHS_BEFORE_FAILING:
                logger.warning(
                    "%s while running record %r; retrying it alone", death, step.record.name
                )
                self._quarantine.append(step)
            else:
                self._fail(step, _death_error(step, position, death))

    # -- bookkeeping -----------------------------------------------------------------------

    def _fail(self, step: Step, error: StageFailedError) -> None:
        logger.error("%s", error, exc_info=error.__cause__ is not None and error)
        if step.record.error is None:
            step.record.error = error
        if self.first_error is None:
            self.first_error = error
        if self.errors == "raise" and not self._stopping:
            self._stopping = True
            if self.setup.scratch_dir is not None:
                request_stop(self.setup.scratch_dir)
        self._resolve(step, _Outcome.FAILED)

    def _resolve(self, step: Step, outcome: _Outcome) -> None:
        self._outcomes[step.id] = outcome
        self._count_record_step(step.record)
        for later_id in step.needed_by:
            later = self.steps[later_id]
            if outcome is not _Outcome.OK and step.record in (later.record, later.copy_of):
                self._doomed.add(later_id)  # a record's later stages (or copy) need its earlier
            self._waiting[later_id] -= 1
            if self._waiting[later_id] == 0:
                if later_id in self._doomed:
                    self._resolve(later, _Outcome.SKIPPED)
                else:
                    self._make_ready(later)

    def _make_ready(self, step: Step) -> None:
        (self._ready_aggregates if step.is_aggregate else self._ready_chains).append(step)

    def _count_record_step(self, record: Record) -> None:
        self._steps_left[id(record)] -= 1
        if self._steps_left[id(record)] == 0:
            self.progress.advance(failed=record.error is not None)

    # -- ending ----------------------------------------------------------------------------

    def _abort(self, stop: KeyboardInterrupt | Terminated) -> None:
        for future, tasks in list(self._in_flight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                self._apply_batch(tasks, future.result())
            future.cancel()
        self.backend.abort()
        how = "Ctrl-C" if isinstance(stop, KeyboardInterrupt) else str(stop)
        line = f"run interrupted by {how}: {self._summary()}; their states are kept"
        logger.warning("%s", line)
        self.progress.close(line)
        if isinstance(stop, Terminated):
            raise SystemExit(128 + stop.signum) from None
        raise KeyboardInterrupt().with_traceback(stop.__traceback__) from None  # not CtrlC

    def _finish(self) -> None:
        line = self._summary()
        if self.first_error is not None and self.errors == "continue":
            logger.warning("%s", line)
        self.progress.close(line if self.first_error is not None else None)
        if self.first_error is not None and self.errors == "raise":
            raise self.first_error

    def _summary(self) -> str:
        records = list({id(step.record): step.record for step in self.steps}.values())
        return _report.summary(records, self.progress.done - self.progress.failed)


def _first_stage(step: Step) -> str:
    return step.calls[0].spec.name


def _decoded(task: ChainTask, result: ChainResult | bytes) -> ChainResult:
    """A worker's result for ``task``, unpickled; one that cannot be read here fails its
    own record (nothing of it can be applied)."""
    if not isinstance(result, bytes):
        return result
    try:
        decoded = ChainResult(*loads(result))
    except Exception as error:  # noqa: BLE001 - whatever breaks, it breaks this record only
        stage_name = task.calls[-1].spec.name
        failure = UnpicklableOutputError(
            f"the result of record {task.record.name!r} (stages up to {stage_name!r}) cannot "
            f"be unpickled in this process ({type(error).__name__}: {error}); the classes its "
            "state holds must be importable here, or run with n_jobs=1",
            record_name=task.record.name,
            stage_name=stage_name,
        )
        failed = StageFailure(stage_name, failure, "", is_record_error=True)
        return ChainResult(
            task.step_id, {}, [], [], None, None, task.record._provenance, failed, 0.0
        )
    return decoded


def _stage_error(record: Record, failure: StageFailure) -> StageFailedError:
    """The error a failed record gets: the stage's exception wrapped, naming record and
    stage, with the worker's traceback; or, when parafactory already made that error
    about this record (a time limit, an output that cannot travel), that error itself."""
    original = failure.exception
    if isinstance(original, StageFailedError) and (
        failure.is_record_error or isinstance(original, StageTimeoutError)
    ):
        if failure.traceback:
            original.__cause__ = _RemoteTraceback(failure.traceback)
        return original
    type_name = getattr(original, "type_name", type(original).__name__)
    message = f"stage {failure.stage_name!r} failed on record {record.name!r}: {type_name}"
    error = StageFailedError(
        bounded(f"{message}: {original}"),
        record_name=record.name,
        stage_name=failure.stage_name,
    )
    if failure.traceback:
        original.__cause__ = _RemoteTraceback(failure.traceback)
    error.__cause__ = original
    return error


def _death_error(step: Step, position: int, death: str) -> WorkerDiedError:
    stage_name = step.calls[min(position, len(step.calls) - 1)].spec.name
    return WorkerDiedError(
        f"record {step.record.name!r} lost its worker during stage {stage_name!r}: {death}. "
        "It was retried once, alone, and died again.",
        record_name=step.record.name,
        stage_name=stage_name,
    )
