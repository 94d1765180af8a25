"""What a stage logs and prints, tagged with its record, in whichever process it runs.

While a record's stages run, a context variable names the record and where what they
log goes. In a worker, one handler on the worker's root logger and one ``sys.stdout``
stand-in (installed once per process by :func:`install`) are only dispatchers: they take
what is logged or printed *in that context* only (a dask worker runs several records at
once, on threads), prefix it ``[record name]``, cut what is huge, and pass it on to that
context's own sink: a sender that forwards it live to the parent, or the record's own
list that goes back with its result. Outside a record's stages nothing is taken. In the
parent's own process nothing is installed: records go wherever the user's logging sends
them, and parafactory's own handlers show the record's name (:class:`TagFormatter`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from .._bounded import BoundedFormatter, BoundMessages

Send = Callable[[logging.LogRecord], None]


@dataclasses.dataclass
class _Capture:
    """What one record's stages logged and printed, in the context they run in."""

    record_name: str
    collected: list[logging.LogRecord] | None  # None: sent live, not collected
    send: Send | None = None  # this context's own sender (else: the process's)
    printing: str = ""  # a printed line not ended yet


_capture: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar(
    "parafactory_capture", default=None
)
_print_logger = logging.getLogger("parafactory.print")


@contextlib.contextmanager
def tagged(
    record_name: str, *, collect: bool = False, send: Send | None = None
) -> Iterator[list[logging.LogRecord]]:
    """While a record's stages run in this context: name it in what they log and print.
    Yields the list their log records are collected into (``collect``), else one that
    stays empty; ``send`` sends them live from this context."""
    capture = _Capture(record_name, [] if collect else None, send)
    token = _capture.set(capture)
    try:
        yield capture.collected if capture.collected is not None else []
    finally:
        if capture.printing:  # a line printed without a newline still names its record
            _print_logger.info("%s", capture.printing)
        _capture.reset(token)


def current_record() -> str | None:
    """The record whose stages run in this context, if any."""
    capture = _capture.get()
    return capture.record_name if capture is not None else None


class _StageHandler(logging.Handler):
    """On a worker's root logger: takes records made while a stage runs (in that
    context), tags and bounds them, and collects or sends them."""

    def __init__(self, send: Send | None) -> None:
        super().__init__()
        self._send = send
        self._bound = BoundMessages()

    def emit(self, record: logging.LogRecord) -> None:
        capture = _capture.get()
        if capture is None:
            return  # not a stage's: the worker's own business
        self._bound.filter(record)
        if record.exc_info:  # tracebacks travel as text
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = f"[{capture.record_name}] {record.getMessage()}"
        record.args, record.exc_info = None, None
        record.parafactory_record = capture.record_name
        send = capture.send or self._send
        if capture.collected is not None:
            capture.collected.append(record)
        elif send is not None:
            send(record)


class _Stdout(io.TextIOBase):
    """``sys.stdout`` in a worker: what a stage prints becomes log records of its record
    (a line each); anything else goes to the real stream."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        capture = _capture.get()
        if capture is None:
            return self._stream.write(text)
        lines = (capture.printing + text).split("\n")
        capture.printing = lines.pop()
        for line in lines:
            _print_logger.info("%s", line)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


_installed: _StageHandler | None = None  # once per worker process: the handler above
_installing = threading.Lock()  # a dask worker's threads may start batches at once


def install(level: int, send: Send | None) -> None:
    """In a worker process: take what stages log (at ``level`` and above) and print,
    sending it with ``send`` (live) unless their context names its own sink. Installed
    once; a later call only changes the level and the sender."""
    global _installed
    with _installing:
        root = logging.getLogger()
        root.setLevel(level)
        if _installed is None:
            _installed = _StageHandler(send)
            root.addHandler(_installed)
            sys.stdout = _Stdout(sys.stdout)
        else:
            _installed._send = send


class TagFormatter(BoundedFormatter):
    """parafactory's own handlers in the parent: a record made while a record's stage ran
    here is shown with the record's name, as those from workers are (which say it
    already). The record itself is left as it is, for other handlers."""

    def format(self, record: logging.LogRecord) -> str:
        name = current_record()
        if name is None or getattr(record, "parafactory_record", None) is not None:
            return super().format(record)
        shown = logging.makeLogRecord(record.__dict__)
        shown.msg, shown.args = f"[{name}] {record.getMessage()}", None
        return super().format(shown)
