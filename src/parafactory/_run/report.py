"""The run report: what ran, on which parameters, and what failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._model.records import Record


def render(run_info: dict[str, Any], records: Sequence[Record]) -> str:
    """A markdown report of a run and its records."""
    lines = [f"# {run_info['reference']}", ""]
    lines += [f"- {key}: `{value}`" for key, value in run_info.items()]
    lines += ["", "| record | hash | stages | state | error |", "| --- | --- | --- | --- | --- |"]
    lines += [_record_row(record) for record in records]
    return "\n".join(lines) + "\n"


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


def _record_row(record: Record) -> str:
    hash_ = record.params.hash if record.params is not None else ""
    error = f"{type(record.error).__name__}" if record.error is not None else ""
    keys = ", ".join(sorted(record.state))
    return f"| {record.name} | {hash_} | {' → '.join(record.stages)} | {keys} | {error} |"
