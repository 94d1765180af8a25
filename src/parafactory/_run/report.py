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


def _record_row(record: Record) -> str:
    hash_ = record.params.hash if record.params is not None else ""
    error = f"{type(record.error).__name__}" if record.error is not None else ""
    keys = ", ".join(sorted(record.state))
    return f"| {record.name} | {hash_} | {' → '.join(record.stages)} | {keys} | {error} |"
