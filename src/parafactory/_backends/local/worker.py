"""What a local pool's worker does around the chains it runs.

Before a batch: retire if an earlier record left the worker in a state it cannot undo,
watch what stages change (to put it back), work in the parent's working directory, and
send what stages log to the parent's listener. Before each stage: mark it in the
worker's status slot (read by the parent after a crash, and for time limits). After each
chain: put the worker back as it was, leave large arrays in shared memory, and pickle
the result on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

from ..._core.capture import install
from ..._core.chains import ChainResult, ChainTask, WorkerHooks, WorkerSetup, encoded
from .isolation import must_retire, put_back, watch_this_worker, work_in
from .log_channel import sender
from .spill import spill_large
from .status import mark_idle, mark_retired, mark_running, stop_requested


@dataclasses.dataclass(frozen=True)
class LocalHooks(WorkerHooks):
    """The local pool's worker hooks: where the run's scratch directory and log socket
    are, at which level to send, and the parent's working directory."""

    scratch_dir: str
    log_address: str
    log_level: int
    cwd: str

    @contextlib.contextmanager
    def batch(self, tasks: list[ChainTask]) -> Iterator[None]:
        if must_retire():
            mark_retired(self.scratch_dir, tasks[0].step_id)
            os._exit(0)  # the parent sends this batch elsewhere, not counting it a death
        watch_this_worker()
        work_in(self.cwd)
        install(self.log_level, sender(self.log_address).send_record)
        yield

    @contextlib.contextmanager
    def chain(self, task: ChainTask) -> Iterator[list[Any]]:
        with super().chain(task) as logs:
            try:
                yield logs
            finally:
                put_back(task.record.name)  # what it says is its record's

    def stage_started(self, step_id: int, position: int) -> None:
        mark_running(self.scratch_dir, step_id, position)

    def chain_ended(self, task: ChainTask) -> bool:
        mark_idle(self.scratch_dir)
        return must_retire()  # the rest of the batch goes back to the parent to resend

    def stop_requested(self) -> bool:
        return stop_requested(self.scratch_dir)

    def finish(self, result: ChainResult, task: ChainTask, setup: WorkerSetup) -> Any:
        result.changed = spill_large(result.changed, self.scratch_dir)
        result.logs_sent = (os.getpid(), sender(self.log_address).sent)
        return encoded(result, task, setup)
