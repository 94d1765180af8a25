"""The workloads W1–W5 as plain deterministic functions that every runner calls.

The peers call :func:`chain` on each :class:`Task`; parafactory runs the same
:func:`first` and :func:`second` through the ``@stage`` wrappers in
:mod:`bench.stages`. This module imports numpy only (not parafactory), so a
peer's worker process starts the way it would in a user's script. Everything
is module-level so worker processes can import it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ARRAY_ELEMENTS = 50_000_000 // 8  # one 50 MB float64 array
STAGE_SECONDS = 0.05  # target duration of one W2 stage


# -- the plain functions every runner calls ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Task:
    """One record's inputs: which pair of stages, its index, and how much work.

    ``work`` is a loop count for ``"cpu"`` and an array length for ``"arrays"``.
    """

    kind: str
    index: int
    work: int = 0


def spin(loops: int, seed: int) -> int:
    """Pure-Python CPU work: ``loops`` steps of a linear congruential generator."""
    x = seed & 0x7FFFFFFF
    for _ in range(loops):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def tiny_first(task: Task) -> int:
    """W1's first stage: next to nothing."""
    return task.index * 3 + 1


def tiny_second(task: Task, a: int) -> int:
    """W1's second stage: next to nothing."""
    return (a * a + task.index) % 1_000_003


def cpu_first(task: Task) -> int:
    """W2's first stage: ``task.work`` loops of pure-Python CPU."""
    return spin(task.work, task.index)


def cpu_second(task: Task, a: int) -> int:
    """W2's second stage: as many loops again, seeded by the first stage's result."""
    return spin(task.work, a)


def arrays_first(task: Task) -> np.ndarray:
    """W3's first stage: a new array of ``task.work`` float64 values."""
    values = np.arange(task.work, dtype=np.float64)
    values *= task.index % 7 + 1
    return values


def arrays_second(task: Task, a: np.ndarray) -> np.ndarray:
    """W3's second stage: another array of the same size, computed from the first."""
    values: np.ndarray = np.sqrt(a)
    values += task.index
    return values


_STAGES: dict[str, tuple[Callable[[Task], Any], Callable[[Task, Any], Any]]] = {
    "tiny": (tiny_first, tiny_second),
    "cpu": (cpu_first, cpu_second),
    "arrays": (arrays_first, arrays_second),
}


def first(task: Task) -> Any:
    """The first stage of the task's kind."""
    return _STAGES[task.kind][0](task)


def second(task: Task, a: Any) -> Any:
    """The second stage of the task's kind, on the first stage's output ``a``."""
    return _STAGES[task.kind][1](task, a)


def chain(task: Task) -> dict[str, Any]:
    """Both stages on one task; returns the final state ``{"a": ..., "b": ...}``."""
    a = first(task)
    return {"a": a, "b": second(task, a)}


def indexed_chain(task: Task) -> tuple[int, dict[str, Any]]:
    """:func:`chain`, with the task's index, for runners that return results out of order."""
    return task.index, chain(task)


def total(finals: Sequence[int]) -> tuple[int, int]:
    """W4's aggregate over every record's final value: their count and their sum."""
    return len(finals), sum(finals)


def calibrate_loops(seconds: float = STAGE_SECONDS) -> int:
    """The loop count for which :func:`spin` takes about ``seconds`` here."""
    loops = 100_000
    for _ in range(2):  # a first guess, then a correction at about the right length
        loops = max(1, round(loops * seconds / best_seconds(loops)))
    return loops


def best_seconds(loops: int) -> float:
    """The least CPU time :func:`spin` took over three tries.

    CPU time of this thread, not wall time, so other processes sharing the machine
    do not make the stages shorter than intended.
    """
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        spin(loops, 1)
        best = min(best, time.thread_time() - start)
    return best


# -- workloads and their results ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named list of tasks; ``with_total`` adds W4's aggregate over all of them."""

    name: str
    title: str
    tasks: tuple[Task, ...]
    with_total: bool = False


@dataclasses.dataclass
class Outcome:
    """What a run ended with: each record's final state in index order, and the aggregate."""

    states: list[dict[str, Any]]
    total: Any = None


def build_workloads(
    tiny_records: int, cpu_records: int, array_records: int, loops: int
) -> list[Workload]:
    """W1–W5 at the given sizes; ``loops`` makes one W2 stage take about 50 ms."""
    cpu = tuple(Task("cpu", i, loops) for i in range(cpu_records))
    heavy = cpu_records // 2
    skewed = tuple(Task("cpu", i, 2 * loops if i < heavy else 0) for i in range(cpu_records))
    return [
        Workload(
            "W1",
            f"{tiny_records:,} records × 2 tiny stages",
            tuple(Task("tiny", i) for i in range(tiny_records)),
        ),
        Workload("W2", f"{cpu_records} records × 2 stages of ~50 ms CPU", cpu),
        Workload(
            "W3",
            f"{array_records} records × 2 stages returning 50 MB arrays",
            tuple(Task("arrays", i, ARRAY_ELEMENTS) for i in range(array_records)),
        ),
        Workload("W4", "W2 plus an aggregate over all records", cpu, with_total=True),
        Workload("W5", f"W2's work in the first {heavy} records (skew)", skewed),
    ]


def warm_up_workload(workers: int, loops: int) -> Workload:
    """A few short CPU tasks, enough for every worker to start and import this module."""
    return Workload(
        "warm-up", "warm-up", tuple(Task("cpu", i, loops // 10) for i in range(4 * workers))
    )


def finish(workload: Workload, states: list[dict[str, Any]]) -> Outcome:
    """A runner's outcome from its states in index order, with W4's aggregate when asked."""
    if not workload.with_total:
        return Outcome(states)
    return Outcome(states, total([state["b"] for state in states]))


def checksum(outcome: Outcome) -> str:
    """A digest of every state and the aggregate; arrays count by a few elements and sums."""
    digest = hashlib.md5()
    for state in outcome.states:
        for key in sorted(state):
            digest.update(f"{key}={_describe(state[key])};".encode())
        digest.update(b"|")
    digest.update(f"total={_describe(outcome.total)}".encode())
    return digest.hexdigest()


def _describe(value: Any) -> str:
    if not isinstance(value, np.ndarray):
        return repr(value)
    flat = value.reshape(-1)
    picks = [float(flat[i]) for i in {0, flat.size // 3, flat.size // 2, flat.size - 1}]
    return f"array{value.shape}/{value.dtype}/{sorted(picks)}/{float(flat.sum())!r}"


# -- counting executions across processes --------------------------------------------------


def mark(directory: str) -> None:
    """Count one stage execution: a line in this process's file in ``directory``."""
    if directory:
        with open(os.path.join(directory, f"{os.getpid()}.count"), "a") as file:
            file.write("1\n")


def count_marks(directory: str | Path) -> int:
    """How many stage executions :func:`mark` counted in ``directory``."""
    return sum(len(path.read_text().splitlines()) for path in Path(directory).glob("*.count"))
