"""The artifact manager: one experiment run, its records, its files, and its sweeps."""

from __future__ import annotations

import datetime
import logging
import platform
import sys
import weakref
from pathlib import Path
from typing import Any

from . import _logs, _report
from ._records import Record
from ._run_store import next_run_number


class ArtifactManager:
    """One experiment run: a name and number, a timestamp, a log file and its records.

    Files go under the working directory unless told otherwise: the cache in
    ``data/cache``, run numbers in ``data/runs``, logs in ``logs`` and reports in
    ``reports``. ``dry=True`` writes nothing at all.

    >>> manager = ArtifactManager("notebook_example_0")
    >>> manager.run_number, manager.log_path
    (1, PosixPath('logs/notebook_example_0_1_2026-11-26-T045238.log'))
    """

    def __init__(
        self,
        name: str = "experiment",
        *,
        cache_dir: str | Path = "data/cache",
        runs_dir: str | Path = "data/runs",
        logs_dir: str | Path = "logs",
        reports_dir: str | Path = "reports",
        dry: bool = False,
        overwrite: bool = False,
        log_level: int = logging.INFO,
        console_log: bool = True,
    ) -> None:
        self.name = name
        self.dry = dry
        self.overwrite = overwrite
        self.log_level = log_level
        self.cache_dir = Path(cache_dir)
        self.reports_dir = Path(reports_dir)
        self.records: list[Record] = []
        self.timestamp = datetime.datetime.now()
        self.run_number = next_run_number(Path(runs_dir), name, dry=dry)
        self.reference = f"{name}_{self.run_number}_{self.timestamp:%Y-%m-%d-T%H%M%S}"
        self.log_path: Path | None = None if dry else Path(logs_dir) / f"{self.reference}.log"
        self.run_info: dict[str, Any] = self._describe_run()
        if console_log:
            _logs.show_on_console(log_level)
        if self.log_path is not None:
            handler = _logs.write_to_file(self.log_path, log_level)
            self._close_log = weakref.finalize(self, _logs.stop_writing, handler)

    def _register(self, record: Record) -> None:
        record.index = len(self.records)
        self.records.append(record)

    def _describe_run(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_number": self.run_number,
            "reference": self.reference,
            "timestamp": self.timestamp.isoformat(timespec="seconds"),
            "hostname": platform.node(),
            "python": sys.version.split()[0],
            "command": " ".join(sys.argv),
        }

    def write_report(self) -> Path | None:
        """Write a markdown report of this run's records; returns its path (``None`` when dry)."""
        if self.dry:
            return None
        path = self.reports_dir / self.reference / "report.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_report.render(self.run_info, self.records), encoding="utf-8")
        return path

    def close(self) -> None:
        """Stop writing this run's log file."""
        if self.log_path is not None:
            self._close_log()

    def __enter__(self) -> ArtifactManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ArtifactManager {self.reference!r} records={len(self.records)}>"
