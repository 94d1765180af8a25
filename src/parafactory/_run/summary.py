"""The end-of-run summary: how many records finished (and how many of those came from the
cache), then one line per failed record, naming its stage and error.

Each failure was logged in full as it happened; the summary is the index to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import StageFailedError
from .._model.records import Record

LISTED_FAILURES = 20  # a sweep failing everywhere names the first ones; the log has all


def summary(records: Sequence[Record], finished: int, cached: int = 0) -> str:
    """How the run went: ``finished`` of ``records`` finished (``cached`` of them loaded
    entirely from the cache), which failed, how many never ran."""
    failed = [record for record in records if record.error is not None]
    line = f"{finished} of {len(records)} records finished"
    if cached:
        line += f" ({cached} loaded from cache)"
    not_run = len(records) - finished - len(failed)
    if failed:
        line += f", {len(failed)} failed"
    if not_run:
        line += f", {not_run} not run"
    if not failed:
        return line
    lines = [line + ":", *(_failure(record) for record in failed[:LISTED_FAILURES])]
    if len(failed) > LISTED_FAILURES:
        lines.append(f"  and {len(failed) - LISTED_FAILURES} more (each is in the log above)")
    return "\n".join(lines)


def _failure(record: Record) -> str:
    """``  'r3': ValueError in stage 'train'``: the record, what it raised, and where."""
    error = record.error
    # a stage's own exception is the cause; parafactory's (a time limit, a lost worker) is it
    cause = error.__cause__ if type(error) is StageFailedError and error.__cause__ else error
    kind = getattr(cause, "type_name", type(cause).__name__)  # a stand-in keeps the name
    stage_name = getattr(error, "stage_name", None)
    where = f" in stage {stage_name!r}" if stage_name else ""
    return f"  {record.name!r}: {kind}{where}"
