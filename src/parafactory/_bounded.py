"""Text parafactory passes on is bounded: an exception message, a traceback or a log line
longer than :data:`TEXT_LIMIT` characters keeps its beginning and its end, with a note of
how much was cut between them.

A stage that raises an error with a 50 MB message, or logs one, must not print 200 MB to
the console and the log file, nor carry it to the parent: workers cut such text before
it leaves them, and parafactory's handlers cut what they write. This module is a leaf.
"""

from __future__ import annotations

import logging

TEXT_LIMIT = 64 * 1024


def bounded(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text``, or its first three quarters and its last quarter of ``limit`` characters
    with a note of how many were cut (the end of a traceback says the most)."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut:,} characters cut ...]\n{text[-tail:]}"


class BoundedFormatter(logging.Formatter):
    """A formatter whose every line, traceback included, is bounded."""

    def format(self, record: logging.LogRecord) -> str:
        return bounded(super().format(record))


class BoundMessages(logging.Filter):
    """Bounds a record's message (and its traceback text) before it is sent elsewhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        message = record.getMessage()
        if len(message) > TEXT_LIMIT:
            record.msg, record.args = bounded(message), None
        if record.exc_text and len(record.exc_text) > TEXT_LIMIT:
            record.exc_text = bounded(record.exc_text)
        return True
