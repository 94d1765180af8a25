"""Where a run's log records go: its log file and the console.

Records from workers arrive here too: see ``_worker_logs`` (sending) and
``_log_listener`` (receiving).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .._bounded import BoundedFormatter

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
        handler.setFormatter(BoundedFormatter(_CONSOLE_FORMAT))
        root.addHandler(handler)
    handler.setLevel(min(handler.level or level, level))


def write_to_file(path: Path, level: int) -> logging.Handler:
    """Copy log records of ``level`` and above into ``path`` until :func:`stop_writing`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(BoundedFormatter(FORMAT))
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
