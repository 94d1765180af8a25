"""The report's parts as Jupyter display objects (``manager.display_*``).

IPython is imported here, when a display is asked for: it is only present where
notebooks run, and parafactory does not depend on it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..._errors import DisplayUnavailableError
from ..._model.records import Record
from .reportables import FOLDER, ReportableLike, by_record, inline_files, render_one


def _display() -> Any:
    try:
        import IPython.display
    except ImportError as error:
        raise DisplayUnavailableError(
            "the display_* methods show a run in a Jupyter notebook and need IPython "
            "(pip install ipython); outside a notebook, use manager.write_report()"
        ) from error
    return IPython.display


def html(content: str) -> Any:
    """An ``IPython.display.HTML`` object."""
    return _display().HTML(content)


def svg(content: str) -> Any:
    """An ``IPython.display.SVG`` object (shown as ``image/svg+xml``)."""
    return _display().SVG(data=content)


def reportables_html(
    reportables: Sequence[ReportableLike], records: Sequence[Record], folder: Path | None
) -> Any:
    """The reportables, grouped by record, rendered into ``folder/reportables`` (a
    temporary folder when ``None``: a dry run) with their files inlined."""
    display = _display()
    with tempfile.TemporaryDirectory() as scratch:
        target = (folder if folder is not None else Path(scratch)) / FOLDER
        parts = []
        for name, group in by_record(reportables, records):
            shown = "".join(render_one(reportable, target, FOLDER) for reportable in group)
            parts.append(f"<h3>{escape(name)}</h3>{inline_files(shown, target, FOLDER)}")
        return display.HTML("".join(parts) or "<p>No reportables.</p>")
