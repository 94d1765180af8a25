"""The experiment ``parafactory plan`` previews in the bench: the cached rerun's two cached
stages on ``$BENCH_PLAN_RECORDS`` tiny parameter sets (``experiments/``-style: ``run`` and
``get_params`` in one module)."""

from __future__ import annotations

import os
from typing import Any

from .stages import BenchParams, experiment_cached


def get_params() -> list[BenchParams]:
    """``$BENCH_PLAN_RECORDS`` tiny parameter sets, made as a user would write them (those
    of :func:`~bench.stages.params_of`, without the bench's own task objects)."""
    return [
        BenchParams(name=f"plan-{i}", index=i) for i in range(int(os.environ["BENCH_PLAN_RECORDS"]))
    ]


def run(param_sets: list[BenchParams], manager: Any) -> None:
    """Both cached stages on a record per parameter set."""
    experiment_cached(param_sets, manager)
