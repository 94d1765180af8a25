"""The progress display: records done out of total, those loaded from the cache, those
that failed and those not run because records they need failed counted.

In a terminal or a notebook it is a ``tqdm.auto`` bar (a widget in notebooks); log lines
are written above it (:mod:`.console`). When stderr is a file or a pipe (batch jobs, CI,
``nohup``) it is a plain status line at most every few seconds, so logs stay readable.
The run's summary is a log line of its own, after the display closed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .._core.events import Events, RecordFinished, RunFinished
from .._errors import UpstreamFailedError

PLAIN_LINE_SECONDS = 5.0


class Progress:
    """Counts finished, cached, failed and not run records and shows them."""

    def __init__(self, total: int, *, enabled: bool | None, description: str) -> None:
        self.total = total
        self.done = 0
        self.cached = 0
        self.failed = 0
        self.not_run = 0
        self._bar: Any = None
        self._plain: TextIO | None = None
        self._description = description
        self._started = self._last_line = time.monotonic()
        if enabled is False or total == 0:
            return
        if _interactive(sys.stderr):
            from tqdm.auto import tqdm  # here, not at import: workers never draw a bar

            self._bar = tqdm(total=total, desc=description, unit="record", dynamic_ncols=True)
        else:
            self._plain = sys.stderr

    def follow(self, events: Events) -> None:
        """Advance as records finish, and close when the run does."""
        events.subscribe(self._record_finished, RecordFinished)
        events.subscribe(lambda event: self.close(), RunFinished)

    def _record_finished(self, event: RecordFinished) -> None:
        not_run = isinstance(event.record.error, UpstreamFailedError)
        self.advance(failed=event.failed and not not_run, cached=event.cached, not_run=not_run)

    def advance(self, *, failed: bool, cached: bool = False, not_run: bool = False) -> None:
        """One more record is finished (``failed``: it ended in an error; ``cached``: every
        stage of it loaded from the cache; ``not_run``: records it needs failed)."""
        self.done += 1
        self.failed += failed
        self.cached += cached
        self.not_run += not_run
        if self._bar is not None:
            if failed or cached or not_run:
                counts = {"cached": self.cached, "failed": self.failed, "not run": self.not_run}
                self._bar.set_postfix({k: v for k, v in counts.items() if v}, refresh=False)
            self._bar.update(1)
        elif self._plain is not None and time.monotonic() - self._last_line >= PLAIN_LINE_SECONDS:
            self._write_line()

    def close(self) -> None:
        """Finish the display."""
        if self._bar is not None:
            self._bar.close()
        elif self._plain is not None:
            self._write_line()

    def _write_line(self) -> None:
        assert self._plain is not None
        self._last_line = time.monotonic()
        elapsed = self._last_line - self._started
        cached = f", {self.cached} loaded from cache" if self.cached else ""
        not_run = f", {self.not_run} not run" if self.not_run else ""
        line = f"{self.done}/{self.total} records done{cached}, {self.failed} failed{not_run}"
        self._plain.write(f"{self._description}: {line} [{elapsed:.0f}s]\n")
        self._plain.flush()


def _interactive(stream: TextIO) -> bool:
    """A terminal, or a Jupyter kernel (whose stderr is no terminal but shows widgets)."""
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython  # type: ignore[attr-defined]

            shell = get_ipython()  # type: ignore[no-untyped-call]
        except ImportError:
            shell = None
        if shell is not None and "IPKernelApp" in shell.config:
            return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
