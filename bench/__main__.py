"""``python -m bench [--quick] [--reps N] [--out PATH]``: run the suite, print it, save it.

The markdown report goes to stdout, progress to stderr, every figure to
``bench/results/latest.json`` (``quick.json`` with ``--quick``, so a quick run
never replaces the full figures; or ``--out``). Timings are only reported; a
checksum that differs from the serial run's is an error (exit status 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import parafactory

from . import report, scale
from .runners import make_runners, stop_loky
from .suite import Config, Run, checksum_errors, medians, run_suite, spreads
from .workloads import Workload, best_seconds, build_workloads, calibrate_loops

RESULTS = scale.REPO_ROOT / "bench" / "results"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _show_run(run: Run) -> None:
    _say(f"  {run.workload} {run.phase:4} rep {run.rep}  {run.runner:11} {run.seconds:8.3f} s")


def usable_cpus() -> int:
    """CPUs this process may run on: every runner gets this many workers."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine() -> dict[str, Any]:
    """What the figures ran on."""
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "multiprocessing_start_method": multiprocessing.get_start_method(),
        "load_before": [round(load, 2) for load in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    """Versions of parafactory and its peers, and the repository's commit."""
    found = {"parafactory": parafactory.__version__}
    for name in ("joblib", "loky", "numpy"):
        found[name] = importlib.metadata.version(name)
    found["commit"] = _commit()
    return found


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=scale.REPO_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted src" if git("status", "--porcelain", "src") else "")


def run_workloads(workloads: Sequence[Workload], workers: int, loops: int, reps: int) -> list[Run]:
    """Every runner on every workload; the pools are stopped at the end."""
    runners = make_runners(workers, loops)
    for workload in workloads:
        _say(f"{workload.name}: {workload.title}")
    try:
        return run_suite(workloads, runners, reps, report=_show_run)
    finally:
        for runner in runners:
            runner.close()


def run_scale(
    config: Config, workloads: Sequence[Workload], workers: int, reference: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """Planning, run growth, the cached rerun and peak memory; with any checksum or count
    errors."""
    _say("scale: planning")
    figures: dict[str, Any] = {
        "planning": [scale.planning(size, config.reps) for size in config.planning_sizes]
    }
    _say("scale: parafactory plan")
    figures["plan_command"] = scale.plan_command(config.planning_sizes[-1], config.reps)
    _say("scale: parafactory plan of a cached sweep")
    figures["plan_command_cached"] = scale.plan_command_cached(
        config.planning_sizes[-1], workers, config.reps
    )
    _say("scale: run cost against the number of records")
    growth = figures["growth"] = scale.run_growth(config.growth_sizes, workers, config.reps)
    errors = [
        f"growth run of {g['records']} records: checksums {g['checksums']} differ from "
        f"serial's {g['serial_checksum']}"
        for g in growth
        if g["checksums"] != [g["serial_checksum"]]
    ]
    _say("scale: fully cached rerun of W1")
    w1 = next(workload for workload in workloads if workload.name == "W1")
    cached = figures["cached_rerun"] = scale.cached_rerun(w1, workers, config.reps)
    errors += _cached_errors(cached, reference["W1"])
    _say("scale: writing the report of a run")
    figures["report"] = scale.report_cost(config.tiny_records, workers, config.reps)
    stop_loky()
    figures["rss"] = {}
    for mode in config.rss_modes:
        _say(f"scale: W3 peak RSS, {mode}")
        probe = figures["rss"][mode] = scale.peak_rss(mode, config.array_records)
        if probe["checksum"] != reference["W3"]:
            errors.append(
                f"W3 {mode} (rss_probe): checksum {probe['checksum']} differs from serial's "
                f"{reference['W3']}"
            )
    return figures, errors


def _cached_errors(cached: dict[str, Any], expected: str) -> list[str]:
    errors = []
    if cached["stages_executed_rerunning"] != 0:
        errors.append(f"W1 cached rerun executed {cached['stages_executed_rerunning']} stages")
    if cached["stages_executed_filling"] != 2 * cached["records"]:
        errors.append(f"W1 cached filling run executed {cached['stages_executed_filling']} stages")
    if cached["checksums"] != [expected]:
        errors.append(f"W1 cached rerun: checksums {cached['checksums']} differ from {expected}")
    return errors


def run_bench(config: Config) -> dict[str, Any]:
    """The whole bench: calibration, the workloads, the scale figures; every figure found."""
    started = time.perf_counter()
    about = machine()
    workers = about["usable_cpus"]
    loops = calibrate_loops()
    sizes = (config.tiny_records, config.cpu_records, config.array_records)
    workloads = build_workloads(*sizes, loops=loops)
    runs = run_workloads(workloads, workers, loops, config.reps)
    errors = checksum_errors(runs)
    reference = {run.workload: run.checksum for run in runs if run.runner == "serial"}
    figures, scale_errors = run_scale(config, workloads, workers, reference)
    found_medians = medians(runs)
    about["load_after"] = [round(load, 2) for load in os.getloadavg()]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": about,
        "versions": versions(),
        "settings": {
            **dataclasses.asdict(config),
            "workers": workers,
            "loops": loops,
            "stage_seconds": best_seconds(loops),
            "titles": {workload.name: workload.title for workload in workloads},
        },
        "medians": found_medians,
        "spreads": spreads(runs),
        "targets": [
            target.as_dict()
            for target in report.targets(found_medians, figures, workers, config.tiny_records)
        ],
        "scale": figures,
        "runs": [dataclasses.asdict(run) for run in runs],
        "errors": errors + scale_errors,
        "elapsed_seconds": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, print its report and write its figures; 1 if a checksum differed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer records, one repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each figure")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the JSON (default bench/results/latest.json, or quick.json)",
    )
    args = parser.parse_args(argv)
    config = Config.quick_run(args.reps) if args.quick else Config.full(args.reps)
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    results = run_bench(config)
    text = report.render(results)
    results["table"] = text
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(text)
    _say(f"figures written to {out}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
