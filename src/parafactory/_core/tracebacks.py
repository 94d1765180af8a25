"""A worker's traceback, which travels as text: kept whole (the log file has it), shown
from the user's code on (the console, and the cause of a raised error).
"""

from __future__ import annotations

import re
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parents[1])  # parafactory's own source files
_FRAME = re.compile(r'  File "(?P<path>[^"]*)", line \d+')


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (``text``), kept in the parent as
    that exception's cause. Shown, it starts at the user's code and stops before the
    exception's own line: Python prints that line next, as the exception it caused."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{_frames_only(from_user_code(self.text))}\n"""'


def from_user_code(traceback: str) -> str:
    """``traceback`` without the frames of parafactory's runner that lead to the user's
    code (those after it stay: they say what the user's code called)."""
    lines = traceback.splitlines()
    frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
    first_user = next((i for i in frames if not _ours(lines[i])), None)
    if first_user is None:
        return traceback  # nothing but parafactory: all of it is the story
    ours = {i for i in frames if i < first_user and _ours(lines[i])}
    kept, skipping = [], False
    for i, line in enumerate(lines):
        if i in frames:
            skipping = i in ours
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def _ours(frame_line: str) -> bool:
    """Whether a traceback's ``File ...`` line is in parafactory's own source."""
    match = _FRAME.match(frame_line)
    return match is not None and match["path"].startswith(_PACKAGE)


def _frames_only(traceback: str) -> str:
    """``traceback`` up to its last frame, without the exception's own lines."""
    lines = traceback.rstrip("\n").splitlines()
    last = max((i for i, line in enumerate(lines) if line.startswith("  ")), default=-1)
    return "\n".join(lines[: last + 1]) if last >= 0 else traceback
