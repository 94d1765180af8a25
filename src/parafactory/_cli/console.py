"""What the commands print on stdout, safe when nobody reads it any more.

A terminal that closed (SIGHUP) or a pipe whose reader left makes every write fail; the
command still has to finish its work and exit with its own status, so a failed write
sends the rest of stdout to ``/dev/null`` (and so does Python's final flush).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable

_CHUNK = 10_000  # lines written at once


def say(line: str) -> None:
    """Print one line now."""
    say_lines([line])


def say_lines(lines: Iterable[str]) -> None:
    """Print lines, in chunks (a plan of 100,000 records prints quickly)."""
    iterator = iter(lines)
    try:
        while chunk := list(itertools.islice(iterator, _CHUNK)):
            sys.stdout.write("\n".join(chunk) + "\n")
        sys.stdout.flush()
    except OSError:  # EIO from a closed terminal, EPIPE from a pipe nobody reads
        _stdout_to_devnull()


def _stdout_to_devnull() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
