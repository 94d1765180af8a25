"""Backends: where chains run. Each is one module, looked up by name and imported lazily.

Every backend hands the scheduler a ``concurrent.futures.Executor``; the
backend itself only knows how to start and stop that executor and how its
workers die.
"""

from __future__ import annotations

import importlib
from concurrent.futures import Executor
from typing import Any

from .base import Backend

_MODULES = {"loky": ".local.pool", "dask": ".dask"}


def open_backend(backend: str | Executor | None, workers: int, **options: Any) -> Backend:
    """The backend named by ``backend`` (``"loky"``, ``"dask"``) or wrapping an executor.

    ``workers == 1`` with no backend named runs in the parent's own process. The executor
    of a dask client (``client.get_executor()``) runs as ``"dask"`` on that client, sized
    by its cluster rather than by this machine.
    """
    client = _dask_client_of(backend)
    if client is not None:
        return open_backend("dask", workers, client=client)
    if isinstance(backend, Executor):
        from .executor import ExecutorBackend

        return ExecutorBackend(backend, workers)
    if backend is None and workers == 1:
        from .inprocess import InProcessBackend

        return InProcessBackend()
    name = backend or "loky"
    if name not in _MODULES:
        raise ValueError(
            f"unknown backend {name!r}; use 'loky', 'dask', or a concurrent.futures.Executor"
        )
    module = importlib.import_module(_MODULES[name], __name__)
    opened: Backend = module.open(workers, **options)
    return opened


def _dask_client_of(backend: object) -> Any:
    """The client behind distributed's ``ClientExecutor`` (kept in its ``_client``)."""
    if type(backend).__module__.startswith("distributed."):
        return getattr(backend, "_client", None)
    return None


__all__ = ["Backend", "open_backend"]
