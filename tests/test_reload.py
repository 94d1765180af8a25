"""Editing and reloading a module between two runs in one process: workers run the new code.

Each test writes its own module under ``tmp_path`` (a fresh name, so loky workers
cannot have it cached from another test), imports it, runs ``map`` on loky with two
workers, edits the file, reloads it and runs again in the same process.
"""

import importlib
import os
import sys
import textwrap
import uuid

import pytest

N_RECORDS = 6


@pytest.fixture
def manager(make_manager):
    return make_manager("reload")


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Write, import and rewrite modules in a directory on ``sys.path``; forget them after."""
    directory = tmp_path / "code"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    written = []

    class Modules:
        def write(self, stem, source):
            """Write ``source`` as a new module; return its (unique) name."""
            name = f"{stem}_{uuid.uuid4().hex[:10]}"
            self._write(name, source)
            written.append(name)
            return name

        def rewrite(self, name, source):
            """Replace a module's file; its mtime moves clearly later, as after an edit."""
            path = directory / f"{name}.py"
            before = os.stat(path).st_mtime
            self._write(name, source)
            later = before + 10
            os.utime(path, (later, later))
            assert os.stat(path).st_mtime_ns != int(before * 1e9)

        def _write(self, name, source):
            (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            importlib.invalidate_caches()

    yield Modules()
    for name in written:
        sys.modules.pop(name, None)


# Params and the rendezvous that makes every worker of the pool take a record, so that
# each one has imported the module (and a warm pool's pids are all known after one run).
COMMON = """
    import dataclasses
    import os
    import pathlib
    import time

    from parafactory import ExperimentParameters, stage


    @dataclasses.dataclass
    class Params(ExperimentParameters):
        x: int = 0
        meet_dir: str = ""


    def meet(record, workers=2, timeout=20.0):
        if not record.params.meet_dir:
            return
        directory = pathlib.Path(record.params.meet_dir)
        (directory / str(os.getpid())).touch()
        deadline = time.monotonic() + timeout
        while len(list(directory.iterdir())) < workers and time.monotonic() < deadline:
            time.sleep(0.01)
"""

STAGE_MODULE = (
    COMMON
    + """

    def helper():
        return {helper_value}


    @stage(outputs=["value", "pid"])
    def constant(record):
        meet(record)
        return {stage_value}, os.getpid()


    @stage(outputs=["value", "pid"])
    def uses_helper(record):
        meet(record)
        return helper(), os.getpid()
"""
)


def stage_module(stage_value=1, helper_value=10):
    return STAGE_MODULE.format(stage_value=stage_value, helper_value=helper_value)


def run_map(manager, module, stage_name, meet_dir=None):
    """Map the module's stage over a few records on two loky workers; (values, pids).

    With ``meet_dir``, every worker of the pool runs at least one record.
    """
    if meet_dir is not None:
        meet_dir.mkdir()
    param_sets = [
        module.Params(name=f"r{i}", x=i, meet_dir=str(meet_dir or "")) for i in range(N_RECORDS)
    ]
    records = manager.map(param_sets, [getattr(module, stage_name)], n_jobs=2, progress=False)
    assert [r.error for r in records] == [None] * N_RECORDS
    pids = {r.state["pid"] for r in records}
    assert os.getpid() not in pids, "the stage ran in the parent, not in loky workers"
    if meet_dir is not None:
        assert len(pids) == 2, "both workers should have run records"
    return [r.state["value"] for r in records], pids


@pytest.mark.parametrize(
    ("stage_name", "edited", "before", "after"),
    [("constant", "stage_value", 1, 2), ("uses_helper", "helper_value", 10, 20)],
    ids=["stage", "helper_in_stage_module"],
)
def test_edited_and_reloaded_stage_module_runs_new_code_in_workers(
    manager, modules, tmp_path, stage_name, edited, before, after
):
    name = modules.write(f"edited_{stage_name}", stage_module(**{edited: before}))
    module = importlib.import_module(name)
    assert run_map(manager, module, stage_name, tmp_path / "meet")[0] == [before] * N_RECORDS

    modules.rewrite(name, stage_module(**{edited: after}))
    module = importlib.reload(module)
    assert run_map(manager, module, stage_name)[0] == [after] * N_RECORDS


def test_unchanged_code_reuses_the_warm_pool(manager, modules, tmp_path):
    name = modules.write("warm", stage_module())
    module = importlib.import_module(name)
    _, first_pids = run_map(manager, module, "constant", tmp_path / "meet")
    _, second_pids = run_map(manager, module, "constant")
    assert second_pids <= first_pids, (first_pids, second_pids)


def test_reload_without_edit_keeps_the_warm_pool(manager, modules, tmp_path):
    name = modules.write("reloaded_unchanged", stage_module())
    module = importlib.import_module(name)
    _, first_pids = run_map(manager, module, "constant", tmp_path / "meet")
    module = importlib.reload(module)
    values, second_pids = run_map(manager, module, "constant")
    assert values == [1] * N_RECORDS
    assert second_pids <= first_pids, (first_pids, second_pids)


HELPER_MODULE = """
    def helper():
        return {value}
"""

USER_MODULE = (
    COMMON
    + """
    import {helper_module} as helpers


    @stage(outputs=["value", "pid"])
    def uses_helper(record):
        meet(record)
        return helpers.helper(), os.getpid()
"""
)


def test_edited_and_reloaded_helper_module_is_picked_up(manager, modules, tmp_path):
    helper_name = modules.write("helper_module", HELPER_MODULE.format(value=10))
    user_name = modules.write("user_module", USER_MODULE.format(helper_module=helper_name))
    helpers = importlib.import_module(helper_name)
    module = importlib.import_module(user_name)
    assert run_map(manager, module, "uses_helper", tmp_path / "meet")[0] == [10] * N_RECORDS

    modules.rewrite(helper_name, HELPER_MODULE.format(value=20))
    importlib.reload(helpers)
    assert module.helpers.helper() == 20  # the parent runs the new code
    assert run_map(manager, module, "uses_helper")[0] == [20] * N_RECORDS
