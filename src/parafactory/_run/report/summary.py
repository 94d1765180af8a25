"""The run's outcome in one line, for the console."""

from __future__ import annotations

from collections.abc import Sequence

from ..._model.records import Record


def summary(records: Sequence[Record], finished: int) -> str:
    """One line: how many records finished, which failed, how many never ran."""
    failed = [record for record in records if record.error is not None]
    line = f"{finished} of {len(records)} records finished"
    if failed:
        names = ", ".join(repr(record.name) for record in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        line += f", {len(failed)} failed: {names}{more}"
    not_run = len(records) - finished - len(failed)
    if not_run:
        line += f", {not_run} not run"
    return line
