"""Run a sweep of cached stages from ``cache_stages`` the way a user's script would.

    python proc_resume.py DIRECTORY [--stage slow_square] [--records 40] [--seconds 0.15]
                          [--n-jobs 2]

Everything goes under DIRECTORY (cache, markers, logs); at the end each record's
state is written to ``DIRECTORY/states.json`` as ``{record name: {key: value}}``.
Running the same command again resumes from the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for cache_stages

import cache_stages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--stage", default="slow_square")
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=0.15)
    parser.add_argument("--n-jobs", type=int, default=2)
    options = parser.parse_args()

    params = cache_stages.sweep(
        options.directory / "markers", options.records, seconds=options.seconds
    )
    manager = cache_stages.manager_for(options.directory, "resume")
    records = manager.map(
        params,
        [getattr(cache_stages, options.stage)],
        n_jobs=options.n_jobs,
        progress=False,
    )
    states = {record.name: dict(record.state.items()) for record in records}
    (options.directory / "states.json").write_text(json.dumps(states, sort_keys=True, default=repr))


if __name__ == "__main__":
    main()
