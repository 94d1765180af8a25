"""The scheduler: the loop that runs a plan's steps on a backend, as soon as they are ready.

::

    run graph ──ready chains──▶ batches ──backend.submit──▶ workers
        ▲                                                       │
        │        aggregates and copies run here, in the parent  │
        └──── states applied to the parent's records ◀── backend.results

The run graph (``graph``) keeps what is waiting, ready, running, done, failed and
skipped; the backend does all that concerns its workers; the scheduler only feeds one
from the other, applies results to the parent's records, and publishes what happens as
events. Failures are per record; Ctrl-C, SIGTERM and SIGHUP stop the workers and keep
every finished record's state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Literal

from .._backends.base import Backend, Loss
from .._bounded import bounded
from .._errors import StageFailedError, StageTimeoutError, UpstreamFailedError, WorkerDiedError
from .._model.cache import Hit
from .._model.records import OutputOf, Record, copy_state
from .._model.reportables import replace as replace_reportables
from .._model.stages import (
    arguments_digest,
    execute,
    lookup,
    nothing_to_aggregate,
    say,
    take_outputs,
)
from .._model.time_limits import effective_limit
from .._run.summary import summary
from .capture import tagged
from .chains import ChainResult, ChainTask, StageFailure, WorkerSetup
from .events import (
    ChainRan,
    ChainsQueued,
    Events,
    LoadedFromCache,
    RecordFailed,
    RecordFinished,
    Retried,
    RunFinished,
    RunStarted,
    WorkerLost,
)
from .graph import RunGraph, State
from .interrupts import Terminated, stop_signals_raise, stops_the_run
from .plan import Step
from .tracebacks import RemoteTraceback

logger = logging.getLogger("parafactory.scheduler")
ErrorPolicy = Literal["raise", "continue"]
_POLL_SECONDS = 0.25
_BROKEN_POOL_SECONDS = 10.0


class Scheduler:
    """Runs every step of a plan once, respecting its dependencies."""

    def __init__(
        self,
        steps: Sequence[Step],
        backend: Backend,
        *,
        errors: ErrorPolicy,
        events: Events,
        setup: WorkerSetup,
        time_limited: bool = False,
    ) -> None:
        self.steps = steps
        self.backend = backend
        self.errors = errors
        self.events = events
        self.setup = setup
        self.time_limited = time_limited  # some stage has a time limit: watch the workers
        self.graph = RunGraph(steps)
        self.first_error: StageFailedError | None = None
        self._in_flight: dict[Future[Any], list[ChainTask]] = {}
        self._alone: Future[Any] | None = None  # a chain retried by itself
        self._references: dict[tuple[tuple[str, ...], bool], OutputOf] = {}
        self._computed: set[int] = set()  # ids of records that ran a stage (not all cached)
        self.cached = 0  # records finished with every stage loaded from the cache

    def run(self) -> None:
        """Run the plan; raise the first stage failure when ``errors="raise"``."""
        records = {id(step.record) for step in self.steps}
        self.events.publish(
            RunStarted(len(records), len(self.steps), self.backend.workers, time.time())
        )
        try:
            with stop_signals_raise():
                self._loop()
        except (KeyboardInterrupt, Terminated) as stop:
            self._abort(stop)
        self._finish()

    def _loop(self) -> None:
        graph = self.graph
        while not graph.settled:
            self._run_parent_steps()
            self._dispatch()
            if self._in_flight:
                self._collect()
            elif graph.stopped:
                return
            elif not graph.settled and not graph.has_ready_work():
                raise RuntimeError("parafactory scheduler stalled: steps wait on each other")

    # -- sending work ------------------------------------------------------------------

    def _dispatch(self) -> None:
        graph = self.graph
        if graph.stopped or self._alone is not None:
            return
        if not self._in_flight:
            # Alone means alone: a worker's death also takes what runs or waits beside it
            # (every task of a loky pool, every task queued on that dask worker).
            step = graph.next_alone()
            if step is not None:
                self._alone = self._submit([step], alone=True)
                return
        while len(self._in_flight) < self.backend.in_flight() and not graph.stopped:
            size = self.backend.batch_size(graph.ready_chains())
            batch: list[Step] = []
            while len(batch) < size and (step := graph.next_chain()) is not None:
                if not self._take_from_cache(step):
                    batch.append(step)
            if not batch:
                return
            future = self._submit(batch)
            if future.done():  # an executor that runs what it is given at once
                self._settle(future)

    def _take_from_cache(self, step: Step) -> bool:
        """Finish a chain whose every stage is cached without sending it (nothing loads)."""
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
        stages = tuple(spec.name for spec, _ in hits)
        self.events.publish(LoadedFromCache(record, stages, time.time()))
        self._done(step)
        return True

    def _submit(self, steps: list[Step], *, alone: bool = False) -> Future[Any]:
        tasks = [self.backend.task(step.id, step.record, step.calls) for step in steps]
        future = self.backend.submit(tasks)
        self._in_flight[future] = tasks
        self.events.publish(ChainsQueued([step.record for step in steps], time.time(), alone))
        return future

    # -- receiving results ---------------------------------------------------------------

    def _collect(self) -> None:
        done, _ = wait(list(self._in_flight), timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
        for future in done:
            if future in self._in_flight:  # else: handled while draining a broken pool
                self._settle(future)
        if self.time_limited:
            self.backend.stop_overdue(self._limit_of)

    def _limit_of(self, step_id: int, position: int) -> float | None:
        calls = self.steps[step_id].calls
        spec = calls[min(position, len(calls) - 1)].spec
        return effective_limit(spec.timeout, self.setup.timeout)

    def _settle(self, future: Future[Any]) -> None:
        """Apply a finished task's results, or deal with its loss."""
        tasks = self._in_flight.pop(future)
        if future is self._alone:
            self._alone = None
        error = future.exception()
        if error is None:
            self._apply_batch(tasks, future.result())
        else:
            self._lost(tasks, error)

    def _apply_batch(self, tasks: list[ChainTask], returned: list[Any]) -> None:
        """Apply a task's results, in order. A batch stopped early has fewer: the chains it
        did not run are sent again, unless the run is stopping."""
        results = self.backend.results(tasks, returned)
        for result in results:
            self._apply(result)
        if not self.graph.stopped:
            for task in reversed(tasks[len(results) :]):
                self.graph.resend(task.step_id)

    def _apply(self, result: ChainResult) -> None:
        step = self.steps[result.step_id]
        record = step.record
        record.state.update(result.changed)
        for key in result.removed:
            record.state.pop(key, None)
        if result.reportables:  # now this record's
            for stage_name, reported in result.reportables.items():
                replace_reportables(record, stage_name, reported)
        if result.stages:
            record.stages.extend(result.stages)  # the stages this chain ran
            keys = result.output_keys
            record.output = result.output if keys is None else self._output_of(keys)
            record._provenance = result.provenance
        self._note_computed(record, result.timings)
        self.events.publish(
            ChainRan(record, result.worker, result.timings, False, result.recomputed)
        )
        if result.failure is None:
            self._done(step)
        else:
            self._fail(step, _stage_error(record, result.failure))

    def _output_of(self, keys: tuple[tuple[str, ...], bool]) -> OutputOf:
        """One reference per set of output keys, shared by the records that need it."""
        reference = self._references.get(keys)
        if reference is None:
            reference = self._references[keys] = OutputOf(*keys)
        return reference

    # -- aggregates and copies, in the parent ----------------------------------------------

    def _run_parent_steps(self) -> None:
        while (step := self.graph.next_parent_step()) is not None:
            if step.copy_of is not None:  # record.make_copy(), now that its original is ready
                copy_state(step.copy_of, step.record)
                self._done(step)
                continue
            call = step.calls[0]
            nothing = nothing_to_aggregate(call.spec, step.record, call.group or (), call.kwargs)
            if nothing is not None:
                self._skip(step, nothing)
                continue
            started = time.time()
            try:
                with tagged(step.record.name):
                    outcome = execute(
                        call.spec,
                        step.record,
                        call.group,
                        call.args,
                        call.kwargs,
                        self.setup.cache,
                        self.setup.timeout,
                    )
            except BaseException as error:  # failures are per record
                if stops_the_run(error):
                    raise
                timing = (call.spec.name, started, time.time(), False)
                self.events.publish(ChainRan(step.record, "parent", [timing], aggregate=True))
                self._fail(step, _stage_error(step.record, StageFailure(call.spec.name, error, "")))
            else:
                say(logging.DEBUG, call.spec, step.record, outcome)
                timings = [(call.spec.name, started, time.time(), outcome.cached)]
                self._note_computed(step.record, timings)
                why = {call.spec.name: outcome.why} if outcome.why is not None else {}
                self.events.publish(ChainRan(step.record, "parent", timings, True, why))
                self._done(step)

    # -- dead workers ----------------------------------------------------------------------

    def _lost(self, tasks: list[ChainTask], error: BaseException) -> None:
        loss = self.backend.lost(tasks, error)
        if loss is None:  # the tasks' own error
            for task in tasks:
                step = self.steps[task.step_id]
                failure = StageFailure(step.calls[0].spec.name, error, "")
                self._fail(step, _stage_error(step.record, failure))
            return
        if loss.whole_pool:
            tasks = tasks + self._drain_broken_pool()
        names = tuple(self.steps[task.step_id].record.name for task in tasks)
        self.events.publish(WorkerLost(loss.description, names, time.time()))
        self._retry_after_death([task.step_id for task in tasks], loss)

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
        self._alone = None
        return lost

    def _retry_after_death(self, step_ids: list[int], loss: Loss) -> None:
        """Fail the chains that overran their time limit; send again those not to blame;
        retry the suspects alone, and fail those whose worker already died once."""
        if any(i in loss.innocent or i in loss.timed_out for i in step_ids):
            suspects: dict[int, int] = {}  # the death is explained
        else:  # each stage a dead worker was running; if unknown, every task
            suspects = {i: loss.suspects[i] for i in step_ids if i in loss.suspects}
            suspects = suspects or dict.fromkeys(step_ids, 0)
        for step_id in step_ids:
            step = self.steps[step_id]
            if step_id in loss.timed_out:
                self._fail(step, _timeout_error(step, *loss.timed_out[step_id]))
            elif step_id not in suspects:
                self.graph.resend(step_id)
            elif self.graph.died(step_id):
                self.events.publish(Retried(step.record, loss.description, time.time()))
            else:
                self._fail(step, _death_error(step, suspects[step_id], loss.description))

    # -- bookkeeping -----------------------------------------------------------------------

    def _note_computed(self, record: Record, timings: list[tuple[str, float, float, bool]]) -> None:
        """Remember a record that ran a stage, rather than load it from the cache."""
        if not all(timing[3] for timing in timings):
            self._computed.add(id(record))

    def _done(self, step: Step) -> None:
        self._finished(self.graph.done(step.id))

    def _fail(self, step: Step, error: StageFailedError) -> None:
        if step.record.error is None:
            step.record.error = error
        if self.first_error is None:
            self.first_error = error
        if self.errors == "raise" and not self.graph.stopped:
            self.graph.stop()
            self.backend.request_stop()
        self.events.publish(RecordFailed(step.record, error.stage_name, error, time.time()))
        self._finished(self.graph.failed(step.id, error))

    def _skip(self, step: Step, why: UpstreamFailedError) -> None:
        """Settle a step that will not run, because what it needs failed (``why``)."""
        if step.record.error is None:
            step.record.error = why
        logger.warning("%s", why)
        self._finished(self.graph.skipped(step.id))

    def _finished(self, records: list[Record]) -> None:
        """Announce records whose every step settled. One that was not run (its steps
        skipped, as records it needs failed) gets an error saying so: it did not finish."""
        for record in records:
            skipped = self.graph.first_skipped(record)
            if record.error is None and skipped is not None:
                needed = self.steps[self.graph.why(skipped.id)].record
                record.error = _not_run_error(record, skipped, needed)
            failed = record.error is not None
            cached = not failed and id(record) not in self._computed and bool(record.stages)
            self.cached += cached
            self.events.publish(RecordFinished(record, failed, time.time(), cached))

    # -- ending ----------------------------------------------------------------------------

    def _abort(self, stop: KeyboardInterrupt | Terminated) -> None:
        for future, tasks in list(self._in_flight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                self._apply_batch(tasks, future.result())
            future.cancel()
        self.backend.abort()
        how = "Ctrl-C" if isinstance(stop, KeyboardInterrupt) else str(stop)
        line = f"run interrupted by {how}: {self.summary()}; their states are kept"
        self.events.publish(RunFinished(line, True, time.time()))
        if isinstance(stop, Terminated):
            raise SystemExit(128 + stop.signum) from None
        raise KeyboardInterrupt().with_traceback(stop.__traceback__) from None  # not CtrlC

    def _finish(self) -> None:
        self.events.publish(RunFinished(self.summary(), False, time.time()))
        if self.first_error is not None and self.errors == "raise":
            raise self.first_error

    def summary(self) -> str:
        """How the run went, in a line (and a line per failed record)."""
        records = list({id(step.record): step.record for step in self.steps}.values())
        unsettled = {id(s.record) for s in self.steps if self.graph.state(s.id) not in _SETTLED}
        finished = sum(1 for r in records if r.error is None and id(r) not in unsettled)
        return summary(records, finished, self.cached)


_SETTLED = (State.OK, State.FAILED, State.SKIPPED)


def _stage_error(record: Record, failure: StageFailure) -> StageFailedError:
    """The error a failed record gets: the stage's exception wrapped, naming record and
    stage, with the worker's traceback; or, when parafactory already made that error
    about this record (a time limit, an output that cannot travel), that error itself."""
    original = failure.exception
    if isinstance(original, StageFailedError) and (
        failure.is_record_error or isinstance(original, StageTimeoutError)
    ):
        if failure.traceback:
            original.__cause__ = RemoteTraceback(failure.traceback)
        return original
    type_name = getattr(original, "type_name", type(original).__name__)
    message = f"stage {failure.stage_name!r} failed on record {record.name!r}: {type_name}"
    error = StageFailedError(
        bounded(f"{message}: {original}"),
        record_name=record.name,
        stage_name=failure.stage_name,
    )
    if failure.traceback:
        original.__cause__ = RemoteTraceback(failure.traceback)
    error.__cause__ = original
    return error


def _not_run_error(record: Record, skipped: Step, needed: Record) -> UpstreamFailedError:
    """The error of a record none of whose steps failed: its step ``skipped`` was not
    run, as a step of ``needed`` (the record it copies) did not finish."""
    return UpstreamFailedError(
        f"record {record.name!r} was not run: record {needed.name!r}, whose results it "
        "needs, did not finish (see its error); fix that and run again",
        record_name=record.name,
        stage_name=skipped.calls[0].spec.name if skipped.calls else "",
    )


def _timeout_error(step: Step, position: int, limit: float) -> StageTimeoutError:
    stage_name = step.calls[min(position, len(step.calls) - 1)].spec.name
    return StageTimeoutError(
        f"stage {stage_name!r} on record {step.record.name!r} ran longer than its time limit "
        f"of {limit:g} s and did not stop, so its worker was killed",
        record_name=step.record.name,
        stage_name=stage_name,
        limit=limit,
    )


def _death_error(step: Step, position: int, death: str) -> WorkerDiedError:
    stage_name = step.calls[min(position, len(step.calls) - 1)].spec.name
    return WorkerDiedError(
        f"record {step.record.name!r} lost its worker during stage {stage_name!r}: {death}. "
        "It was retried once, alone, and died again.",
        record_name=step.record.name,
        stage_name=stage_name,
    )
