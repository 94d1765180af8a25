"""The parent's end of the workers' log channel: one listener thread per process.

It receives log records from local workers on a Unix socket
and re-emits the records through this process's loggers, so they reach its
console and the run's log file.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import pickle
import re
import shutil
import socketserver
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..._leftovers import remove_dead

_CATCH_UP_SECONDS = 2.0
_LISTENER_DIRECTORY = re.compile(r"parafactory-logs-(?P<pid>\d+)-.*")


class LogListener:
    """Receives log records from workers on a Unix socket and re-emits them here."""

    def __init__(self) -> None:
        base = Path(tempfile.gettempdir())
        remove_dead(base, _LISTENER_DIRECTORY)  # sockets of processes that died
        self._directory = tempfile.mkdtemp(prefix=f"parafactory-logs-{os.getpid()}-", dir=base)
        self.address = os.path.join(self._directory, "socket")
        self._server = socketserver.ThreadingUnixStreamServer(self.address, self._handler())
        self._server.daemon_threads = True
        self._received: collections.Counter[int] = collections.Counter()  # pid -> records
        self._arrived = threading.Condition()
        self._lossy: set[int] = set()
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
        record = logging.makeLogRecord(attributes)
        logging.getLogger(record.name).handle(record)
        with self._arrived:
            self._received[record.process or 0] += 1
            self._arrived.notify_all()

    def wait_for(self, pid: int, count: int, timeout: float = _CATCH_UP_SECONDS) -> None:
        """Wait until ``count`` records from worker ``pid`` were handled here (or ``timeout``).

        A worker sends its log records before its result, but on another channel: this
        keeps a stage's log lines ahead of the record being reported done.
        """
        if pid in self._lossy:
            return
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._received[pid] >= count, timeout):
                self._lossy.add(pid)  # its socket dropped records: do not wait on it again

    def close(self) -> None:
        """Stop listening and remove the socket."""
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._directory, ignore_errors=True)


_listener: LogListener | None = None


def catch_up(sent: tuple[int, int] | None) -> None:
    """Wait for the log records a worker reported sending, if this process listens."""
    if sent is not None and _listener is not None:
        _listener.wait_for(*sent)


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
