"""The end-of-run summary: how many records finished (and how many of those came from the
cache), then one line per record that failed or was not run because records it needs
failed, naming its stage and error.

Each failure was logged in full as it happened; the summary is the index to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import StageFailedError, UpstreamFailedError
from .._model.records import Record

LISTED_FAILURES = 20  # a sweep failing everywhere names the first ones; the log has all


def summary(records: Sequence[Record], finished: int, cached: int = 0) -> str:
    """How the run went: ``finished`` of ``records`` finished (``cached`` of them loaded
    entirely from the cache), which failed, how many were not run (what they need failed,
    or the run stopped first)."""
    unfinished = [record for record in records if record.error is not None]
    failed = sum(not isinstance(record.error, UpstreamFailedError) for record in unfinished)
    line = f"{finished} of {len(records)} records finished"
    if cached:
        line += f" ({cached} loaded from cache)"
    not_run = len(records) - finished - failed
    if failed:
        line += f", {failed} failed"
    if not_run:
        line += f", {not_run} not run"
    if not unfinished:
        return line
    unfinished.sort(key=lambda record: isinstance(record.error, UpstreamFailedError))
    lines = [line + ":", *(_failure(record) for record in unfinished[:LISTED_FAILURES])]
    if len(unfinished) > LISTED_FAILURES:
        lines.append(f"  and {len(unfinished) - LISTED_FAILURES} more (each is in the log above)")
    return "\n".join(lines)


def _failure(record: Record) -> str:
    """``  'r3': ValueError in stage 'train'``: the record, what it raised, and where; or
    ``  'r3-copy': not run, as records it needs failed``."""
    error = record.error
    if isinstance(error, UpstreamFailedError):
        return f"  {record.name!r}: not run, as records it needs failed"
    # a stage's own exception is the cause; parafactory's (a time limit, a lost worker) is it
    cause = error.__cause__ if type(error) is StageFailedError and error.__cause__ else error
    kind = getattr(cause, "type_name", type(cause).__name__)  # a stand-in keeps the name
    stage_name = getattr(error, "stage_name", None)
    where = f" in stage {stage_name!r}" if stage_name else ""
    return f"  {record.name!r}: {kind}{where}"
