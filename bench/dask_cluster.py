"""``python -m bench.dask_cluster [--stress-runs N] [--reps N]``: parafactory on dask clusters.

Two measurements, printed and saved to ``bench/results/dask_cluster.json``:

- **stress**: 6 single-threaded workers, 300 short records, run N times (5): every
  record must succeed (a spurious failure, such as distributed's ``UnboundLocalError``
  race when polling ``Future.result(timeout=...)``, counts as one).
- **adapt**: on a fresh ``LocalCluster`` scaled by ``cluster.adapt(minimum=1,
  maximum=6)``, a sweep of sleeping stages through parafactory and the same work through
  ``client.map``, side by side (alternating, each on its own new cluster); the figure
  is parafactory's time over ``client.map``'s (the target is at most 1.3).

- **join**: a run on one worker to which two join mid-run; the figure is how long
  after ``client.wait_for_workers`` sees them the first record starts on one of them
  (the target is under a second; negative: it started before that call noticed).

Stages sleep rather than compute, so the figures measure dispatch, not this machine's
cores. Run from the repository root with ``PYTHONPATH=src``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import distributed

from parafactory import ArtifactManager, ExperimentParameters, stage

from .scale import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results" / "dask_cluster.json"


@dataclasses.dataclass
class Nap(ExperimentParameters):
    seconds: float = 0.0


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@stage(outputs=["first"])
def first_nap(record: Any) -> float:
    return nap(record.params.seconds)


@stage(inputs=["first"], outputs=["second"])
def second_nap(record: Any, first: float) -> float:
    return first + nap(record.params.seconds)


@stage(outputs=["started"])
def timed_nap(record: Any) -> list[float]:
    """When and in which process it started, then a nap."""
    started = [os.getpid(), time.time()]
    nap(record.params.seconds)
    return started


def both_naps(seconds: float) -> float:
    """What the two stages do, as one function for ``client.map``."""
    return nap(seconds) + nap(seconds)


def cluster(workers: int, **options: Any) -> tuple[Any, Any]:
    made = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        **options,
    )
    return made, distributed.Client(made, set_as_default=False)


def sweep(client: Any, count: int, seconds: float, root: str) -> tuple[float, int]:
    """parafactory's time for ``count`` records of two naps, and how many failed."""
    params = [Nap(name=f"n{i}", seconds=seconds) for i in range(count)]
    with ArtifactManager("bench", root=root, dry=True, console_log=False) as manager:
        started = time.perf_counter()
        records = manager.map(
            params,
            [first_nap, second_nap],
            backend="dask",
            client=client,
            errors="continue",
            progress=False,
        )
        seconds_taken = time.perf_counter() - started
    return seconds_taken, sum(record.error is not None for record in records)


def stress(runs: int) -> dict[str, Any]:
    made, client = cluster(6)
    failures, times = [], []
    try:
        with tempfile.TemporaryDirectory() as root:
            for run in range(runs):
                seconds, failed = sweep(client, 300, 0.002, root)
                times.append(seconds)
                failures.append(failed)
                print(f"stress run {run}: {seconds:.2f} s, {failed} failed", file=sys.stderr)
    finally:
        client.close()
        made.close()
    return {"runs": runs, "records_per_run": 300, "workers": 6, "failed": failures, "s": times}


def adaptive(count: int, seconds: float, reps: int) -> dict[str, Any]:
    figures: dict[str, list[float]] = {"parafactory": [], "client.map": []}
    for rep in range(reps):
        for runner in ("client.map", "parafactory"):
            made, client = cluster(1)
            made.adapt(minimum=1, maximum=6)
            try:
                started = time.perf_counter()
                if runner == "client.map":
                    client.gather(client.map(both_naps, [seconds] * count, pure=False))
                    taken = time.perf_counter() - started
                else:
                    with tempfile.TemporaryDirectory() as root:
                        taken, failed = sweep(client, count, seconds, root)
                    assert failed == 0, f"{failed} records failed"
                figures[runner].append(taken)
                print(f"adapt rep {rep} {runner}: {taken:.2f} s", file=sys.stderr)
            finally:
                client.close()
                made.close()
    ratio = statistics.median(figures["parafactory"]) / statistics.median(figures["client.map"])
    return {"records": count, "stage_seconds": seconds, "s": figures, "ratio": round(ratio, 3)}


def join() -> dict[str, Any]:
    made, client = cluster(1)
    joined: list[float] = []

    def grow() -> None:
        time.sleep(1.0)
        made.scale(3)
        client.wait_for_workers(3)
        joined.append(time.time())

    grower = threading.Thread(target=grow)
    try:
        first = {client.run(os.getpid)[address] for address in client.nthreads()}
        params = [Nap(name=f"j{i}", seconds=0.4) for i in range(40)]
        with tempfile.TemporaryDirectory() as root:
            grower.start()
            with ArtifactManager("join", root=root, dry=True, console_log=False) as manager:
                records = manager.map(params, [timed_nap], backend="dask", client=client)
            grower.join()
    finally:
        client.close()
        made.close()
    late = [when for pid, when in (r.state["started"] for r in records) if pid not in first]
    seconds = min(late) - joined[0] if late and joined else None
    print(f"join: first record on a new worker {seconds} s after it joined", file=sys.stderr)
    return {"first_start_after_join_s": seconds, "records_on_new_workers": len(late)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dask_cluster")
    parser.add_argument("--stress-runs", type=int, default=5)
    parser.add_argument("--reps", type=int, default=2)
    options = parser.parse_args(argv)
    results = {
        "stress": stress(options.stress_runs),
        "adapt": adaptive(48, 0.25, options.reps),
        "join": join(),
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
