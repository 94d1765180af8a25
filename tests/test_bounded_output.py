"""Huge text is cut: an exception message or a log line over 64 KiB keeps its beginning and
its end, with a note of how much was cut, on the console, in the run's log file and in
the record's error; and the parent never holds a 50 MB message from a worker.

Stages are in ``fault_stages`` (:func:`fault_stages.shout`). Console and peak memory are
measured in a script run in a subprocess, which the test writes into ``tmp_path``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fault_stages import HEAD, TAIL, Fault, shout
from parafactory import StageFailedError

pytestmark = pytest.mark.timeout(120)

TEXT_LIMIT = 64 * 1024
CUT_NOTE = re.compile(r"\[\.\.\. [\d,]+ characters cut \.\.\.\]")
SHORT = TEXT_LIMIT + 1024  # a cut text: its limit, plus the note
TESTS = Path(__file__).parent


def huge_sweep(size):
    return [
        Fault(name="raiser", action="raise", size=size),
        Fault(name="talker", action="log", size=size),
        Fault(name="quiet", action="ok", value=3),
    ]


def assert_cut(text, fill):
    """``text`` is short, says it was cut, and kept both ends of the huge text."""
    assert len(text) < SHORT, len(text)
    assert CUT_NOTE.search(text), text[:200]
    assert HEAD in text and fill * 100 in text
    return True


def test_a_huge_message_or_log_line_is_cut_in_the_error_and_the_log_file(manager, backend):
    records = manager.map(
        huge_sweep(200_000), [shout], errors="continue", progress=False, **backend
    )
    raiser, talker, quiet = records

    error = raiser.error
    assert isinstance(error, StageFailedError)
    assert_cut(str(error), "x")
    assert TAIL in str(error)
    assert "ValueError" in str(error)
    if backend != {"n_jobs": 1}:  # from a worker, what stands for the stage's error is cut
        assert_cut(str(error.__cause__), "x")
    assert talker.error is None and talker.state == {"said": 0}
    assert quiet.error is None and quiet.state == {"said": 3}

    manager.close()  # flushes and closes the log file
    log = manager.log_path.read_text()
    assert len(log) < 4 * SHORT, len(log)
    lines = log.splitlines()
    assert max(len(line) for line in lines) <= TEXT_LIMIT
    assert len(CUT_NOTE.findall(log)) >= 2  # the failure, and the logged line
    assert any("[talker] " + HEAD in line for line in lines)
    assert "ValueError: " + HEAD in log
    assert any(line.endswith("[quiet] a short line from quiet") for line in lines)


SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path

    sys.path.insert(0, {tests!r})
    from fault_stages import Fault, shout
    from parafactory import ArtifactManager

    out, size, backend = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    manager = ArtifactManager("huge", root=out)
    options = {{"n_jobs": 1}} if backend == "inprocess" else {{"n_jobs": 2, "backend": "loky"}}
    params = [
        Fault(name="raiser", action="raise", size=size),
        Fault(name="talker", action="log", size=size),
        Fault(name="quiet", action="ok"),
    ]
    records = manager.map(params, [shout], errors="continue", progress=False, **options)
    manager.close()
    (out / "result.json").write_text(json.dumps({{
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "error": str(records[0].error),
        "errors": [type(record.error).__name__ for record in records],
        "log_path": str(manager.log_path),
    }}))
    """
)


def run_huge_script(tmp_path, size, backend):
    tmp_path.mkdir(exist_ok=True)
    script = tmp_path / "huge_text.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    completed = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(size), backend],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert completed.returncode == 0, completed.stderr[-5000:]
    return completed, json.loads((tmp_path / "result.json").read_text())


@pytest.mark.parametrize(
    ("backend", "size"),
    [("loky", 50_000_000), ("inprocess", 1_000_000)],
    ids=["loky-50MB", "inprocess-1MB"],
)
def test_the_console_and_the_log_file_get_cut_text(tmp_path, backend, size):
    completed, result = run_huge_script(tmp_path, size, backend)
    assert result["errors"] == ["StageFailedError", "NoneType", "NoneType"]
    assert_cut(result["error"], "x")

    console = completed.stderr
    assert len(console) < 1_000_000, len(console)
    assert len(CUT_NOTE.findall(console)) >= 2, console[:2000]
    assert "[ERROR] stage 'shout' failed on record 'raiser':\nTraceback" in console
    assert "\nValueError: " + HEAD in console  # the message, once, ends its traceback
    assert "[talker] " + HEAD in console
    assert "[quiet] a short line from quiet" in console

    log = Path(result["log_path"]).read_text()
    assert len(log) < 1_000_000, len(log)
    assert len(CUT_NOTE.findall(log)) >= 2
    assert max(len(line) for line in log.splitlines()) <= TEXT_LIMIT


def test_the_parents_peak_memory_stays_bounded_with_50_mb_messages_in_workers(tmp_path):
    """A stage raising ValueError("x" * 50_000_000), another logging a 50 MB line, on loky:
    the parent never holds either. Its peak is compared with the same sweep's with short
    messages, run the same way: native libraries' buffers (which differ with the
    environment, e.g. thread-count variables another library set) weigh the same in both,
    and one copy of the message would add 50 MB."""
    _, short = run_huge_script(tmp_path / "short", 1_000, "loky")
    _, huge = run_huge_script(tmp_path / "huge", 50_000_000, "loky")
    extra_mib = (huge["peak_kib"] - short["peak_kib"]) / 1024
    assert extra_mib < 25, f"the parent peaked {extra_mib:.0f} MiB higher with 50 MB messages"
