"""Log records from stages: tagged with their record, and sent from workers to the parent.

While a stage runs, every log record made in its process is prefixed
``[record name]``, and ``print`` output becomes log records. Workers of a
local pool send them live over a Unix socket (the standard library's
``SocketHandler`` format) to ``_log_listener`` in the parent; workers
elsewhere collect them and send them back with their results.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import logging.handlers
import os
from collections.abc import Iterator
from typing import Any

from .._bounded import BoundMessages

_current_record: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "parafactory_record", default=None
)
_tagging_installed = False


def _install_tagging() -> None:
    """Prefix log messages made during a stage with ``[record name]``; once per process."""
    global _tagging_installed
    if _tagging_installed:
        return
    make_record = logging.getLogRecordFactory()

    def make_tagged_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        name = _current_record.get()
        if name is not None and not hasattr(record, "parafactory_record"):
            record.parafactory_record = name
            record.msg = f"[{name.replace('%', '%%')}] {record.msg}"
        return record

    logging.setLogRecordFactory(make_tagged_record)
    _tagging_installed = True


@contextlib.contextmanager
def tagged(record_name: str) -> Iterator[None]:
    """Tag log records with ``record_name`` while a record's stages run."""
    _install_tagging()
    token = _current_record.set(record_name)
    try:
        yield
    finally:
        if _print_stream is not None:
            _print_stream.flush()  # a line printed without a newline still names its record
        _current_record.reset(token)


_socket_handler: _CountingSocketHandler | None = None
_print_stream: _LineLogger | None = None  # stdout of a worker while it runs stages
_print_logger = logging.getLogger("parafactory.print")
_BOUND = BoundMessages()


class _Collector(logging.Handler):
    """Keeps a worker's log records to send back with its results (no live channel)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:  # tracebacks travel as text
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args, record.exc_info = record.getMessage(), None, None
        self.records.append(record)

    def drain(self) -> list[logging.LogRecord]:
        drained, self.records = self.records, []
        return drained


@contextlib.contextmanager
def worker_logging(parent_pid: int, address: str | None, level: int) -> Iterator[_Collector | None]:
    """Route a worker's log records to the parent: live through ``address``, else collected.

    Yields the collector whose records go back with the results, or ``None``. In the
    parent's own process (no pool) records already reach its handlers, so nothing changes.
    """
    if os.getpid() == parent_pid:
        yield None
        return
    logging.getLogger().setLevel(level)
    collector = None
    if address is not None:
        _connect(address)
    else:
        collector = _Collector()
        collector.addFilter(_BOUND)
        logging.getLogger().addHandler(collector)
    try:
        with _prints_as_logs():
            yield collector
    finally:
        if collector is not None:
            logging.getLogger().removeHandler(collector)


class _CountingSocketHandler(logging.handlers.SocketHandler):
    """Counts what it sends, so the parent can wait until it has received as much."""

    sent = 0

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.sent += 1


def records_sent() -> tuple[int, int] | None:
    """``(pid, count)`` of log records this worker sent live so far, or ``None``."""
    return None if _socket_handler is None else (os.getpid(), _socket_handler.sent)


def _connect(address: str) -> None:
    global _socket_handler
    if _socket_handler is not None and _socket_handler.host == address:
        return
    root = logging.getLogger()
    if _socket_handler is not None:
        root.removeHandler(_socket_handler)
        _socket_handler.close()
    _socket_handler = _CountingSocketHandler(address, None)
    _socket_handler.addFilter(_BOUND)  # a huge line is cut here, not carried to the parent
    root.addHandler(_socket_handler)


class _LineLogger(io.TextIOBase):
    """A stream that turns each printed line into an INFO log record."""

    def __init__(self) -> None:
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            _print_logger.info("%s", line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            _print_logger.info("%s", self._pending)
            self._pending = ""


@contextlib.contextmanager
def _prints_as_logs() -> Iterator[None]:
    """In a worker, make ``print`` output from stages log records the parent shows."""
    global _print_stream
    _print_stream = _LineLogger()
    try:
        with contextlib.redirect_stdout(_print_stream):
            yield
    finally:
        _print_stream.flush()
        _print_stream = None
