"""The suite: every runner on every workload, repetitions interleaved, checksums compared.

The repetition loop is outside the runner loop (and the runners' order rotates
with each repetition), so a slow patch of a shared machine hits every runner
alike. In each repetition a runner first stops its pool, runs W1 cold (the
pool starts inside the timing) and warm (a second pass right after), then
W2–W5 on the warm pool. (parafactory and the loky runner share loky's one
reusable executor but with different arguments, so each restarts it: keeping
a runner's workloads together restarts it once per repetition, not per workload.)
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Sequence

from .runners import Runner
from .workloads import Workload, checksum


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes and repetitions of one bench run."""

    quick: bool
    reps: int
    tiny_records: int
    cpu_records: int
    array_records: int
    planning_sizes: tuple[int, ...]
    growth_sizes: tuple[int, ...]
    rss_modes: tuple[str, ...]

    @classmethod
    def full(cls, reps: int | None = None) -> Config:
        """The issue's sizes, each figure the median of three repetitions."""
        return cls(
            False,
            reps or 3,
            2000,
            40,
            16,
            (10_000, 100_000),
            (2_000, 20_000),
            ("serial", "eager", "lazy"),
        )

    @classmethod
    def quick_run(cls, reps: int | None = None) -> Config:
        """Fewer records and one repetition, through the same code paths (no serial probe)."""
        return cls(True, reps or 1, 500, 8, 2, (1_000, 10_000), (500, 5_000), ("eager", "lazy"))


@dataclasses.dataclass(frozen=True)
class Run:
    """One timed run: which workload, phase, runner and repetition, how long, what it made."""

    workload: str
    phase: str
    runner: str
    rep: int
    seconds: float
    checksum: str


def measure(runner: Runner, workload: Workload, phase: str, rep: int) -> Run:
    """Time one run of ``workload`` by ``runner``; the checksum is taken outside the timing."""
    inputs = runner.inputs(workload)
    gc.collect()
    start = time.perf_counter()
    raw = runner.execute(workload, inputs)
    seconds = time.perf_counter() - start
    digest = checksum(runner.outcome(workload, raw))
    del raw
    return Run(workload.name, phase, runner.name, rep, seconds, digest)


def runner_pass(runner: Runner, workloads: Sequence[Workload], rep: int) -> list[Run]:
    """One repetition of every workload by one runner: W1 cold then warm, then the rest warm.

    The W1 passes start the pool and use it, so W2–W5 find it warm; a few untimed
    tasks before each make sure.
    """
    runner.make_cold()
    runs = []
    for workload in workloads:
        if workload.name == "W1":
            runs += [measure(runner, workload, "cold", rep), measure(runner, workload, "warm", rep)]
        else:
            runner.warm_up()
            runs.append(measure(runner, workload, "warm", rep))
    return runs


def run_suite(
    workloads: Sequence[Workload],
    runners: Sequence[Runner],
    reps: int,
    report: Callable[[Run], None] = lambda run: None,
) -> list[Run]:
    """Every runner on every workload, ``reps`` times; each repetition visits every runner."""
    runs: list[Run] = []
    for rep in range(reps):
        shift = rep % len(runners)
        for runner in [*runners[shift:], *runners[:shift]]:
            for run in runner_pass(runner, workloads, rep):
                report(run)
                runs.append(run)
    return runs


def checksum_errors(runs: Sequence[Run], reference: str = "serial") -> list[str]:
    """A message for every run whose checksum differs from the reference runner's."""
    expected: dict[str, str] = {}
    for run in runs:
        if run.runner == reference:
            expected.setdefault(run.workload, run.checksum)
    return [
        f"{run.workload} {run.phase} rep {run.rep}: {run.runner} checksum {run.checksum} "
        f"differs from {reference}'s {expected.get(run.workload)}"
        for run in runs
        if run.checksum != expected.get(run.workload)
    ]


def _grouped(runs: Sequence[Run]) -> dict[str, dict[str, list[float]]]:
    """Seconds by ``"W1 cold"``-style row, then by runner."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        row = grouped.setdefault(f"{run.workload} {run.phase}", {})
        row.setdefault(run.runner, []).append(run.seconds)
    return grouped


def medians(runs: Sequence[Run]) -> dict[str, dict[str, float]]:
    """Median seconds by ``"W1 cold"``-style row, then by runner."""
    return {
        row: {runner: statistics.median(times) for runner, times in by_runner.items()}
        for row, by_runner in _grouped(runs).items()
    }


def spreads(runs: Sequence[Run]) -> dict[str, float | None]:
    """How noisy each row was: the largest (slowest − fastest) / median of any runner.

    ``None`` with a single repetition. Serial W1 (a few milliseconds) does not count.
    """
    found: dict[str, float | None] = {}
    for row, by_runner in _grouped(runs).items():
        spread = [
            (max(times) - min(times)) / statistics.median(times)
            for runner, times in by_runner.items()
            if len(times) > 1 and not (row.startswith("W1") and runner == "serial")
        ]
        found[row] = max(spread) if spread else None
    return found
