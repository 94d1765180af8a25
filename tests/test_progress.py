"""Progress: plain status lines when stderr is not a terminal, a tqdm bar when it is
(issue 3, item 7)."""

from __future__ import annotations

import io
import re
import sys
import time

import pytest

from helpers import SCRIPTS, run_script
from proc_stages import Job, act

SCRIPT = SCRIPTS / "proc_progress.py"
STATUS = re.compile(r"^progress_demo: (?P<text>.*) \[(?P<seconds>\d+)s\]$")


def status_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("progress_demo")]


def test_plain_status_line_when_stderr_is_a_pipe(tmp_path):
    stderr = run_script(SCRIPT, tmp_path, "default").stderr
    assert "\r" not in stderr
    lines = status_lines(stderr)
    assert len(lines) == 1, stderr  # a run shorter than 5 s: only the final line
    match = STATUS.match(lines[0])
    assert match, lines
    assert match["text"] == "6/6 records done, 0 failed"


def test_plain_closing_line_counts_the_failure(tmp_path):
    stderr = run_script(SCRIPT, tmp_path, "default", "r3").stderr
    assert "\r" not in stderr
    lines = status_lines(stderr)
    assert lines, stderr
    match = STATUS.match(lines[-1])
    assert match, lines
    assert match["text"] == "6/6 records done, 1 failed"
    # The summary follows it as a log line of its own, naming the failed record.
    after = stderr[stderr.index(lines[-1]) :].splitlines()
    summary = after[after.index("[WARNING] 5 of 6 records finished, 1 failed:") :]
    assert summary[:2] == [
        "[WARNING] 5 of 6 records finished, 1 failed:",
        "  'r3': ValueError in stage 'act'",
    ]


def test_progress_false_writes_no_status(tmp_path):
    stderr = run_script(SCRIPT, tmp_path, "off").stderr
    assert status_lines(stderr) == []
    assert "records done" not in stderr
    assert "\r" not in stderr


# -- in-process: the display itself ---------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakePipe(io.StringIO):
    def isatty(self):
        return False


def make_jobs(tmp_path, count=6, failing=None, seconds=0.0):
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    return [
        Job(
            name=f"r{i}",
            action="raise" if f"r{i}" == failing else "ok",
            seconds=seconds,
            value=i,
            marker_dir=str(markers),
        )
        for i in range(count)
    ]


def test_plain_lines_at_most_once_per_interval(make_manager, tmp_path, monkeypatch):
    interval = 0.3
    monkeypatch.setattr("parafactory._run.progress.PLAIN_LINE_SECONDS", interval)
    stream = FakePipe()
    monkeypatch.setattr(sys, "stderr", stream)
    with make_manager("progress_plain") as manager:
        started = time.monotonic()
        manager.map(make_jobs(tmp_path, count=8, seconds=0.12), [act], n_jobs=1)
        elapsed = time.monotonic() - started
    output = stream.getvalue()
    assert "\r" not in output
    lines = [line for line in output.splitlines() if line.startswith("progress_plain: ")]
    done = [int(re.match(r"progress_plain: (\d+)/8 records done", line)[1]) for line in lines]
    assert done[-1] == 8
    assert done == sorted(done)
    assert 2 <= len(lines) <= elapsed / interval + 1, (lines, elapsed)


def test_tqdm_bar_on_a_terminal(make_manager, tmp_path, monkeypatch):
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with make_manager("progress_tty") as manager:
        records = manager.map(make_jobs(tmp_path), [act], n_jobs=1)
    assert all(record.error is None for record in records)
    output = stream.getvalue()
    assert "progress_tty" in output
    assert "6/6" in output
    assert "record" in output
    assert "\r" in output  # updated in place
    assert "records done" not in output  # not the plain lines


def test_tqdm_bar_counts_failures(make_manager, tmp_path, monkeypatch):
    stream = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    with make_manager("progress_tty_fail") as manager:
        # Slow enough that tqdm redraws the bar between records (every 0.1 s at most).
        jobs = make_jobs(tmp_path, failing="r2", seconds=0.15)
        records = manager.map(jobs, [act], n_jobs=1, errors="continue")
    assert [record.name for record in records if record.error is not None] == ["r2"]
    output = stream.getvalue()
    assert "6/6" in output
    assert "failed=1" in output  # counted while the run goes on
    final = output.rsplit("\r", 1)[-1]
    assert "6/6" in final and "failed=1" in final
    assert "records finished" not in output  # the summary is a log line, not on the bar


@pytest.mark.parametrize("stream_type", [FakeTerminal, FakePipe])
def test_progress_false_shows_nothing(make_manager, tmp_path, monkeypatch, stream_type):
    stream = stream_type()
    monkeypatch.setattr(sys, "stderr", stream)
    with make_manager("progress_off") as manager:
        jobs = make_jobs(tmp_path, failing="r1")
        manager.map(jobs, [act], n_jobs=1, errors="continue", progress=False)
    assert stream.getvalue() == ""
