"""The local workers' log channel: a Unix socket, so what a stage logs reaches the parent
while the stage runs.

In a worker, :class:`Sender` writes log records to the socket in the standard library's
``SocketHandler`` format and counts them. In the parent, one :class:`Listener` per
process (started on first use, so warm workers keep its address) receives them on a
thread and hands them to the run that is going. A worker's result says how many records
it sent, so the parent waits for them before it reports the record done.
"""

from __future__ import annotations

import atexit
import collections
import logging
import logging.handlers
import os
import pickle
import re
import shutil
import socketserver
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..._leftovers import remove_dead

Deliver = Callable[[logging.LogRecord], None]

_CATCH_UP_SECONDS = 2.0
_LISTENER_DIRECTORY = re.compile(r"parafactory-logs-(?P<pid>\d+)-.*")


class Listener:
    """Receives log records from workers on a Unix socket and delivers them to the run."""

    def __init__(self) -> None:
        base = Path(tempfile.gettempdir())
        remove_dead(base, _LISTENER_DIRECTORY)  # sockets of processes that died
        self._directory = tempfile.mkdtemp(prefix=f"parafactory-logs-{os.getpid()}-", dir=base)
        self.address = os.path.join(self._directory, "socket")
        self.deliver: Deliver = _to_its_logger
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
                    listener._arrive(pickle.loads(self.rfile.read(size)))

        return Handler

    def _arrive(self, attributes: dict[str, Any]) -> None:
        record = logging.makeLogRecord(attributes)
        self.deliver(record)
        with self._arrived:
            self._received[record.process or 0] += 1
            self._arrived.notify_all()

    def catch_up(self, sent: tuple[int, int] | None) -> None:
        """Wait until the records a worker said it sent, ``(pid, count)``, were delivered
        (or a short while): they come on another channel than its result, and a stage's
        log lines should be shown before its record is reported done."""
        if sent is None or sent[0] in self._lossy:
            return
        pid, count = sent
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._received[pid] >= count, _CATCH_UP_SECONDS):
                self._lossy.add(pid)  # its socket dropped records: do not wait on it again

    def close(self) -> None:
        """Stop listening and remove the socket."""
        self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self._directory, ignore_errors=True)


def _to_its_logger(record: logging.LogRecord) -> None:
    logging.getLogger(record.name).handle(record)


_listener: Listener | None = None  # one per process: warm workers keep its address


def listener() -> Listener:
    """This process's listener, started on first use."""
    global _listener
    if _listener is None:
        _listener = Listener()
    return _listener


class Sender(logging.handlers.SocketHandler):
    """In a worker: sends records to the parent's listener, counting them."""

    sent = 0

    def send_record(self, record: logging.LogRecord) -> None:
        self.emit(record)
        self.sent += 1


_sender: Sender | None = None  # one per worker process, for the address it last used


def sender(address: str) -> Sender:
    """This worker's sender to ``address`` (a new one if the parent's address changed)."""
    global _sender
    if _sender is None or _sender.host != address:
        if _sender is not None:
            _sender.close()
        _sender = Sender(address, None)
    return _sender
