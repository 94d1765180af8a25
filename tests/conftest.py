"""Shared fixtures: the three backends every contract test runs on, and managers under tmp_path."""

import pytest

pytest.register_assert_rewrite("helpers")

from parafactory import ArtifactManager  # noqa: E402

BACKENDS = ["inprocess", "loky", "dask"]


@pytest.fixture(scope="session")
def dask_client():
    """A local dask cluster of 2 worker processes, started on first use, closed at session end."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Keyword arguments for ``manager.map``/``manager.run`` selecting one backend.

    Narrow it with ``@pytest.mark.parametrize("backend", ["loky", "dask"], indirect=True)``.
    """
    if request.param == "inprocess":
        return {"n_jobs": 1}
    if request.param == "loky":
        return {"n_jobs": 2}
    if request.param == "dask":
        return {"backend": "dask", "client": request.getfixturevalue("dask_client")}
    raise ValueError(f"unknown backend fixture parameter {request.param!r}")


@pytest.fixture
def make_manager(tmp_path):
    """Make ArtifactManagers whose cache, runs, logs and reports all live under tmp_path.

    ``make_manager(name, **options)`` takes ArtifactManager's options; every manager it
    made is closed after the test (closing again one the test closed does no harm).
    """
    made = []

    def make(name="experiment", **options):
        manager = ArtifactManager(name, root=tmp_path, **options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def manager(make_manager):
    """An ArtifactManager whose cache, runs, logs and reports all live in tmp_path."""
    return make_manager("parallel")


@pytest.fixture(scope="session")
def python3_kernel():
    """Make sure a "python3" Jupyter kernelspec exists (install one for this user if not)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        from ipykernel import kernelspec

        kernelspec.install(user=True)
    return "python3"
