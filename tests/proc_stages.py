"""Stages and parameters for tests whose stages run in other processes.

Loky and dask workers import this module by name (``proc_stages``): pytest puts
``tests/`` on ``sys.path`` and the worker processes inherit it; the scripts under
``tests/scripts/`` add ``tests/`` to ``sys.path`` themselves.

Every execution of :func:`act` appends lines to ``{marker_dir}/{name}.runs``
(``start``, a ``tick`` every 50 ms while it sleeps, then ``end`` or ``dying``, each
with a timestamp and the pid), one ``os.write`` on an ``O_APPEND`` file per line, so
tests can count executions and see when they ran, even those whose process was
killed from outside (their last tick says when, to within 50 ms).
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from parafactory import ExperimentParameters, JsonReporter, PickleCacher, stage

logger = logging.getLogger("proc_stages")

DYING = ("exit13", "sigkill", "segfault")


@dataclasses.dataclass
class Job(ExperimentParameters):
    """``action``: ok, sleep, raise, exit13, sigkill, segfault or dies_when_sent (see
    :func:`act`); ``seconds``: how long to sleep first."""

    action: str = "ok"
    seconds: float = 0.0
    value: int = 0
    marker_dir: str = ""


def note(params: Job, event: str) -> None:
    """Append ``event time pid`` to this record's marker file, in one write."""
    line = f"{event} {time.time()!r} {os.getpid()}\n".encode()
    path = Path(params.marker_dir) / f"{params.name}.runs"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


TICK_SECONDS = 0.05


def read_runs(marker_dir: Path, name: str) -> list[dict]:
    """The executions of :func:`act` on record ``name``, in order of start.

    Each is ``{"start", "stop", "how", "pid"}``; ``how`` is ``"end"``, ``"dying"``, or
    ``"lost"`` for one killed from outside, whose ``stop`` is its last sign of life
    plus two ticks (a generous bound on when it died).
    """
    path = Path(marker_dir) / f"{name}.runs"
    if not path.exists():
        return []
    runs: list[dict] = []
    for line in path.read_text().splitlines():
        event, when, pid = line.split()
        if event == "start":
            runs.append({"start": float(when), "stop": None, "how": None, "pid": int(pid)})
            continue
        run = next(r for r in reversed(runs) if r["pid"] == int(pid) and r["how"] is None)
        if event == "tick":
            run["stop"] = float(when)
        else:
            run["stop"], run["how"] = float(when), event
    for run in runs:
        if run["how"] is None:
            run["how"] = "lost"
            run["stop"] = (run["stop"] or run["start"]) + 2 * TICK_SECONDS
    return runs


def sleep_ticking(params: Job, seconds: float) -> None:
    """Sleep, leaving a ``tick`` line every :data:`TICK_SECONDS`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, TICK_SECONDS))
        note(params, "tick")


def die(action: str) -> None:
    if action == "exit13":
        os._exit(13)
    elif action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # the signal arrives before this ends
    elif action == "segfault":
        ctypes.string_at(0)
    raise AssertionError(f"still alive after {action}")


class DiesWhenSent:
    """A stage output that kills its process when pickled, i.e. when the worker sends it."""

    def __reduce__(self):
        os._exit(13)


@stage(outputs=["result"])
def act(record):
    """Do what ``record.params.action`` says, leaving marker lines; output ``value * 10``."""
    params = record.params
    note(params, "start")
    sleep_ticking(params, params.seconds)
    if params.action in DYING:
        note(params, "dying")
        die(params.action)
    if params.action == "raise":
        note(params, "end")
        raise ValueError(f"planned failure of {params.name}")
    if params.action == "dies_when_sent":
        # The first run ends well, but its worker dies while sending the result back;
        # every later run dies at once.
        if len(read_runs(Path(params.marker_dir), params.name)) > 1:
            note(params, "dying")
            os._exit(13)
        note(params, "end")
        return DiesWhenSent()
    note(params, "end")
    return params.value * 10


@stage(inputs=["result"], outputs=["doubled"])
def double(record, result):
    return result * 2


@stage(outputs=["pid"])
def hold(record):
    """Write this worker's pid to ``{name}.pid``; ``sleep`` records then sleep, others finish
    and write ``{name}.done``."""
    params = record.params
    directory = Path(params.marker_dir)
    (directory / f"{params.name}.pid").write_text(str(os.getpid()))
    if params.action == "sleep":
        time.sleep(params.seconds)
    if params.action == "raise":
        raise ValueError(f"planned failure of {params.name}")
    (directory / f"{params.name}.done").write_text("done")
    return os.getpid()


@stage(outputs=["said"])
def chatty(record):
    """Log a line and print a line, then sleep ``seconds`` and write ``{name}.ended``."""
    params = record.params
    logger.info("logged by %s in pid %d", params.name, os.getpid())
    print(f"printed by {params.name}", flush=True)
    time.sleep(params.seconds)
    if params.marker_dir:
        (Path(params.marker_dir) / f"{params.name}.ended").write_text(str(time.time()))
    return params.name


@stage(outputs=["program_pid", "worker_pid"])
def start_program(record):
    """Start ``sleep 30`` and leave it running; return its pid and this worker's."""
    program = subprocess.Popen(["sleep", "30"])  # returns once sleep has replaced the fork
    return program.pid, os.getpid()


# -- a writer killed while it saves a stage's reportables --------------------------------

PAUSE_SAVES = "PARAFACTORY_TEST_PAUSE_SAVES"  # a directory: pickling a Pause waits there


class Pause:
    """Pickled in a process whose environment names a directory in ``PAUSE_SAVES``, it
    touches ``saving-PID`` there and sleeps: a writer stopped mid-save, to be killed."""

    def __reduce__(self) -> tuple[type, tuple[()]]:
        directory = os.environ.get(PAUSE_SAVES)
        if directory:
            Path(directory, f"saving-{os.getpid()}").touch()
            time.sleep(60)
        return (Pause, ())


@stage(outputs=["reported"], cachers=[PickleCacher()])
def report_with_pause(record):
    """Reports a JsonReporter holding a :class:`Pause`: caching the reportables pickles it
    (a shallow copy of the reporter before that does not)."""
    record.report(JsonReporter({"value": record.params.value, "pause": Pause()}, name="paused"))
    return record.params.value
