"""The runners: eager serial, parafactory, and what a user would otherwise write.

Each runner takes a workload's inputs (built outside the timing), runs every
task's chain of two stages, and returns an :class:`~bench.workloads.Outcome`.
Pooled runners can be made cold (their pool stopped, so the next run starts it
inside the timing) or warm (their pool started and used before the timing).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
from concurrent.futures import as_completed
from typing import Any

import joblib
import loky
from joblib.externals import loky as joblib_loky

from parafactory import ArtifactManager

from .stages import experiment_chains, experiment_with_total, outcome_of_records, param_sets
from .workloads import Outcome, Workload, chain, finish, indexed_chain, warm_up_workload


class Runner:
    """Runs a workload's chains somewhere; subclasses say where."""

    name = "runner"
    pooled = True

    def __init__(self, workers: int, loops: int) -> None:
        self.workers = workers
        self._warm_up = warm_up_workload(workers, loops)

    def inputs(self, workload: Workload) -> Any:
        """What :meth:`execute` takes, built outside the timing."""
        return workload.tasks

    def execute(self, workload: Workload, inputs: Any) -> Any:
        """The timed part: run every chain (and the aggregate) to the end."""
        raise NotImplementedError

    def outcome(self, workload: Workload, raw: Any) -> Outcome:
        """The final states of what :meth:`execute` returned, outside the timing."""
        outcome: Outcome = raw
        return outcome

    def warm_up(self) -> None:
        """Start the pool and run a few tasks on every worker."""
        if self.pooled:
            self.execute(self._warm_up, self.inputs(self._warm_up))

    def make_cold(self) -> None:
        """Stop the pool, so the next run starts it."""

    def close(self) -> None:
        """Release the pool at the end of the suite."""
        self.make_cold()


class SerialRunner(Runner):
    """The reference: the plain functions in a loop, in this process."""

    name = "serial"
    pooled = False

    def execute(self, workload: Workload, inputs: Any) -> Outcome:
        return finish(workload, [chain(task) for task in inputs])


class ParafactoryRunner(Runner):
    """``manager.run(experiment, param_sets)`` on a dry manager, on every CPU."""

    name = "parafactory"

    def inputs(self, workload: Workload) -> Any:
        return param_sets(workload)

    def execute(self, workload: Workload, inputs: Any) -> Any:
        manager = ArtifactManager("bench", dry=True)
        experiment = experiment_with_total if workload.with_total else experiment_chains
        return manager.run(experiment, inputs, n_jobs=self.workers, progress=False)

    def outcome(self, workload: Workload, raw: Any) -> Outcome:
        return outcome_of_records(raw)

    def make_cold(self) -> None:
        stop_loky()


class JoblibRunner(Runner):
    """``joblib.Parallel(n_jobs=P)(delayed(chain)(task) for task in tasks)``."""

    name = "joblib"

    def execute(self, workload: Workload, inputs: Any) -> Outcome:
        states = joblib.Parallel(n_jobs=self.workers)(joblib.delayed(chain)(t) for t in inputs)
        return finish(workload, list(states))

    def make_cold(self) -> None:
        joblib_loky.get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


class PoolRunner(Runner):
    """``multiprocessing.Pool(P).imap_unordered(chain, tasks)``; a cold run creates the pool."""

    name = "mp.Pool"

    def __init__(self, workers: int, loops: int) -> None:
        super().__init__(workers, loops)
        self._pool: multiprocessing.pool.Pool | None = None

    def execute(self, workload: Workload, inputs: Any) -> Outcome:
        if self._pool is None:
            self._pool = multiprocessing.Pool(self.workers)
        states: list[Any] = [None] * len(inputs)
        for index, state in self._pool.imap_unordered(indexed_chain, inputs):
            states[index] = state
        return finish(workload, states)

    def make_cold(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


class LokyRunner(Runner):
    """``loky.get_reusable_executor(P)`` with ``submit`` and ``as_completed``."""

    name = "loky"

    def execute(self, workload: Workload, inputs: Any) -> Outcome:
        executor = loky.get_reusable_executor(max_workers=self.workers)
        futures = {executor.submit(chain, task): task.index for task in inputs}
        states: list[Any] = [None] * len(inputs)
        for future in as_completed(futures):
            states[futures[future]] = future.result()
        return finish(workload, states)

    def make_cold(self) -> None:
        stop_loky()


def stop_loky() -> None:
    """Stop loky's reusable executor (parafactory's and the loky runner's) and its workers."""
    loky.get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


RUNNERS: tuple[type[Runner], ...] = (
    SerialRunner,
    ParafactoryRunner,
    JoblibRunner,
    PoolRunner,
    LokyRunner,
)
PEERS = ("joblib", "mp.Pool", "loky")
SPAWNING_PEERS = ("joblib", "loky")  # workers start as new interpreters, as parafactory's do


def make_runners(workers: int, loops: int) -> list[Runner]:
    """One of each runner, with ``workers`` processes."""
    return [runner(workers, loops) for runner in RUNNERS]
