"""parafactory's console: the one handler per process that shows its log records on
stderr, around a progress bar, and the format they take there.

A log line written while a tqdm bar is drawn would land on the bar's line (the bar ends
in a carriage return, not a newline): the handler clears the bars, writes the line and
draws them again, as ``tqdm.write`` does, for its own records only (the user's handlers
are left as they are). Tracebacks show from the first frame of the user's code on; the
log file keeps them in full.
"""

from __future__ import annotations

import logging
import sys

from .._core.capture import TagFormatter
from .._core.tracebacks import from_user_code

_FORMAT = "[%(levelname)s] %(message)s"
FILE_ONLY = "parafactory_file_only"  # a record attribute: not for the console


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Shows records on stderr without breaking a progress bar."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(ConsoleFormatter(_FORMAT))
        self.addFilter(lambda record: not getattr(record, FILE_ONLY, False))

    def emit(self, record: logging.LogRecord) -> None:
        std = sys.modules.get("tqdm.std")  # a bar is drawn only once tqdm is imported
        if std is None or not std.tqdm._instances:
            super().emit(record)
            return
        try:
            message = self.format(record)
            with std.tqdm.external_write_mode(file=self.stream):
                self.stream.write(message + self.terminator)
                self.flush()
        except RecursionError:
            raise
        except Exception:  # as logging does: a broken console never stops the run
            self.handleError(record)


class ConsoleFormatter(TagFormatter):
    """The console's format: a traceback starts where the user's code does."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.exc_text
        if not text and record.exc_info:
            text = self.formatException(record.exc_info)
        if not text:
            return super().format(record)
        shown = logging.makeLogRecord(record.__dict__)
        shown.exc_info, shown.exc_text = None, from_user_code(text)
        return super().format(shown)


def show_on_console(level: int) -> logging.Handler | None:
    """parafactory's console handler, showing ``level`` and above; none when the user set
    up logging on the root logger (their handlers show parafactory's records already)."""
    if logging.getLogger().handlers:
        return None
    parafactory = logging.getLogger("parafactory")
    handler = next((h for h in parafactory.handlers if isinstance(h, ConsoleHandler)), None)
    if handler is None:
        handler = ConsoleHandler()
        parafactory.addHandler(handler)
    handler.setLevel(min(handler.level or level, level))
    return handler
