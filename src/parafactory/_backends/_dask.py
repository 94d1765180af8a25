"""dask.distributed: chains run on a cluster's workers (``pip install 'parafactory[dask]'``).

Only this module imports ``distributed``. Workers may be on other machines,
so their log records come back with their results rather than live.
"""

from __future__ import annotations

from typing import Any

from .._errors import BackendUnavailableError
from ._base import Backend


class DaskBackend(Backend):
    """Chains run as tasks of a ``distributed.Client``."""

    name = "dask"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.workers = max(1, sum(client.nthreads().values()))
        super().__init__(client.get_executor(pure=False))

    def death(self, error: BaseException) -> str | None:
        from distributed import KilledWorker

        if isinstance(error, KilledWorker):
            return f"the dask worker running it died ({error})"
        return None

    def abort(self) -> None:
        self.executor.shutdown(wait=False)


def open(workers: int, *, client: Any = None, **_: Any) -> DaskBackend:
    """The dask backend on ``client``, or on the client current in this process."""
    try:
        import distributed
    except ImportError as error:
        raise BackendUnavailableError(
            "backend='dask' needs dask's distributed package: pip install 'parafactory[dask]'"
        ) from error
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise ValueError(
                "backend='dask' found no dask client; start one first "
                "(distributed.Client(...), e.g. on a dask-jobqueue SLURMCluster) or pass client="
            ) from None
    return DaskBackend(client)
