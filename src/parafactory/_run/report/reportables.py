"""Reportables in a report or a notebook, grouped by record, with a table of contents.

A reportable is curifactory's: ``render()`` writes its files into ``reportable.path``,
then ``html()`` returns the HTML that shows them, with ``reportable.path`` now the folder
as the page sees it. In a report that is ``reportables`` next to the page; in a notebook
the files are inlined as ``data:`` URIs, so the cell's output carries them.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, Protocol

from ..._model.records import Record

FOLDER = "reportables"


class ReportableLike(Protocol):
    """What the report uses of a reportable (curifactory's ``Reportable``)."""

    name: str | None
    group: str | None
    qualified_name: str
    record: Any
    stage: str
    path: str

    def render(self) -> Any: ...

    def html(self) -> str | list[str]: ...


def by_record(
    reportables: Sequence[ReportableLike], records: Sequence[Record]
) -> list[tuple[str, list[ReportableLike]]]:
    """The reportables of each record, records in the run's order; those of no record of
    this run last, under "run"."""
    order = {id(record): index for index, record in enumerate(records)}
    groups: dict[int, tuple[str, list[ReportableLike]]] = {}
    for reportable in reportables:
        record = reportable.record
        index = order.get(id(record), len(records))
        name = record.name if index < len(records) else "run"
        groups.setdefault(index, (name, []))[1].append(reportable)
    return [groups[index] for index in sorted(groups)]


def reportables_section(
    reportables: Sequence[ReportableLike], records: Sequence[Record], folder: Path
) -> str:
    """A table of contents, then each record's reportables, rendered into
    ``folder/reportables``."""
    grouped = by_record(reportables, records)
    toc, sections, number = [], [], 0
    for name, group in grouped:
        links, shown = [], []
        for reportable in group:
            anchor = f"reportable-{number}"
            number += 1
            links.append(f"<li><a href='#{anchor}'>{escape(reportable.qualified_name)}</a></li>")
            shown.append(render_one(reportable, folder / FOLDER, FOLDER, anchor))
        toc.append(f"<li>{escape(name)}<ul>{''.join(links)}</ul></li>")
        sections.append(f"<h3 class='pf-reportable-record'>{escape(name)}</h3>{''.join(shown)}")
    if not grouped:
        return "<p>No reportables.</p>"
    return f"<ul class='pf-toc'>{''.join(toc)}</ul>{''.join(sections)}"


def render_one(reportable: ReportableLike, folder: Path, shown_as: str, anchor: str = "") -> str:
    """Render ``reportable`` into ``folder``; its HTML, with its files under ``shown_as``."""
    folder.mkdir(parents=True, exist_ok=True)
    reportable.path = str(folder)
    reportable.render()
    reportable.path = shown_as
    produced = reportable.html()
    body = "".join(produced) if isinstance(produced, list) else str(produced)
    group = f" <span class='pf-group'>{escape(reportable.group)}</span>" if reportable.group else ""
    heading = f"<h4 id='{anchor}'>" if anchor else "<h4>"
    name = escape(reportable.qualified_name)
    return f"<div class='pf-reportable'>{heading}{name}{group}</h4>{body}</div>"


def inline_files(html: str, folder: Path, shown_as: str) -> str:
    """``src="<shown_as>/file"`` attributes replaced by the file's bytes, as ``data:`` URIs."""
    pattern = re.compile(r"""(src=)(["'])""" + re.escape(shown_as) + r"""/([^"']+)\2""")

    def inline(match: re.Match[str]) -> str:
        path = folder / match.group(3)
        if not path.is_file():
            return match.group(0)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{match.group(1)}{match.group(2)}data:{kind};base64,{data}{match.group(2)}"

    return pattern.sub(inline, html)
