"""Where log records go: the run's log file, the console, and from workers to the parent.

Workers of a local pool send their records live over a Unix socket to a
listener thread in the parent (the standard library's ``SocketHandler``
format); workers elsewhere collect them and send them back with their
results. Either way the parent re-emits them through its own loggers, so they
reach its console and the run's log file, each tagged ``[record name]``.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import io
import logging
import logging.handlers
import os
import pickle
import shutil
import socketserver
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
_CONSOLE_FORMAT = "[%(levelname)s] %(message)s"


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one console handler parafactory installs; found again by its type."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)


def show_on_console(level: int) -> None:
    """Print log records of ``level`` and above on stderr, unless the user set up logging."""
    root = logging.getLogger()
    if any(not isinstance(h, (logging.FileHandler, _ConsoleHandler)) for h in root.handlers):
        return  # the user configured logging of their own
    _lower_root_level(level)
    handler = next((h for h in root.handlers if isinstance(h, _ConsoleHandler)), None)
    if handler is None:
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
        root.addHandler(handler)
    handler.setLevel(min(handler.level or level, level))


def write_to_file(path: Path, level: int) -> logging.Handler:
    """Copy log records of ``level`` and above into ``path`` until :func:`stop_writing`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    _lower_root_level(level)
    logging.getLogger().addHandler(handler)
    return handler


def stop_writing(handler: logging.Handler) -> None:
    """Detach and close a handler from :func:`write_to_file`."""
    logging.getLogger().removeHandler(handler)
    handler.close()


def _lower_root_level(level: int) -> None:
    root = logging.getLogger()
    if root.level > level:
        root.setLevel(level)


# -- tagging: every log record made while a stage runs names its record -----------------

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
        with _prints_as_logs():
            yield
    finally:
        _current_record.reset(token)


# -- the worker's side: send log records and progress events to the parent ----------------

_socket_handler: logging.handlers.SocketHandler | None = None
_in_worker = False
_print_logger = logging.getLogger("parafactory.print")


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
    global _in_worker
    if os.getpid() == parent_pid:
        yield None
        return
    _in_worker = True
    logging.getLogger().setLevel(level)
    if address is not None:
        _connect(address, parent_pid)
        yield None
        return
    collector = _Collector()
    logging.getLogger().addHandler(collector)
    try:
        yield collector
    finally:
        logging.getLogger().removeHandler(collector)


def send_event(kind: str, step_id: int, position: int = 0) -> None:
    """Tell the parent, out of band, that a step started a stage or finished here."""
    if _socket_handler is not None:
        event = {"parafactory_event": kind, "step_id": step_id, "position": position}
        data = pickle.dumps(event)
        _socket_handler.send(struct.pack(">L", len(data)) + data)


def _connect(address: str, parent_pid: int) -> None:
    global _socket_handler
    if _socket_handler is not None and _socket_handler.host == address:
        return
    root = logging.getLogger()
    if _socket_handler is not None:
        root.removeHandler(_socket_handler)
        _socket_handler.close()
    _socket_handler = logging.handlers.SocketHandler(address, None)
    root.addHandler(_socket_handler)
    _watch_parent(parent_pid)


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker soon after its parent dies, even in the middle of a stage."""
    if os.getppid() != parent_pid:
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parafactory-parent-watch", daemon=True).start()


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
    """In a worker, make ``print`` output from stages a log record the parent shows."""
    if not _in_worker:
        yield
        return
    stream = _LineLogger()
    with contextlib.redirect_stdout(stream):
        try:
            yield
        finally:
            stream.flush()


# -- the parent's side: one listener per process receives every worker's records ---------

EventSink = Callable[[str, int, int], None]


class LogListener:
    """Receives log records and events from workers on a Unix socket and re-emits them here."""

    def __init__(self) -> None:
        self._directory = tempfile.mkdtemp(prefix="parafactory-logs-")
        self.address = os.path.join(self._directory, "socket")
        self.event_sink: EventSink | None = None
        self._server = socketserver.ThreadingUnixStreamServer(self.address, self._handler())
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name="parafactory-log-listener", daemon=True
        ).start()
        atexit.register(self.close)

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        listener = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while (header := self.rfile.read(4)) and len(header) == 4:
                    size = struct.unpack(">L", header)[0]
                    listener._dispatch(pickle.loads(self.rfile.read(size)))

        return Handler

    def _dispatch(self, attributes: dict[str, Any]) -> None:
        event = attributes.get("parafactory_event")
        if event is not None:
            if self.event_sink is not None:
                self.event_sink(event, attributes["step_id"], attributes["position"])
            return
        record = logging.makeLogRecord(attributes)
        logging.getLogger(record.name).handle(record)

    def close(self) -> None:
        """Stop listening and remove the socket."""
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._directory, ignore_errors=True)


_listener: LogListener | None = None


def log_listener() -> LogListener:
    """The process's one listener, started on first use so every run reuses its address."""
    global _listener
    if _listener is None:
        _listener = LogListener()
    return _listener


def replay(records: list[logging.LogRecord]) -> None:
    """Hand log records that came back with a worker's results to this process's loggers."""
    for record in records:
        logging.getLogger(record.name).handle(record)
