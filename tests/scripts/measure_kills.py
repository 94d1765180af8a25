"""By-hand measurements behind ``test_parent_death.py`` and ``test_leftovers.py``.

Usage (from the repository root):

    python tests/scripts/measure_kills.py parent-death [RUNS]   # default 5 runs per scenario
    python tests/scripts/measure_kills.py leftovers [KILLS]     # default 10 kills

``parent-death`` prints, per scenario and worker role, the min/median/max milliseconds
from the parent's SIGKILL until the worker was gone. ``leftovers`` kills a sweep of large
cached writes KILLS times at random moments, reruns it, and prints what was left behind
(it must be nothing) and whether the rerun's values were right.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

import test_leftovers  # noqa: E402
import test_parent_death  # noqa: E402


def parent_death(runs: int) -> None:
    for scenario in ("c_call", "idle"):
        times: dict[str, list[float]] = {}
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as out:
                for role, seconds in test_parent_death.kill_parent_and_time_workers(
                    Path(out), scenario
                ).items():
                    times.setdefault(role, []).append(seconds * 1000)
        for role, values in times.items():
            print(
                f"{scenario:7s} {role:6s} n={len(values)} min={min(values):.1f} ms "
                f"median={statistics.median(values):.1f} ms max={max(values):.1f} ms"
            )


def leftovers(kills: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        report = test_leftovers.kill_at_random_then_rerun(Path(out), kills)
    for line in report:
        print(line)


if __name__ == "__main__":
    what = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else (5 if what == "parent-death" else 10)
    {"parent-death": parent_death, "leftovers": leftovers}[what](count)
