"""Where a run's log records go: its log file and the console, through parafactory's own
logger (``parafactory``); nothing is attached to the root logger.

A manager's :class:`RunLog` writes its file; one console handler per process shows
records on stderr (without breaking a progress bar: see :mod:`.console`) unless the user
set up logging of their own (then their handlers show parafactory's records, which
propagate to the root logger as any library's do). What stages log in workers arrives
through :meth:`RunLog.deliver`: it goes to the logger it was made on, as if made here
(so the user's handlers see it), and to parafactory's handlers. What stages log in this
process (``n_jobs=1``, aggregates, or called eagerly) reaches parafactory's handlers
while they run (:meth:`RunLog.capturing`).

:class:`RunLogSubscriber` writes the run's events that deserve a line: each failure (its
message once, with its traceback), retries, lost workers, and at the end what each stage
did (computed, loaded from cache, recomputed and why) and the run's summary.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

from .._core.capture import TagFormatter, current_record, tagged
from .._core.events import Events, RecordFailed, Retried, RunFinished, WorkerLost
from .._core.tracebacks import RemoteTraceback
from .._errors import StageFailedError
from .console import FILE_ONLY, show_on_console
from .stage_tally import StageTally

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
PARAFACTORY = logging.getLogger("parafactory")
logger = PARAFACTORY


class RunLog:
    """A manager's log: its file (``path``, unless dry) and the console (``console``),
    showing records of ``level`` and above."""

    def __init__(self, path: Path | None, level: int, *, console: bool) -> None:
        if PARAFACTORY.level == logging.NOTSET or PARAFACTORY.level > level:
            PARAFACTORY.setLevel(level)  # parafactory's own logger: its records get made
        self._console = show_on_console(level) if console else None
        self._file: logging.Handler | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = logging.FileHandler(path, encoding="utf-8")
            self._file.setFormatter(TagFormatter(FORMAT))
            self._file.setLevel(level)
            PARAFACTORY.addHandler(self._file)

    def deliver(self, record: logging.LogRecord) -> None:
        """A record a stage made in a worker: to its own logger (and so the user's
        handlers), and to parafactory's handlers if it does not reach them that way."""
        logging.getLogger(record.name).handle(record)
        if record.name == "parafactory" or record.name.startswith("parafactory."):
            return  # it reached them through its logger
        for handler in PARAFACTORY.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """While stages run in this process (``n_jobs=1``, aggregates, eager calls): what
        they log on any logger also reaches parafactory's handlers, as from a worker. A
        handler on the root logger that takes only records made while a stage runs (in
        that context), there for that time only."""
        root = logging.getLogger()
        if any(isinstance(handler, _StageCapture) for handler in root.handlers):
            yield  # a run around an eager call, or the reverse: already capturing
            return
        capture = _StageCapture()
        root.addHandler(capture)
        try:
            yield
        finally:
            root.removeHandler(capture)

    @contextlib.contextmanager
    def stage(self, record_name: str) -> Iterator[None]:
        """Around a stage called eagerly: named as ``record_name`` in what it logs."""
        with tagged(record_name), self.capturing():
            yield

    def close(self) -> None:
        """Stop writing the log file."""
        if self._file is not None:
            PARAFACTORY.removeHandler(self._file)
            self._file.close()
            self._file = None


class _StageCapture(logging.Handler):
    """Passes records that stages made in this process, on loggers other than
    parafactory's, to parafactory's handlers (those reach them on their own)."""

    def emit(self, record: logging.LogRecord) -> None:
        if current_record() is None or record.name.startswith("parafactory"):
            return
        for handler in PARAFACTORY.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


class RunLogSubscriber:
    """Writes the run events that deserve a line in the log."""

    def __init__(self, errors: str) -> None:
        self.errors = errors
        self._failed = False
        self._stages = StageTally()

    def follow(self, events: Events) -> None:
        """Subscribe to the events this writes."""
        self._stages.follow(events)
        events.subscribe(self._record_failed, RecordFailed)
        events.subscribe(self._retried, Retried)
        events.subscribe(self._worker_lost, WorkerLost)
        events.subscribe(self._run_finished, RunFinished)

    def _record_failed(self, event: RecordFailed) -> None:
        # errors="raise" raises the first failure: the console shows it as the exception
        raised = self.errors == "raise" and not self._failed
        self._failed = True
        header, traceback_text = failure_text(event.error)
        record = PARAFACTORY.makeRecord(
            PARAFACTORY.name, logging.ERROR, __file__, 0, header, (), None, "record_failed"
        )
        record.exc_text = traceback_text
        setattr(record, FILE_ONLY, raised)
        PARAFACTORY.handle(record)

    def _retried(self, event: Retried) -> None:
        logger.warning(
            "%s while running record %r; retrying it alone", event.why, event.record.name
        )

    def _worker_lost(self, event: WorkerLost) -> None:
        logger.debug("worker lost (%s), with %s", event.description, list(event.records))

    def _run_finished(self, event: RunFinished) -> None:
        for line in self._stages.lines():
            logger.info("%s", line)
        calm = not (event.interrupted or self._failed)
        logger.log(logging.INFO if calm else logging.WARNING, "%s", event.summary)


def failure_text(error: BaseException) -> tuple[str, str | None]:
    """A failed record's log line, and the traceback that follows it (``None``: the error
    parafactory made about the record says everything). The message is said once: at the
    end of the traceback, as Python does, or in the line when there is none."""
    shown = error  # the stage's own exception, or parafactory's about the record
    if type(error) is StageFailedError and error.__cause__ is not None:
        shown = error.__cause__
    if isinstance(shown.__cause__, RemoteTraceback):  # raised in a worker: its traceback
        text = shown.__cause__.text
    elif shown is not error:
        text = "".join(traceback.format_exception(shown))
    else:
        return str(error), None
    name, stage = getattr(error, "record_name", "?"), getattr(error, "stage_name", "?")
    return f"stage {stage!r} failed on record {name!r}:", text.rstrip("\n")
