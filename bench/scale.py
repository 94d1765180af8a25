"""Scale figures: planning time, how a run's cost grows with its records, a fully cached
rerun, and the parent's peak memory for W3."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parafactory import ArtifactManager

from .runners import ParafactoryRunner
from .stages import (
    CachedParams,
    experiment_cached,
    experiment_chains,
    experiment_with_total,
    outcome_of_records,
    params_of,
)
from .suite import measure
from .workloads import Task, Workload, chain, checksum, count_marks, finish

REPO_ROOT = Path(__file__).resolve().parent.parent
_PROBE_SECONDS = 300


def planning(size: int, reps: int) -> dict[str, Any]:
    """Time ``manager.plan`` of ``size`` records × 2 stages on a dry manager."""
    seconds = [_plan_once(size) for _ in range(reps)]
    median = statistics.median(seconds)
    return {
        "records": size,
        "stage_calls": 2 * size,
        "seconds": seconds,
        "median_seconds": median,
        "us_per_stage_call": median / (2 * size) * 1e6,
    }


def plan_command(size: int, reps: int) -> dict[str, Any]:
    """Time ``python -m parafactory plan`` of ``size`` records × 2 cached stages, from the
    interpreter's start to the totals printed (nothing cached: every call is looked up),
    and of one record: the start's fixed cost, for extrapolating from a smaller size."""
    with tempfile.TemporaryDirectory() as root:
        seconds = [_plan_command_once(size, root, cached=0) for _ in range(reps)]
        fixed = [_plan_command_once(1, root, cached=0) for _ in range(reps)]
    return {
        "records": size,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "one_record_seconds": statistics.median(fixed),
    }


def plan_command_cached(size: int, workers: int, reps: int) -> dict[str, Any]:
    """``plan_command`` once a run of the same sweep filled the cache: every call is a
    hit, judged from the cache's index of entries (the run kept it). Then, on the same
    cache, a tenth of the records with ``--check-files``: every entry read, its files
    checked, as a run does."""
    with tempfile.TemporaryDirectory() as root:
        _plan_project_command("run", size, root, "-j", str(workers), "--no-report", "--quiet")
        seconds = [_plan_command_once(size, root, cached=2 * size) for _ in range(reps)]
        checked = size // 10
        checking = [
            _plan_command_once(checked, root, 2 * checked, "--check-files") for _ in range(reps)
        ]
    median = statistics.median(seconds)
    return {
        "records": size,
        "seconds": seconds,
        "median_seconds": median,
        "us_per_stage_call": median / (2 * size) * 1e6,
        "checked_records": checked,
        "checked_seconds": checking,
        "checked_us_per_stage_call": statistics.median(checking) / (2 * checked) * 1e6,
    }


def _plan_command_once(size: int, root: str, cached: int, *options: str) -> float:
    start = time.perf_counter()
    completed = _plan_project_command("plan", size, root, *options)
    seconds = time.perf_counter() - start
    last = completed.stdout.decode().splitlines()[-1]
    if not last.startswith(f"{size} records, {2 * size} stage calls: {cached} from cache"):
        raise RuntimeError(f"parafactory plan of {size} records printed {last!r}")
    return seconds


def _plan_project_command(
    command: str, size: int, root: str, *options: str
) -> subprocess.CompletedProcess[bytes]:
    """``python -m parafactory COMMAND bench.plan_project`` on ``size`` records in ``root``."""
    arguments = [sys.executable, "-m", "parafactory", command, "bench.plan_project"]
    env = {**os.environ, "BENCH_PLAN_RECORDS": str(size), "PYTHONPATH": str(REPO_ROOT / "src")}
    return subprocess.run(
        [*arguments, "--root", root, *options],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        check=True,
    )


def _plan_once(size: int) -> float:
    """One planning, with fresh parameter sets (their hashes are computed while planning)."""
    param_sets = [params_of("plan", Task("tiny", i)) for i in range(size)]
    manager = ArtifactManager("bench_plan", dry=True)
    gc.collect()
    start = time.perf_counter()
    steps = manager.plan(experiment_chains, param_sets).steps
    seconds = time.perf_counter() - start
    if len(steps) != size:
        raise RuntimeError(f"planning {size} records made {len(steps)} steps, not {size}")
    return seconds


def run_growth(sizes: Sequence[int], workers: int, reps: int) -> list[dict[str, Any]]:
    """Warm runs of W1's tiny records at each size: the cost per record should not grow."""
    runner = ParafactoryRunner(workers, loops=0)
    measure(runner, _tiny_workload(sizes[0]), "warm", -1)  # start the pool outside the timing
    return [_growth_at(_tiny_workload(size), runner, reps) for size in sizes]


def _tiny_workload(size: int) -> Workload:
    return Workload(
        "W1", f"{size:,} records × 2 tiny stages", tuple(Task("tiny", i) for i in range(size))
    )


def _growth_at(workload: Workload, runner: ParafactoryRunner, reps: int) -> dict[str, Any]:
    runs = [measure(runner, workload, "warm", rep) for rep in range(reps)]
    median = statistics.median(run.seconds for run in runs)
    return {
        "records": len(workload.tasks),
        "seconds": [run.seconds for run in runs],
        "median_seconds": median,
        "us_per_record": median / len(workload.tasks) * 1e6,
        "checksums": sorted({run.checksum for run in runs}),
        "serial_checksum": checksum(finish(workload, [chain(task) for task in workload.tasks])),
    }


def cached_rerun(workload: Workload, workers: int, reps: int) -> dict[str, Any]:
    """Fill a cache with ``workload`` on cached stages, then time reruns that execute nothing."""
    with tempfile.TemporaryDirectory(prefix="parafactory-bench-") as directory:
        root = Path(directory)
        markers = root / "markers"
        markers.mkdir()
        fill_seconds, _ = _cached_run(workload, root, workers)
        executed_filling = count_marks(markers)
        reruns = [_cached_run(workload, root, workers) for _ in range(reps)]
        executed_rerunning = count_marks(markers) - executed_filling
    return {
        "records": len(workload.tasks),
        "fill_seconds": fill_seconds,
        "stages_executed_filling": executed_filling,
        "seconds": [seconds for seconds, _ in reruns],
        "median_seconds": statistics.median(seconds for seconds, _ in reruns),
        "stages_executed_rerunning": executed_rerunning,
        "checksums": sorted({digest for _, digest in reruns}),
    }


def _cached_run(workload: Workload, root: Path, workers: int) -> tuple[float, str]:
    """One run of the cached experiment in ``root``; its seconds and its states' checksum."""
    markers = str(root / "markers")
    cached_sets = [
        CachedParams(name=f"cached-{t.index}", kind=t.kind, index=t.index, marker_dir=markers)
        for t in workload.tasks
    ]
    gc.collect()
    start = time.perf_counter()
    manager = ArtifactManager("bench_cached", root=root)
    records = manager.run(experiment_cached, cached_sets, n_jobs=workers, progress=False)
    seconds = time.perf_counter() - start
    manager.close()
    return seconds, checksum(outcome_of_records(records))


def report_cost(records: int, workers: int, reps: int) -> dict[str, Any]:
    """Time ``write_report()`` after a run of ``records`` tiny records and their aggregate
    (its page: parameter table, timeline, stage graph), ``reps`` times."""
    with tempfile.TemporaryDirectory(prefix="parafactory-bench-") as directory:
        manager = ArtifactManager("bench_report", root=directory, report=False)
        param_sets = [params_of("report", Task("tiny", i)) for i in range(records)]
        manager.run(experiment_with_total, param_sets, n_jobs=workers, progress=False)
        seconds = []
        for _ in range(reps):
            gc.collect()
            start = time.perf_counter()
            path = manager.write_report()
            seconds.append(time.perf_counter() - start)
        page = path.read_text(encoding="utf-8") if path is not None else ""
        manager.close()
    return {
        "records": records,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "page_kb": len(page.encode()) / 1024,
        "dense_lanes": page.count('data-density="1"'),
        "lanes": page.count("data-lane="),
    }


def peak_rss(mode: str, records: int) -> dict[str, Any]:
    """Run W3 in a fresh ``python -m bench.rss_probe`` and return what it measured."""
    command = [sys.executable, "-m", "bench.rss_probe", f"--{mode}", "--records", str(records)]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=_PROBE_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures
