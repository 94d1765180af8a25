"""The run report and the index of runs, opened in a real headless Chromium.

The pages must open from disk alone: no console errors, nothing requested but the page
and its own files; the timeline must show one lane per worker that ran stages and one bar
per stage run. Each test saves a screenshot under its tmp dir.
"""

import re
import socket
from pathlib import Path

from browser import chromium as chromium  # the fixture; the alias tells ruff it is used
from browser import open_page
from report_run_stages import points, sweep

HOST = socket.gethostname()


def only_local_files(requests, folder: Path):
    """Every request is a file under ``folder`` (the page itself, its pictures)."""
    prefix = folder.resolve().as_uri()
    return all(url.startswith(prefix) for url in requests)


def test_the_report_opens_alone_and_its_timeline_has_a_lane_per_worker(
    chromium, make_manager, tmp_path
):
    manager = make_manager("browsed")
    pictures = points(2, picture="figures") + points(6, fail_at=2)[2:]
    records = manager.run(sweep, pictures, n_jobs=2, errors="continue", progress=False)
    path = manager.write_report()

    page = open_page(path, screenshot=tmp_path / "report.png", browser=chromium)

    assert page.console_errors == []
    assert page.requests and only_local_files(page.requests, manager.reports_dir)
    assert (tmp_path / "report.png").stat().st_size > 0
    lanes = re.findall(r'data-lane="([^"]+)" data-kind="worker"', page.dom)
    assert sorted(lanes) == sorted({f"{HOST}:{r.state['pid']}" for r in records[:6]})
    bars = re.findall(
        r'<rect [^>]*data-bar="" data-record="([^"]+)" data-stage="([^"]+)"', page.dom
    )
    ran = [(r.name, s) for r in records[:6] for s in ("square", "halve")] + [
        (records[6].name, "total")
    ]
    assert sorted(bars) == sorted(ran)
    assert len(re.findall(r"<img [^>]*src=\"reportables/p\d_square_pic.png\"", page.dom)) == 2


def test_the_index_opens_alone_and_lists_each_run(chromium, make_manager, tmp_path):
    for _ in range(2):
        make_manager("indexed").run(sweep, points(2), n_jobs=1, progress=False)
    reports = tmp_path / "reports"

    index = open_page(reports / "index.html", screenshot=tmp_path / "index.png", browser=chromium)
    latest = open_page(reports / "_latest" / "index.html", browser=chromium)

    assert index.console_errors == [] and latest.console_errors == []
    assert only_local_files(index.requests + latest.requests, reports)
    runs = re.findall(r'<tr data-run=""><td><a href="(indexed_\d)_[^"]*/index.html"', index.dom)
    assert runs == ["indexed_2", "indexed_1"]
    assert (tmp_path / "index.png").stat().st_size > 0
    assert "<h1>indexed – run 2</h1>" in latest.dom
