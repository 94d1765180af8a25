"""Peak memory of the parent for W3, in a fresh process: ``python -m bench.rss_probe --lazy``.

``--serial`` runs the plain functions in a loop; ``--eager`` runs parafactory on
every CPU with outputs kept in the state (large ones come back memory-mapped);
``--lazy`` declares both outputs ``Lazy`` with a ``JoblibCacher`` in a temporary
cache directory. The peak RSS (``VmHWM``, see :func:`peak_rss_mb`) is read as
the run returns, before anything is read back; the checksum of the states is
taken afterwards. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parafactory import ArtifactManager

from .stages import experiment_chains, experiment_lazy, outcome_of_records, param_sets
from .workloads import ARRAY_ELEMENTS, Outcome, Task, Workload, chain, checksum


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB.

    Linux keeps ``ru_maxrss`` across ``exec``, so a probe started by a big parent would
    start from the parent's peak; ``VmHWM`` belongs to this process image alone.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return maxrss_mb()


def maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_w3(mode: str, workload: Workload, workers: int, directory: Path) -> Any:
    """Run W3 the way ``mode`` says; returns what has to be read back for the checksum."""
    if mode == "serial":
        return Outcome([chain(task) for task in workload.tasks])
    if mode == "eager":
        manager = ArtifactManager("bench_rss", dry=True)
        return manager.run(experiment_chains, param_sets(workload), n_jobs=workers, progress=False)
    manager = ArtifactManager("bench_rss", root=directory)
    return manager.run(experiment_lazy, param_sets(workload), n_jobs=workers, progress=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure one mode and print its figures as a JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.rss_probe", description=__doc__)
    modes = parser.add_mutually_exclusive_group(required=True)
    for mode in ("serial", "eager", "lazy"):
        modes.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode)
    parser.add_argument("--records", type=int, default=16)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    tasks = tuple(Task("arrays", i, ARRAY_ELEMENTS) for i in range(args.records))
    workload = Workload("W3", "W3", tasks)
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="parafactory-bench-rss-") as directory:
        start = time.perf_counter()
        raw = run_w3(args.mode, workload, args.workers, Path(directory))
        seconds = time.perf_counter() - start
        peak, maxrss = peak_rss_mb(), maxrss_mb()
        outcome = raw if isinstance(raw, Outcome) else outcome_of_records(raw)
        digest = checksum(outcome)
    figures = {
        "mode": args.mode,
        "records": args.records,
        "workers": args.workers,
        "seconds": seconds,
        "rss_before_run_mb": before,
        "peak_rss_mb": peak,
        "ru_maxrss_mb": maxrss,
        "checksum": digest,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
