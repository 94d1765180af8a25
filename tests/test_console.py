"""What a user sees on the console (issue 13, item 5): each stage says once what it did,
the bar and the summary count cached records, log lines never land on the bar's line,
a failure shows its message and its traceback once, and the traceback of a stage defined
in ``__main__`` shows the script's file and line, also from a worker.

The script (``scripts/console_demo.py``) runs as a user would run it: in a terminal (a
pseudo-terminal here, read back as a screen would show it) or with stderr in a file.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import cache_stages as cs
from helpers import SCRIPTS

SCRIPT = SCRIPTS / "console_demo.py"
FAILED = ["r0", "r3", "r6", "r9"]
BAR = re.compile(r"console_demo: +\d+%\|")


def run_in_terminal(out: Path, mode: str) -> tuple[int, list[str]]:
    """Run the script with stderr on a 120-column pseudo-terminal; returns its exit status
    and the lines the terminal shows (a carriage return goes back to the line's start)."""
    main, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), mode],
        cwd=out,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    written = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the script ended
            break
        if not chunk:
            break
        written += chunk
    os.close(main)
    return process.wait(timeout=60), screen(written.decode().rstrip())


def screen(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: each carriage return goes back to the start
    of the line, and what follows overwrites it."""
    shown = []
    for line in text.replace("\r\n", "\n").split("\n"):
        cells: list[str] = []
        for part in line.split("\r"):
            cells[: len(part)] = part
        shown.append("".join(cells).rstrip())
    return shown


def run_to_file(out: Path, mode: str) -> tuple[int, list[str]]:
    """Run the script with stderr in a file; returns its exit status and stderr's lines."""
    with open(out / "stderr.txt", "w") as stderr:
        process = subprocess.run(
            [sys.executable, str(SCRIPT), str(out), mode], cwd=out, stderr=stderr, timeout=60
        )
    return process.returncode, (out / "stderr.txt").read_text().splitlines()


RUNS = {"terminal": run_in_terminal, "file": run_to_file}


def failure_blocks(lines: list[str]) -> dict[str, list[str]]:
    """Each failure the console showed: its record, and its lines up to the message."""
    blocks = {}
    for i, line in enumerate(lines):
        header = re.fullmatch(r"\[ERROR\] stage 'second' failed on record '(\w+)':", line)
        if header:
            end = next(j for j in range(i, len(lines)) if lines[j].startswith("ValueError"))
            blocks[header[1]] = lines[i : end + 1]
    return blocks


def line_of(text: str) -> int:
    """The number of the script's line that holds ``text``."""
    return next(n for n, line in enumerate(SCRIPT.read_text().splitlines(), 1) if text in line)


def expected_block(name: str) -> list[str]:
    """What a failure of ``name`` shows: where, then the traceback from the user's code
    (the script, though the stage ran in a worker), ending with the message."""
    value = name.removeprefix("r")
    return [
        f"[ERROR] stage 'second' failed on record '{name}':",
        "Traceback (most recent call last):",
        f'  File "{SCRIPT}", line {line_of("return 2 * check")}, in second',
        "    return 2 * check(a, record.params.fail)",
        "               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        f'  File "{SCRIPT}", line {line_of("raise ValueError")}, in check',
        '    raise ValueError(f"no good: {value}")',
        f"ValueError: no good: {value}",
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", RUNS)
def test_failures_show_their_message_and_traceback_once(tmp_path, how):
    status, lines = RUNS[how](tmp_path, "continue")
    assert status == 0, "\n".join(lines)
    blocks = failure_blocks(lines)
    assert blocks == {name: expected_block(name) for name in FAILED}, "\n".join(lines)
    text = "\n".join(lines)
    for name in FAILED:
        assert text.count(f"no good: {name[1:]}") == 1, text  # the message, once
    assert text.count("Traceback (most recent call last)") == len(FAILED)
    assert "<dynamic-code>" not in text
    # The summary ends the run: the counts, then one line per failed record.
    end = lines.index("[WARNING] 8 of 12 records finished, 4 failed:")
    assert lines[end + 1 : end + 5] == [f"  '{n}': ValueError in stage 'second'" for n in FAILED]
    assert lines[end - 2 : end] == [
        "[INFO] stage 'first': 12 computed",
        "[INFO] stage 'second': 8 computed, 4 failed",
    ]
    # The log file has each traceback in full (parafactory's frames too) and the summary.
    log = Path((tmp_path / "log_path.txt").read_text()).read_text()
    assert log.count("Traceback (most recent call last)") == len(FAILED)
    assert log.count("in run_chain") == len(FAILED)
    assert "  'r9': ValueError in stage 'second'" in log


@pytest.mark.timeout(120)
def test_log_lines_never_land_on_the_bar_line_in_a_terminal(tmp_path):
    status, lines = run_in_terminal(tmp_path, "continue")
    assert status == 0, "\n".join(lines)
    bars = [line for line in lines if BAR.search(line)]
    assert bars, "\n".join(lines)  # a bar was drawn ...
    assert all(BAR.match(line) for line in bars), bars  # ... always at a line's start
    assert all(line.endswith("record/s, failed=4]") for line in bars), bars  # ... and alone
    assert "12/12" in bars[-1]
    worker_lines = [line for line in lines if re.search(r"\[r\d+\] (first|second) on", line)]
    assert len(worker_lines) == 24  # what every stage logged, each on a line of its own
    assert all(line.startswith("[INFO] [r") for line in worker_lines), worker_lines


@pytest.mark.timeout(120)
def test_raise_shows_the_raised_failure_once_from_the_users_code(tmp_path):
    status, lines = run_to_file(tmp_path, "raise")
    assert status == 1
    text = "\n".join(lines)
    # The run's own log does not show the failure it raises: Python prints the error.
    assert "[ERROR] stage 'second' failed on record 'r0'" not in text
    # Records in flight may fail too: those the log shows, as with errors="continue".
    others = failure_blocks(lines)
    assert set(others) <= set(FAILED[1:])
    assert all(block == expected_block(name) for name, block in others.items())
    # The raised error: the worker's traceback, then this process's.
    assert text.count("Traceback (most recent call last)") == 2 + len(others)
    start = text.index('"""\nTraceback')
    worker = text[start : text.index('\n"""\n', start)]
    assert worker.splitlines()[2:] == expected_block("r0")[2:-1]  # from the user's code
    # The message: the worker's exception, then in the raised error's (naming the record)
    assert text.count("no good: 0") == 2
    assert lines[-1] == (
        "parafactory._errors.StageFailedError: stage 'second' failed on record 'r0': "
        "ValueError: no good: 0"
    )
    assert "  'r0': ValueError in stage 'second'" in lines  # in the summary too
    assert "<dynamic-code>" not in text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", RUNS)
def test_a_cached_rerun_says_so_on_the_bar_in_the_summary_and_in_the_log(tmp_path, how):
    status, first = RUNS[how](tmp_path, "ok")
    assert status == 0, "\n".join(first)
    assert "[INFO] stage 'first': 12 computed" in first
    assert "[INFO] 12 of 12 records finished" in first

    status, lines = RUNS[how](tmp_path, "ok")
    assert status == 0, "\n".join(lines)
    assert lines[-3:] == [
        "[INFO] stage 'first': 12 loaded from cache",
        "[INFO] stage 'second': 12 loaded from cache",
        "[INFO] 12 of 12 records finished (12 loaded from cache)",
    ]
    if how == "terminal":
        assert re.search(r"12/12 \[.*cached=12\]$", lines[-4]), lines
    else:
        plain = r"console_demo: 12/12 records done, 12 loaded from cache, 0 failed \[\d+s\]"
        assert re.fullmatch(plain, lines[-4]), lines
    log = Path((tmp_path / "log_path.txt").read_text()).read_text()
    assert "stage 'second': 12 loaded from cache" in log
    assert "12 of 12 records finished (12 loaded from cache)" in log


# -- on every backend, in this process -------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def said(caplog) -> list[str]:
    """What parafactory said at INFO and above, in order."""
    return [r.getMessage() for r in caplog.records if r.name == "parafactory"]


def test_each_stage_says_once_what_it_did_and_cached_records_are_counted(
    make_manager, tmp_path, backend, caplog, monkeypatch
):
    caplog.set_level(logging.INFO)
    params = cs.sweep(tmp_path / "markers", 3)
    make_manager("tally").run(cs.chain_experiment, params, progress=False, **backend)
    assert said(caplog)[-4:] == [
        "stage 'first': 3 computed",
        "stage 'second': 3 computed",
        "stage 'total': 1 computed",
        "4 of 4 records finished",
    ]

    caplog.clear()
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    make_manager("tally").run(cs.chain_experiment, params, **backend)
    assert said(caplog)[-4:] == [
        "stage 'first': 3 loaded from cache",
        "stage 'second': 3 loaded from cache",
        "stage 'total': 1 loaded from cache",
        "4 of 4 records finished (4 loaded from cache)",
    ]
    assert re.search(r"4/4 \[.*cached=4\]", sys.stderr.getvalue().rsplit("\r", 1)[-1])

    caplog.clear()
    params[1].overwrite = True
    make_manager("tally").run(cs.chain_experiment, params, progress=False, **backend)
    reason = "recomputed because its parameters set overwrite=True ('r01')"
    assert said(caplog)[-4:] == [
        f"stage 'first': 2 loaded from cache, 1 {reason}",
        "stage 'second': 2 loaded from cache, 1 recomputed because its parameters set "
        "overwrite=True ('r01')",
        "stage 'total': 1 recomputed because its cache is stale: an upstream stage changed "
        "('record #3')",
        "4 of 4 records finished (2 loaded from cache)",
    ]
