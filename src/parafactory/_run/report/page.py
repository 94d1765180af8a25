"""The run's report page: one folder per run, with ``index.html`` and ``run.json``.

::

    reports/
    ├── index.html                  every run, newest first (index.py)
    ├── _latest/index.html          the last run's page, its links into the run's folder
    └── <name>_<number>_<time>/
        ├── index.html              facts, parameter sets, stage graph, timeline, reportables
        ├── run.json                the facts, for the index
        └── reportables/            files the reportables rendered
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..._model.records import Record
from .facts import facts_html, run_facts
from .graph import graph_svg
from .index import write_index, write_latest
from .observer import RunObserver, outcomes
from .params import params_table
from .reportables import FOLDER, ReportableLike, reportables_section
from .style import page
from .timeline import timeline_svg

_SECTIONS = (
    ("params", "Parameter sets"),
    ("timeline", "Worker timeline"),
    ("graph", "Stage graph"),
    ("reportables", "Reportables"),
)


@dataclasses.dataclass
class RunReport:
    """What a run's report shows: the manager's run info, its records, what was observed
    of its runs, and its reportables."""

    info: Mapping[str, Any]
    records: Sequence[Record]
    observer: RunObserver
    reportables: Sequence[ReportableLike]

    def write(self, reports_dir: Path) -> Path:
        """Write the run's folder under ``reports_dir`` and update the index; returns the
        run's ``index.html``."""
        reference = str(self.info["reference"])
        folder = reports_dir / reference
        shutil.rmtree(folder / FOLDER, ignore_errors=True)  # a report written again
        folder.mkdir(parents=True, exist_ok=True)
        facts = run_facts(self.info, self.records, self.observer)
        html = self.html(facts, folder)
        path = folder / "index.html"
        path.write_text(html, encoding="utf-8")
        (folder / "run.json").write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")
        write_index(reports_dir)
        write_latest(reports_dir, reference, html)
        return path

    def facts_block(self) -> str:
        """The run's facts and outcome counts, as HTML."""
        return facts_html(run_facts(self.info, self.records, self.observer))

    def graph(self) -> str:
        """The stage graph, as SVG."""
        return graph_svg(self.records, self.observer.steps)

    def timeline(self) -> str:
        """The worker timeline, as SVG."""
        return timeline_svg(self.observer)

    def html(self, facts: Mapping[str, Any], folder: Path) -> str:
        """The page, with reportables rendered into ``folder``."""
        table = params_table(self.records, outcomes(self.records, self.observer))
        content = {
            "params": f"<div class='pf-scroll'>{table}</div>",
            "timeline": f"<div class='pf-scroll'>{self.timeline()}</div>",
            "graph": f"<div class='pf-scroll'>{self.graph()}</div>",
            "reportables": reportables_section(self.reportables, self.records, folder),
        }
        title = f"{facts['name']} – run {facts['run_number']}"
        nav = "".join(f"<a href='#{key}'>{label}</a>" for key, label in _SECTIONS)
        sections = "".join(f"<h2 id='{key}'>{label}</h2>{content[key]}" for key, label in _SECTIONS)
        body = (
            f"<p><a href='../index.html'>all runs</a></p><h1>{escape(title)}</h1>"
            f"{facts_html(facts)}<nav>{nav}</nav>{sections}"
        )
        return page(title, body)
