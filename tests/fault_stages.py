"""Stages for the fault-containment tests: reused workers, time limits, huge text, run files.

Loky and dask workers import this module by name (``fault_stages``): pytest puts
``tests/`` on ``sys.path`` and the worker processes inherit it; scripts the tests write
add ``tests/`` to ``sys.path`` themselves.

Every stage that takes a :class:`Fault` with a ``marker_dir`` appends ``start PID`` to
``{marker_dir}/{name}.runs`` as it starts (one ``os.write`` on an ``O_APPEND`` file), so
tests can see which process ran a record, and how often, even when it was stopped or
killed.
"""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
import logging
import os
import resource
import signal
import time
from pathlib import Path

from parafactory import ExperimentParameters, JsonCacher, PickleCacher, Record, stage

logger = logging.getLogger("fault_stages")

LONG_SECONDS = 30.0  # how long a stage that must be stopped would otherwise run


@dataclasses.dataclass
class Fault(ExperimentParameters):
    """``action`` says what the stage does (see each stage); ``seconds`` how long."""

    action: str = "ok"
    seconds: float = LONG_SECONDS
    value: int = 0
    size: int = 0
    marker_dir: str = ""


def note_start(params: Fault) -> None:
    """Append ``start PID`` to the record's marker file, if it has a marker directory."""
    if not params.marker_dir:
        return
    path = Path(params.marker_dir) / f"{params.name}.runs"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"start {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def started_pids(marker_dir: Path, name: str) -> list[int]:
    """The pid of each process that started a stage on record ``name``, in order."""
    path = Path(marker_dir) / f"{name}.runs"
    if not path.exists():
        return []
    return [int(line.split()[1]) for line in path.read_text().splitlines()]


# -- a reused worker's process state ----------------------------------------------------

_order = itertools.count()  # per process: in which order this process ran records
ADDED_VARIABLE = "PARAFACTORY_TEST_ADDED_BY_A_STAGE"
_CAP_SYS_RESOURCE = 24  # from <linux/capability.h>
_CAPABILITY_VERSION_3 = 0x20080522


def process_view() -> dict:
    """What a record sees of its process: pid, cwd, environment, every resource limit."""
    limits = {
        name: resource.getrlimit(getattr(resource, name))
        for name in dir(resource)
        if name.startswith("RLIMIT_")
    }
    return {
        "pid": os.getpid(),
        "order": next(_order),
        "cwd": os.getcwd(),
        "environment": dict(os.environ),
        "limits": limits,
    }


@stage(inputs=None, outputs=["seen", "changed"])
def observe_then_change(record: Record):
    """Report what the process looks like, then change it as ``params.action`` says:
    ``chdir``, ``environment``, ``soft_limits``, ``hard_limit`` or
    ``hard_limit_unprivileged``, or several joined by ``+`` (``ok``: change nothing).
    ``changed`` says what the changes left (and whether a lowered hard limit could be
    raised again right away)."""
    note_start(record.params)
    seen = process_view()
    actions = record.params.action.split("+")
    for action in actions:
        _change(action)
    changed = process_view()
    if any(action.startswith("hard_limit") for action in actions):
        changed["could_raise_back"] = _could_raise_back(seen["limits"]["RLIMIT_NOFILE"])
    return seen, changed


def _change(action: str) -> None:
    if action == "chdir":
        os.chdir("/")
    elif action == "environment":
        os.environ[ADDED_VARIABLE] = "added"
        os.environ["PATH"] = "/nowhere"
        del os.environ["HOME"]
    elif action == "soft_limits":
        _lower_soft_limits()
    elif action == "hard_limit":
        _lower_hard_limit()
    elif action == "hard_limit_unprivileged":
        _drop_capability(_CAP_SYS_RESOURCE)
        _lower_hard_limit()
    elif action != "ok":
        raise ValueError(f"unknown action {action!r}")


def _lower_soft_limits() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 64), hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    lower = 1 << 36  # 64 GiB of address space: lower than unlimited, harmless meanwhile
    if soft == resource.RLIM_INFINITY or soft > lower:
        resource.setrlimit(resource.RLIMIT_AS, (lower, hard))


def _lower_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(hard - 1, 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, lower), lower))


def _could_raise_back(original: tuple[int, int]) -> bool:
    """Try to raise RLIMIT_NOFILE back to ``original``; if it works, lower it again."""
    lowered = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, original)
    except (ValueError, OSError):
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, lowered)
    return True


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_capability(capability: int) -> None:
    """Drop ``capability`` from this thread's effective and permitted sets (no-op if the
    thread does not have it), as an unprivileged process would be."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    word, bit = divmod(capability, 32)
    data[word].effective &= ~(1 << bit)
    data[word].permitted &= ~(1 << bit)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def has_capability(capability: int = _CAP_SYS_RESOURCE) -> bool:
    """Whether this process has ``capability`` in its effective set."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> capability & 1)
    return False


# -- time limits ------------------------------------------------------------------------


def act(params: Fault) -> int:
    """Spend time as ``params.action`` says, then return this process's pid.

    ``ok``: nothing; ``loop``: a busy Python loop for ``seconds``; ``sleep``: one
    ``time.sleep(seconds)``; ``naps``: short sleeps for ``seconds``; ``catch``: naps inside
    ``try: ... except Exception``; ``gil``: a C call that holds the GIL and never checks
    for signals (``sum(range(10**11))``, far longer than any test).
    """
    note_start(params)
    action, seconds = params.action, params.seconds
    if action == "loop":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    elif action == "sleep":
        time.sleep(seconds)
    elif action == "naps":
        _naps(seconds)
    elif action == "catch":
        try:
            _naps(seconds)
        except Exception:  # noqa: BLE001 - the point: a stage that swallows errors
            return -1
    elif action == "gil":
        sum(range(10**11))
    elif action != "ok":
        raise ValueError(f"unknown action {action!r}")
    return os.getpid()


def _naps(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)


@stage(inputs=None, outputs=["pid"])
def spin(record: Record):
    """:func:`act`, with no time limit of its own."""
    return act(record.params)


@stage(inputs=None, outputs=["pid"], timeout=1)
def spin_for_one_second_at_most(record: Record):
    """:func:`act`, limited to 1 s by the stage itself."""
    return act(record.params)


@stage(inputs=None, outputs=["pid"], timeout=60)
def spin_for_a_minute_at_most(record: Record):
    """:func:`act`, limited to 60 s by the stage itself."""
    return act(record.params)


NEAR_LIMIT_SECONDS = 0.02


@stage(inputs=None, outputs=["spent"], timeout=NEAR_LIMIT_SECONDS)
def near_the_limit(record: Record):
    """A busy loop of ``params.seconds``, around its own 20 ms limit."""
    end = time.monotonic() + record.params.seconds
    while time.monotonic() < end:
        pass
    return record.params.value


@stage(inputs=None, outputs=["quick"])
def instant(record: Record):
    """Returns at once; no time limit: nothing may ever stop it."""
    total = 0
    for i in range(200):
        total += i
    return record.params.value + total - 19900


def near_and_instant(param_sets, manager):
    """Records alternate: ``action="near"`` ones run near_the_limit, others instant."""
    for params in param_sets:
        record = Record(manager, params)
        if params.action == "near":
            near_the_limit(record)
        else:
            instant(record)


def spin_experiment(param_sets, manager):
    """:func:`spin` on each parameter set, for ``manager.run``."""
    for params in param_sets:
        spin(Record(manager, params))


def lenient_experiment(param_sets, manager):
    """:func:`spin_for_a_minute_at_most` on each parameter set, for ``manager.run``."""
    for params in param_sets:
        spin_for_a_minute_at_most(Record(manager, params))


# -- huge text --------------------------------------------------------------------------

HEAD, TAIL = "HEAD-OF-THE-TEXT", "END-OF-THE-TEXT"


def huge(size: int, fill: str) -> str:
    """``size`` characters of ``fill`` between recognisable ends."""
    return HEAD + fill * size + TAIL


@stage(inputs=None, outputs=["said"])
def shout(record: Record):
    """``raise``: raise ValueError with a message of ``size`` characters; ``log``: log a
    warning line that long; ``ok``: log a short line."""
    params = record.params
    if params.action == "raise":
        raise ValueError(huge(params.size, "x"))
    if params.action == "log":
        logger.warning("%s", huge(params.size, "y"))
    else:
        logger.warning("a short line from %s", params.name)
    return params.value


# -- cached stages ----------------------------------------------------------------------


@stage(inputs=None, outputs=["doubled"], cachers=[PickleCacher()])
def cached_double(record: Record):
    """``2 * value``, cached; notes each execution."""
    note_start(record.params)
    return 2 * record.params.value


@stage(inputs=["doubled"], outputs=["plus_one"], cachers=[JsonCacher()])
def cached_plus_one(record: Record, doubled):
    """``doubled + 1``, cached; notes each execution."""
    note_start(record.params)
    return doubled + 1


# -- status slots -----------------------------------------------------------------------


@stage(inputs=None, outputs=["pid"])
def damage_slots_then_die(record: Record):
    """``die``: put an empty and a short ``<pid>.status`` file (named after live processes)
    into the run's scratch directory, then SIGKILL this worker; ``sleep``: sleep
    ``seconds``; anything else: return at once."""
    from parafactory._backends.local import status as _worker_status

    note_start(record.params)
    if record.params.action == "die":
        directory = Path(_worker_status._slot[0])
        (directory / "1.status").write_bytes(b"")
        (directory / f"{os.getppid()}.status").write_bytes(b"\x01\x02\x03")
        os.kill(os.getpid(), signal.SIGKILL)
    if record.params.action == "sleep":
        time.sleep(record.params.seconds)
    return os.getpid()
