"""The facts of a run a report opens with: who ran what, where, on which code, how it went."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..._model.records import Record
from .observer import PARENT, RunObserver, counts, outcomes


def run_facts(
    info: Mapping[str, Any], records: Sequence[Record], observer: RunObserver
) -> dict[str, Any]:
    """``info`` (the manager's run_info) with the code's state and the run's outcome.

    Saved as the run folder's ``run.json``: the index of runs reads it back.
    """
    facts = dict(info)
    facts.update(_git(Path.cwd()))
    facts["packages"] = imported_versions()
    if observer.started is not None and observer.finished is not None:
        facts["wall_seconds"] = round(observer.finished - observer.started, 3)
    facts["interrupted"] = observer.interrupted
    facts["records"] = len(records)
    facts["outcomes"] = counts(outcomes(records, observer))
    facts["workers"] = sorted({chain[0] for chain in observer.chains} - {PARENT})
    return facts


def imported_versions() -> dict[str, str]:
    """The version of each top-level package this process imported that says it (cheaply:
    its ``__version__``, not a scan of the installed distributions)."""
    found = {}
    for name, module in list(sys.modules.items()):
        if "." in name or name.startswith("_") or name in sys.stdlib_module_names:
            continue
        version = vars(module).get("__version__")  # not getattr: some warn on it
        if isinstance(version, str):
            found[name] = version
    return dict(sorted(found.items()))


def _git(directory: Path) -> dict[str, Any]:
    """The commit checked out where the run started, and whether tracked files changed."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    return {
        "git_commit": commit,
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


_SHOWN = (
    ("name", "experiment"),
    ("run_number", "run number"),
    ("reference", "reference"),
    ("timestamp", "started"),
    ("command", "command line"),
    ("hostname", "host"),
    ("python", "Python"),
)


def facts_html(facts: Mapping[str, Any]) -> str:
    """The facts as a definition list, with the outcome counts."""
    rows = [(label, str(facts.get(key, ""))) for key, label in _SHOWN]
    rows.append(("git", _git_line(facts)))
    wall = facts.get("wall_seconds")
    rows.append(("wall time", "" if wall is None else f"{wall:.2f} s"))
    rows.append(("workers", ", ".join(facts.get("workers", [])) or "none"))
    items = "".join(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>" for label, value in rows)
    packages = ", ".join(f"{name} {version}" for name, version in facts.get("packages", {}).items())
    return (
        f"<dl class='pf-facts'>{items}</dl>{outcome_html(facts)}"
        "<details><summary>package versions</summary>"
        f"<p class='pf-packages'>{escape(packages)}</p></details>"
    )


def outcome_html(facts: Mapping[str, Any]) -> str:
    """``12 records: 9 computed, 2 cached, 1 failed, 0 skipped`` with a class per count."""
    tally = facts.get("outcomes", {})
    parts = [
        f"<span class='pf-{key if n else 'none'}' data-{key}='{n}'>{n} {key}</span>"
        for key, n in tally.items()
    ]
    interrupted = (
        " <strong class='pf-failed'>interrupted</strong>" if facts.get("interrupted") else ""
    )
    total = facts.get("records", 0)
    return f"<p class='pf-outcomes'>{total} records: {', '.join(parts)}{interrupted}</p>"


def _git_line(facts: Mapping[str, Any]) -> str:
    commit = facts.get("git_commit")
    if not commit:
        return "not a git repository"
    return f"{commit}" + (" (uncommitted changes)" if facts.get("git_dirty") else " (clean)")
