"""The index of runs in a reports folder, newest first, and ``_latest`` opening the last.

Each run's folder holds ``run.json`` (its facts, see :mod:`.facts`); the index is
rebuilt from them after every report, so deleting a run's folder drops it from the index.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from .facts import outcome_html
from .style import page

LATEST = "_latest"


def write_index(reports_dir: Path, latest: str) -> Path:
    """Write ``index.html`` listing every run, and ``_latest/index.html`` opening
    ``latest`` (a run folder's name); returns the index's path."""
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
    _write_latest(reports_dir / LATEST, latest)
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


def _write_latest(folder: Path, latest: str) -> None:
    """A page that opens the latest run (a redirect: a copy would duplicate its files)."""
    folder.mkdir(exist_ok=True)
    target = f"../{escape(latest)}/index.html"
    body = f"<p>Opening <a href='{target}'>{escape(latest)}</a>…</p>"
    head = f"<meta http-equiv='refresh' content='0; url={target}'>"
    (folder / "index.html").write_text(page("Latest run", body, head), encoding="utf-8")
