"""The exceptions parafactory raises, all under one root.

::

    ParafactoryError
    ├── ParameterClassError       a parameter class is not a @dataclass of its own
    ├── StageDefinitionError      a @stage/@aggregate declaration is wrong
    ├── StageInputError           a stage's input is missing from record.state
    ├── StageOutputError          a stage returned the wrong number of values
    ├── PlanningStateError        record.state was read while planning
    ├── PlanError                 mistakes found in a planned run, before any work starts
    ├── StageFailedError          a stage raised; the worker's traceback is __cause__
    │   ├── WorkerDiedError       the process running a stage died
    │   ├── StageTimeoutError     a stage ran longer than its time limit
    │   ├── UpstreamFailedError   a record was not run: records it needs failed
    │   └── UnpicklableOutputError  (also an UnpicklableStateError) an output cannot
    │                             travel back from its worker
    ├── UnpicklableStateError     a value cannot travel to or from a worker
    ├── CacheEntryDamagedError    a cache file no longer holds what was written to it
    ├── SharedFilesError          a worker cannot see the run's files (no shared storage)
    ├── BackendUnavailableError   an optional backend's dependency is missing
    ├── ReporterUnavailableError  a reporter's optional dependency is missing
    ├── DisplayUnavailableError   a notebook display was asked for without IPython
    └── CommandLineError          the command line names an experiment, parameter file,
                                  field or value that does not exist or does not fit

Ctrl-C during a run re-raises ``KeyboardInterrupt`` and SIGTERM/SIGHUP raise
``SystemExit(128 + signal)``, after the workers are stopped and finished
records are kept.

Errors about one stage carry ``record_name`` and ``stage_name``.
"""

from __future__ import annotations


def quoted_names(names: list[str], shown: int = 10) -> str:
    """``'a', 'b' and 3 more``: how messages name a list of records or files."""
    listed = ", ".join(repr(name) for name in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


class ParafactoryError(Exception):
    """Root of every error parafactory raises on purpose."""


class _StageContextError(ParafactoryError):
    """An error about one stage run on one record."""

    def __init__(self, message: str, *, record_name: str, stage_name: str) -> None:
        super().__init__(message)
        self.record_name = record_name
        self.stage_name = stage_name

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive default exception pickling.
        return (_rebuild, (type(self), str(self), self.record_name, self.stage_name))


def _rebuild(
    cls: type[_StageContextError], message: str, record_name: str, stage_name: str
) -> _StageContextError:
    return cls(message, record_name=record_name, stage_name=stage_name)


class ParameterClassError(ParafactoryError, TypeError):
    """A parameter class is not a dataclass of its own, so its fields would not count."""


class StageDefinitionError(ParafactoryError, TypeError):
    """A ``@stage`` or ``@aggregate`` declaration does not match its function."""


class StageInputError(_StageContextError, KeyError):
    """A stage asked for an input that is not in ``record.state``."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class StageOutputError(_StageContextError, ValueError):
    """A stage returned a number of values that does not match its ``outputs``."""


class PlanningStateError(ParafactoryError, RuntimeError):
    """``record.state`` was read while ``manager.run`` was planning the experiment."""


class PlanError(ParafactoryError, ValueError):
    """Mistakes found in a planned run before any work started; ``problems`` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(["the run was not started:", *(f"- {p}" for p in problems)]))
        self.problems = problems

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problems,))


class StageFailedError(_StageContextError):
    """A stage raised during a run; the original traceback is the ``__cause__``."""


class WorkerDiedError(StageFailedError):
    """The worker process running a stage died (exit code, signal, out of memory)."""


class StageTimeoutError(StageFailedError, TimeoutError):
    """A stage ran longer than its time limit (``timeout=`` on ``@stage``, ``map`` or
    ``run``) and was stopped; ``limit`` is that limit in seconds."""

    def __init__(self, message: str, *, record_name: str, stage_name: str, limit: float) -> None:
        super().__init__(message, record_name=record_name, stage_name=stage_name)
        self.limit = limit

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_timeout, (str(self), self.record_name, self.stage_name, self.limit))


def _rebuild_timeout(
    message: str, record_name: str, stage_name: str, limit: float
) -> StageTimeoutError:
    return StageTimeoutError(message, record_name=record_name, stage_name=stage_name, limit=limit)


class UpstreamFailedError(StageFailedError):
    """A record was not run because records whose results it needs did not finish: the
    record it copies, or every record it aggregates (leaving the aggregate nothing to
    aggregate). ``stage_name`` is its first stage not run ("" if none)."""


class UnpicklableStateError(ParafactoryError, TypeError):
    """A value (state, parameter field, a stage's global) cannot travel to or from a worker."""


class UnpicklableOutputError(StageFailedError, UnpicklableStateError):
    """A stage's output cannot be pickled back to the parent from the worker that made it."""


class CacheEntryDamagedError(ParafactoryError):
    """A cache file no longer holds what was written to it, or fails to load.

    The entry is forgotten, so rerunning its stage computes it afresh.
    """


class SharedFilesError(ParafactoryError):
    """A worker cannot see the run's cache directory: it does not share the driver's
    files. The run stops at the first task that finds out."""


class BackendUnavailableError(ParafactoryError, ImportError):
    """A backend was asked for whose optional dependency is not installed."""


class ReporterUnavailableError(ParafactoryError, ImportError):
    """A reporter was made whose optional dependency (the ``report`` extra) is not installed."""


class DisplayUnavailableError(ParafactoryError, ImportError):
    """A notebook display (``manager.display_*``) was asked for where IPython is missing."""


class CommandLineError(ParafactoryError, ValueError):
    """``parafactory run``/``plan`` names an experiment, a parameter file, a parameter set,
    a field or a value that does not exist or does not fit (exit status 2, before
    anything runs)."""
