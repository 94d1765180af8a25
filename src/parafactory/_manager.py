"""The artifact manager: one experiment run, its records, its files, and its sweeps."""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
import os
import platform
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from ._backends import Backend, open_backend
from ._backends.base import RunSettings
from ._core.chains import WorkerSetup
from ._core.events import Events, RunFinished
from ._core.plan import Plan, Planner
from ._core.scheduler import ErrorPolicy, Scheduler
from ._errors import PlanError, UnpicklableStateError
from ._model.cache import Cache
from ._model.parameters import ExperimentParameters, parameters_representation
from ._model.records import ManagerView, Record, planning
from ._model.reportables import Reportable, qualify
from ._model.stages import check_timeout, spec_of
from ._run.cpus import resolve_n_jobs
from ._run.logs import RunLog, RunLogSubscriber
from ._run.progress import Progress
from ._run.report import RunObserver, RunReport, notebook
from ._run.store import next_run_number

Experiment = Callable[[Any, "ArtifactManager"], Any]


class ArtifactManager:
    """One experiment run: a name and number, a timestamp, a log file and its records.

    Files go under ``root`` (the working directory unless told otherwise): the
    cache in ``data/cache``, run numbers in ``data/runs``, logs in ``logs`` and
    reports in ``reports``; each can be set on its own. ``dry=True`` writes
    nothing at all. Each ``map``/``run`` ends by writing the HTML report of the
    run (see :meth:`write_report`) unless ``report=False``. ``notes`` (free text: what
    this run is for) are kept in the run's description and its report.

    >>> manager = ArtifactManager("notebook_example_0")
    >>> manager.run_number, manager.log_path.name  # the date and time it was made
    (1, 'notebook_example_0_1_...-T....log')
    """

    def __init__(
        self,
        name: str = "experiment",
        *,
        root: str | Path = ".",
        cache_dir: str | Path | None = None,
        runs_dir: str | Path | None = None,
        logs_dir: str | Path | None = None,
        reports_dir: str | Path | None = None,
        dry: bool = False,
        overwrite: bool = False,
        overwrite_stages: Iterable[str] = (),
        log_level: int = logging.INFO,
        console_log: bool = True,
        report: bool = True,
        notes: str | None = None,
    ) -> None:
        _check_name(name)
        self.name = name
        self.notes = notes
        self.dry = dry
        self.overwrite = overwrite
        self.overwrite_stages = list(overwrite_stages)
        self.log_level = log_level
        self.report = report
        self.cache_dir = Path(root, cache_dir or "data/cache")
        self.reports_dir = Path(root, reports_dir or "reports")
        self.records: list[Record] = []
        self._hidden_reporters: dict[int, Record] = {}  # records not listed that reported
        self._reported = 0  # reportables that joined a record here so far
        self._observer = RunObserver()
        self.run_summary: str | None = None  # how the last run() ended
        self.report_path: Path | None = None  # the report last written
        self._registered: set[str] = set()  # parameter hashes already in the registry
        self.timestamp = datetime.datetime.now()
        self.run_number = next_run_number(Path(root, runs_dir or "data/runs"), name, dry=dry)
        self.reference = f"{name}_{self.run_number}_{self.timestamp:%Y-%m-%d-T%H%M%S}"
        logs = Path(root, logs_dir or "logs")
        self.log_path: Path | None = None if dry else logs / f"{self.reference}.log"
        self.run_info: dict[str, Any] = self._describe_run()
        self._log = RunLog(self.log_path, log_level, console=console_log)
        self._close_log = weakref.finalize(self, self._log.close)

    @property
    def cache(self) -> Cache | None:
        """The cache stages use, with this manager's overwrite settings (``None`` when dry).

        ``overwrite=True`` recomputes every cached stage; ``overwrite_stages`` names the
        stages to recompute. Either way, what reads their outputs recomputes too.
        """
        return None if self.dry else self.cache_settings()

    def cache_settings(self) -> Cache:
        """The cache directory with this manager's overwrite settings, even when dry (a dry
        run neither reads nor writes it; ``parafactory plan`` reads it)."""
        stages = frozenset(self.overwrite_stages)
        return Cache(
            self.cache_dir, prefix=self.name, overwrite=self.overwrite, overwrite_stages=stages
        )

    @property
    def cache_path(self) -> str:
        """The cache directory, as curifactory names it."""
        return str(self.cache_dir)

    @property
    def experiment_name(self) -> str:
        """curifactory's name for :attr:`name`."""
        return self.name

    def stage_logs(self, record_name: str) -> contextlib.AbstractContextManager[None]:
        """Around a stage called eagerly on one of this manager's records."""
        return self._log.stage(record_name)

    def view(self) -> ManagerView:
        """What stages running in workers see of this manager (``record.manager``)."""
        return ManagerView(
            self.name, self.cache_path, self.dry, self.run_number, self.reference, self.cache
        )

    def _register(self, record: Record) -> None:
        record.index = len(self.records)
        self.records.append(record)

    @property
    def reportables(self) -> list[Reportable]:
        """What the records' stages reported (``record.report(...)``): record by record,
        in each the stages in the order they ran, in each what it reported in order.
        Records created with ``hide=True`` that reported come after the others."""
        records = [*self.records, *self._hidden_reporters.values()]
        return [item for record in records if record._reportables for item in record.reportables]

    def _joined(self, record: Record) -> int:
        """A reportable joined ``record``: returns its number (curifactory's: how many
        joined before it; a run numbers its own again when it ends). A record not in
        :attr:`records` that reports is listed too."""
        if record.index < 0:
            self._hidden_reporters.setdefault(id(record), record)
        self._reported += 1
        return self._reported - 1

    def _number_reportables(self, plan: Plan) -> None:
        """Number the unnamed reportables of a run's records by their place in
        :attr:`reportables` (workers finish in any order; the numbers do not depend on it)."""
        ran = {id(step.record) for step in plan.steps}
        for position, reportable in enumerate(self.reportables):
            if reportable.name is None and id(reportable.record) in ran:
                qualify(reportable, position)

    def map(
        self,
        param_sets: Iterable[ExperimentParameters],
        stages: Sequence[Callable[..., Record]],
        *,
        n_jobs: int | None = None,
        backend: str | Executor | None = None,
        client: Any = None,
        errors: ErrorPolicy = "raise",
        progress: bool | None = None,
        timeout: float | None = None,
    ) -> list[Record]:
        """Run each parameter set through ``stages`` in order, records in parallel.

        >>> records = manager.map(param_sets, [get_initial_value, multiply_again], n_jobs=2)
        >>> [record.state["final_value"] for record in records]
        [5.0, 20.0]
        """
        param_sets = list(param_sets)
        _check_param_sets(param_sets)
        chain = _check_stage_list(stages)

        def experiment(param_sets: list[ExperimentParameters], manager: ArtifactManager) -> None:
            for params in param_sets:
                record = Record(manager, params)
                for call_stage in chain:
                    call_stage(record)

        return self.run(
            experiment,
            param_sets,
            n_jobs=n_jobs,
            backend=backend,
            client=client,
            errors=errors,
            progress=progress,
            timeout=timeout,
        )

    def run(
        self,
        experiment: Experiment,
        param_sets: Any,
        *,
        n_jobs: int | None = None,
        backend: str | Executor | None = None,
        client: Any = None,
        errors: ErrorPolicy = "raise",
        progress: bool | None = None,
        timeout: float | None = None,
    ) -> list[Record]:
        """Plan ``experiment(param_sets, manager)``, then run its stages in parallel.

        The experiment is called once with stage calls recorded, not executed; each
        record's chain of stages then runs in a worker and aggregates run here as soon
        as what they read is ready. Returns every record the experiment created.
        ``timeout`` (seconds) stops any stage that runs longer (as a stage's own does).

        >>> def experiment(param_sets, manager):
        ...     for p in param_sets:
        ...         multiply_again(get_initial_value(Record(manager, p)))
        ...     find_maximum_final_value(Record(manager, None))
        >>> records = manager.run(experiment, param_sets, n_jobs=2)
        >>> records[-1].state["maximum_value"]
        20.0
        """
        _check_run_arguments(experiment, errors)
        timeout = check_timeout("run()", timeout)
        pool = open_backend(backend, resolve_n_jobs(n_jobs), client=client)
        plan = self.plan(experiment, param_sets)
        self._check_travel(plan, pool)
        self._register_params(plan.records)
        total = len({id(step.record) for step in plan.steps})
        events = Events()
        Progress(total, enabled=progress, description=self.name).follow(events)
        RunLogSubscriber(errors).follow(events)
        self._observer.follow(events, plan.steps)
        events.subscribe(self._run_finished, RunFinished)
        try:
            self._schedule(plan, pool, errors, events, timeout)
        finally:  # a run that failed or was stopped is the one whose report is wanted
            self._number_reportables(plan)
            self._write_report_after_run()
        return plan.records

    def _run_finished(self, event: RunFinished) -> None:
        self.run_summary = event.summary

    def _schedule(
        self,
        plan: Plan,
        pool: Backend,
        errors: ErrorPolicy,
        events: Events,
        timeout: float | None,
    ) -> None:
        """Run the planned steps on ``pool``, opened for the run and closed after it;
        temporary files that dead processes left in the cache go before and after."""
        cache = self.cache
        setup = WorkerSetup(
            parent_pid=os.getpid(),
            cache=cache,
            stop_at_failure=errors == "raise",
            timeout=timeout,
            manager=self.view(),
        )
        limited = timeout is not None or any(spec.timeout for spec in plan.stages)
        with contextlib.ExitStack() as stack:
            if cache is not None:
                cache.remove_leftovers()
                stack.callback(cache.remove_leftovers)  # writers killed by an interrupt
                if any(spec.cachers for spec in plan.stages):
                    cache.start_index()
                    stack.callback(cache.compact_index)
            pool.start(RunSettings(setup, self._log.deliver, self.log_level))
            stack.callback(pool.close)
            stack.enter_context(self._log.capturing())
            scheduler = Scheduler(
                plan.steps, pool, errors=errors, events=events, setup=setup, time_limited=limited
            )
            scheduler.run()

    def plan(self, experiment: Experiment, param_sets: Any) -> Plan:
        """Call the experiment in planning mode, as :meth:`run` does, and run nothing:
        returns the records it made (also added to :attr:`records`), the steps it would
        run and the stages it calls (``parafactory plan`` shows what each would load or
        compute).

        A plan with mistakes (:class:`PlanError`) is refused before anything runs, and,
        like an experiment that raised, leaves no records behind.
        """
        first_new = len(self.records)
        planner = Planner()
        with garbage_collection_paused():
            try:
                with planning(planner):
                    experiment(param_sets, self)
            except BaseException:
                del self.records[first_new:]  # nothing runs: leave no half-planned records
                raise
            finally:
                planner.finish()
            problems = planner.problems()
            if problems:
                del self.records[first_new:]
                raise PlanError(problems)
        return Plan(self.records[first_new:], planner.steps, planner.stages(), planner.last_steps)

    def _check_travel(self, plan: Plan, pool: Backend) -> None:
        """Refuse a plan whose records or stages cannot reach the workers, leaving no
        trace of it."""
        try:
            pool.check_travel(plan.records, plan.stages)
        except UnpicklableStateError:
            del self.records[len(self.records) - len(plan.records) :]
            raise

    def _describe_run(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_number": self.run_number,
            "reference": self.reference,
            "timestamp": self.timestamp.isoformat(timespec="seconds"),
            "hostname": platform.node(),
            "python": sys.version.split()[0],
            "command": " ".join(sys.argv),
            **({"notes": self.notes} if self.notes else {}),
        }

    def write_report(self) -> Path | None:
        """Write this run's HTML report and update the index of runs; returns the report's
        ``index.html`` (``None`` when dry).

        The report (``reports/<reference>/``) opens from disk with nothing fetched: the
        run's facts, every parameter set with its outcome, time and error, the worker
        timeline, the stage graph and the reportables. ``reports/index.html`` lists every
        run, newest first; ``reports/_latest`` opens the last. ``map`` and ``run`` write
        it when they end.
        """
        if self.dry:
            return None
        self.report_path = self._report().write(self.reports_dir)
        return self.report_path

    def _write_report_after_run(self) -> None:
        """The report a run writes as it ends: a report that cannot be written is logged,
        not raised, as the run's records matter more than their report."""
        if self.dry or not self.report:
            return
        try:
            self.write_report()
        except Exception:  # a reportable's render() may raise anything
            logging.getLogger("parafactory").warning(
                "the run's report could not be written", exc_info=True
            )

    def _report(self) -> RunReport:
        return RunReport(self.run_info, self.records, self._observer, self.reportables)

    def display_info(self) -> Any:
        """The run's facts and outcome counts, shown in a Jupyter notebook."""
        report = self._report()
        return notebook.html(report.facts_block())

    def display_all_reportables(self) -> Any:
        """Every reportable of this run, grouped by record, shown in a Jupyter notebook
        (their files are rendered into the run's report folder, and inlined)."""
        return self._display_reportables(self.reportables)

    def display_record_reportables(self, record: Record) -> Any:
        """The reportables ``record`` made, shown in a Jupyter notebook."""
        return self._display_reportables([r for r in self.reportables if r.record is record])

    def display_stage_graph(self) -> Any:
        """The stage graph of this manager's runs (records, stages, state, aggregates) as SVG."""
        return notebook.svg(self._report().graph())

    def display_timeline(self) -> Any:
        """The worker timeline of this manager's runs (a lane per worker, a bar per stage)."""
        return notebook.svg(self._report().timeline())

    def _display_reportables(self, reportables: list[Any]) -> Any:
        folder = None if self.dry else self.reports_dir / self.reference
        return notebook.reportables_html(reportables, self.records, folder)

    def _register_params(self, records: Sequence[Record]) -> None:
        """Record the parameter sets of ``records`` in the cache's registry, in one write
        (those this manager registered already are not written again)."""
        cache = self.cache
        if cache is None:
            return
        new = {
            r.params.hash: parameters_representation(r.params)
            for r in records
            if r.params and r.params.hash and r.params.hash not in self._registered
        }
        cache.register(new)
        self._registered.update(new)

    def close(self) -> None:
        """Register this run's parameter sets and stop writing its log file."""
        self._register_params(self.records)
        self._close_log()

    def __enter__(self) -> ArtifactManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ArtifactManager {self.reference!r} records={len(self.records)}>"


@contextlib.contextmanager
def garbage_collection_paused() -> Iterator[None]:
    """Planning allocates objects that live through the run: scanning them as young
    objects would be wasted, so collection pauses and they join the oldest generation."""
    collecting = gc.isenabled()
    if collecting:
        gc.collect(1)  # the user's young garbage goes now, rather than join the oldest
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:  # objects the user froze stay frozen
            gc.freeze()  # every tracked object moves out of the young generations...
            gc.unfreeze()  # ...and back into the oldest, without a scan
        if collecting:
            gc.enable()


def _check_name(name: Any) -> None:
    """A manager's name starts its cache, log and report file names: it must be able to."""
    if not isinstance(name, str):
        raise TypeError(f"the manager's name must be a string, got {type(name).__name__}")
    separators = {"/", "\0", *([os.altsep] if os.altsep else [])}
    if name in ("", ".", "..") or separators & set(name) or len(name.encode()) > 200:
        raise ValueError(
            f"the manager's name {name!r} cannot start a file name (its cache, log and report "
            "files are named after it): use a non-empty name of at most 200 bytes, without "
            "'/', such as 'my_experiment'"
        )


def _check_run_arguments(experiment: Any, errors: str) -> None:
    if not callable(experiment):
        raise TypeError(
            f"run() takes the experiment function first, got {type(experiment).__name__}; "
            "pass a function experiment(param_sets, manager)"
        )
    if errors not in ("raise", "continue"):
        raise ValueError(f"errors must be 'raise' or 'continue', got {errors!r}")


def _check_param_sets(param_sets: list[Any]) -> None:
    for position, params in enumerate(param_sets):
        if not isinstance(params, ExperimentParameters):
            raise TypeError(
                f"parameter set {position} is a {type(params).__name__}, not an "
                "ExperimentParameters; subclass ExperimentParameters as a @dataclass"
            )


def _check_stage_list(stages: Sequence[Any]) -> list[Callable[..., Record]]:
    if isinstance(stages, str) or not isinstance(stages, Sequence):
        raise TypeError("map() takes a list of @stage functions, e.g. [load, train]")
    for position, candidate in enumerate(stages):
        spec = spec_of(candidate)
        if spec is None or spec.is_aggregate:
            what = "an @aggregate" if spec is not None else repr(candidate)
            raise TypeError(
                f"stages[{position}] is {what}, not a @stage function; map() runs regular "
                "stages on each record (use run() for experiments with aggregates)"
            )
    return list(stages)
