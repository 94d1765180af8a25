"""The table of parameter sets: each record's values, hash, outcome, time and error."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from html import escape

from ..._model.parameters import parameters_representation
from ..._model.records import Record
from .observer import Outcome


def params_table(records: Sequence[Record], found: dict[int, Outcome]) -> str:
    """One row per record: a column per parameter field (the union of every record's, in
    the order first seen), then outcome, duration, caching and the error, if any."""
    values = [parameters_representation(r.params) if r.params is not None else {} for r in records]
    fields = list(dict.fromkeys(name for row in values for name in row if name != "name"))
    head = ["record", "hash", "outcome", "seconds", "cache", *fields, "error"]
    rows = [
        _row(record, row, fields, found[id(record)])
        for record, row in zip(records, values, strict=True)
    ]
    header = "".join(f"<th>{escape(name)}</th>" for name in head)
    body = "".join(rows)
    return f"<table class='pf-params'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _row(record: Record, values: dict[str, str], fields: list[str], outcome: Outcome) -> str:
    hash_ = record.params.hash if record.params is not None else ""
    cells = [
        escape(record.name),
        f"<code>{escape(str(hash_ or ''))}</code>",
        f"<span class='pf-{outcome.status}'>{outcome.status}</span>",
        f"{outcome.seconds:.3f}" if outcome.stages else "",
        escape(outcome.caching),
        *(f"<code>{escape(values.get(name, ''))}</code>" for name in fields),
        _error(record.error),
    ]
    tds = "".join(f"<td>{cell}</td>" for cell in cells)
    name = escape(record.name)
    return f"<tr class='pf-row-{outcome.status}' data-record='{name}'>{tds}</tr>"


def _error(error: BaseException | None) -> str:
    """The error's message, its traceback (the worker's too) folded under it."""
    if error is None:
        return ""
    message = escape(f"{type(error).__name__}: {error}")
    trace = escape("".join(traceback.format_exception(error)))
    return f"<details class='pf-error'><summary>{message}</summary><pre>{trace}</pre></details>"
