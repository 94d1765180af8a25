"""Where a run's log records go: its log file and the console, through parafactory's own
logger (``parafactory``); nothing is attached to the root logger.

A manager's :class:`RunLog` writes its file; one console handler per process shows
records on stderr unless the user set up logging of their own (then their handlers show
parafactory's records, which propagate to the root logger as any library's do). What
stages log in workers arrives through :meth:`RunLog.deliver`: it goes to the logger it
was made on, as if made here (so the user's handlers see it), and to parafactory's
handlers. What stages log in this process (``n_jobs=1``, aggregates, or called eagerly)
reaches parafactory's handlers while they run (:meth:`RunLog.capturing`).

:class:`RunLogSubscriber` writes the run's events that deserve a line: failures,
retries, lost workers, and the summary of a run that did not go cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from .._core.capture import TagFormatter, current_record, tagged
from .._core.events import Events, RecordFailed, Retried, RunFinished, WorkerLost

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
_CONSOLE_FORMAT = "[%(levelname)s] %(message)s"
PARAFACTORY = logging.getLogger("parafactory")
logger = PARAFACTORY


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one console handler parafactory installs; found again by its type."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)


class RunLog:
    """A manager's log: its file (``path``, unless dry) and the console (``console``),
    showing records of ``level`` and above."""

    def __init__(self, path: Path | None, level: int, *, console: bool) -> None:
        if PARAFACTORY.level == logging.NOTSET or PARAFACTORY.level > level:
            PARAFACTORY.setLevel(level)  # parafactory's own logger: its records get made
        self._console = _show_on_console(level) if console else None
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


def _show_on_console(level: int) -> logging.Handler | None:
    """parafactory's console handler, showing ``level`` and above; none when the user set
    up logging on the root logger (their handlers show parafactory's records already)."""
    if logging.getLogger().handlers:
        return None
    handler = next((h for h in PARAFACTORY.handlers if isinstance(h, _ConsoleHandler)), None)
    if handler is None:
        handler = _ConsoleHandler()
        handler.setFormatter(TagFormatter(_CONSOLE_FORMAT))
        PARAFACTORY.addHandler(handler)
    handler.setLevel(min(handler.level or level, level))
    return handler


class RunLogSubscriber:
    """Writes the run events that deserve a line in the log."""

    def __init__(self, errors: str) -> None:
        self.errors = errors
        self._failed = False

    def follow(self, events: Events) -> None:
        """Subscribe to the events this writes."""
        events.subscribe(self._record_failed, RecordFailed)
        events.subscribe(self._retried, Retried)
        events.subscribe(self._worker_lost, WorkerLost)
        events.subscribe(self._run_finished, RunFinished)

    def _record_failed(self, event: RecordFailed) -> None:
        self._failed = True
        error = event.error
        logger.error("%s", error, exc_info=error.__cause__ is not None and error)

    def _retried(self, event: Retried) -> None:
        logger.warning(
            "%s while running record %r; retrying it alone", event.why, event.record.name
        )

    def _worker_lost(self, event: WorkerLost) -> None:
        logger.debug("worker lost (%s), with %s", event.description, list(event.records))

    def _run_finished(self, event: RunFinished) -> None:
        if event.interrupted or (self._failed and self.errors == "continue"):
            logger.warning("%s", event.summary)
