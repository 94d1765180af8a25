"""The index of runs in a reports folder, newest first, and ``_latest``: the last run.

Each run's folder holds ``run.json`` (its facts, see :mod:`.facts`); the index is
rebuilt from them after every report, so deleting a run's folder drops it from the index.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from .facts import outcome_html
from .style import based_at, page

LATEST = "_latest"


def write_index(reports_dir: Path) -> Path:
    """Write ``index.html`` listing every run; returns its path."""
    runs = sorted(_runs(reports_dir), key=_newest_first, reverse=True)
    rows = "".join(_row(folder, facts) for folder, facts in runs)
    body = (
        "<h1>Reports</h1>"
        f"<p><a href='{LATEST}/index.html' data-latest=''>latest run</a></p>"
        "<table class='pf-runs'><thead><tr><th>run</th><th>experiment</th><th>number</th>"
        "<th>started</th><th>wall time</th><th>outcome</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    index = reports_dir / "index.html"
    index.write_text(page("Reports", body), encoding="utf-8")
    return index


def _runs(reports_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for facts_path in reports_dir.glob("*/run.json"):
        if facts_path.parent.name == LATEST:
            continue
        try:
            facts = json.loads(facts_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a run being written, or a damaged one: it is not listed
        found.append((facts_path.parent.name, facts))
    return found


def _newest_first(run: tuple[str, dict[str, Any]]) -> tuple[str, int]:
    facts = run[1]
    return (str(facts.get("timestamp", "")), int(facts.get("run_number", 0)))


def _row(folder: str, facts: dict[str, Any]) -> str:
    wall = facts.get("wall_seconds")
    cells = [
        f"<a href='{escape(folder)}/index.html'>{escape(folder)}</a>",
        escape(str(facts.get("name", ""))),
        escape(str(facts.get("run_number", ""))),
        escape(str(facts.get("timestamp", ""))),
        "" if wall is None else f"{wall:.2f} s",
        outcome_html(facts),
    ]
    return "<tr data-run=''>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def write_latest(reports_dir: Path, reference: str, html: str) -> None:
    """``_latest/index.html``: the run's page, its links resolving from the run's folder
    (no redirect, no symbolic link: it opens anywhere, and its files are not copied)."""
    folder = reports_dir / LATEST
    folder.mkdir(exist_ok=True)
    (folder / "index.html").write_text(based_at(html, f"../{reference}/"), encoding="utf-8")
