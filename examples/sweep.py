"""A parameter sweep across every core: Monte Carlo estimates of pi, then a summary.

Run it with ``python examples/sweep.py``. Each parameter set's stages run in a
worker process; the aggregate runs in this process as soon as every estimate
is in, and prints a table.
"""

import logging
import math
import random
from dataclasses import dataclass

from parafactory import ArtifactManager, ExperimentParameters, Record, aggregate, stage

logger = logging.getLogger("examples.sweep")


@dataclass
class PiParams(ExperimentParameters):
    samples: int = 100_000
    seed: int = 0


@stage(inputs=None, outputs=["hits"])
def throw_darts(record):
    """Count random points of the unit square that land inside the quarter circle."""
    rng = random.Random(record.params.seed)
    n = record.params.samples
    return sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(n))


@stage(inputs=["hits"], outputs=["estimate", "error"])
def estimate_pi(record, hits):
    estimate = 4 * hits / record.params.samples
    logger.info("pi ~ %.5f", estimate)
    return estimate, abs(estimate - math.pi)


@aggregate(inputs=["error"], outputs=["errors_by_samples"])
def summarise(record, records, error):
    """Mean absolute error per sample count, over the seeds."""
    by_samples = {}
    for other, value in error.items():
        by_samples.setdefault(other.params.samples, []).append(value)
    return {n: sum(values) / len(values) for n, values in sorted(by_samples.items())}


def experiment(param_sets, manager):
    for params in param_sets:
        estimate_pi(throw_darts(Record(manager, params)))
    summarise(Record(manager, None))


def main():
    manager = ArtifactManager("pi_sweep")
    param_sets = [
        PiParams(name=f"n{samples}_seed{seed}", samples=samples, seed=seed)
        for samples in (1_000, 10_000, 100_000, 400_000)
        for seed in range(6)
    ]
    records = manager.run(experiment, param_sets)
    print(f"{'samples':>8}  mean |error|")
    for samples, mean_error in records[-1].state["errors_by_samples"].items():
        print(f"{samples:>8}  {mean_error:.5f}")
    print(f"report: {manager.write_report()}")


if __name__ == "__main__":
    main()
