"""A reused local worker is put back between records: a stage that changes its working
directory, environment or resource limits does not change what later records see.

Every run here uses one loky worker (``n_jobs=1, backend="loky"``), so all records share
its process; each record reports its pid, in which order its process ran it, and what it
saw before changing anything (``fault_stages.observe_then_change``). The record that
changes something comes fourth of ten: the scheduler sends the first two records alone
and then several per task, so records run after it both in its own task and in later ones.
"""

from __future__ import annotations

import logging

import pytest

from fault_stages import ADDED_VARIABLE, Fault, observe_then_change, started_pids
from parafactory import WorkerDiedError

pytestmark = pytest.mark.timeout(120)

ONE_WORKER = {"n_jobs": 1, "backend": "loky"}


def sweep(action, before=3, after=6):
    """``before`` records that change nothing, one that does ``action``, ``after`` more."""
    return ["ok"] * before + [action] + ["ok"] * after


CULPRIT = 3  # its position in a sweep()


def run_sweep(manager, markers, actions, **options):
    """One record per action, in order, on one loky worker; each must run once and succeed."""
    markers.mkdir(exist_ok=True)
    params = [
        Fault(name=f"r{i}_{action.replace('+', '_and_')}", action=action, marker_dir=str(markers))
        for i, action in enumerate(actions)
    ]
    records = manager.map(params, [observe_then_change], progress=False, **ONE_WORKER, **options)
    failed = {record.name: record.error for record in records if record.error is not None}
    assert failed == {}
    runs = {record.name: len(started_pids(markers, record.name)) for record in records}
    assert set(runs.values()) == {1}, runs
    return [record.state["seen"] for record in records], records


def assert_one_process_in_order(seen):
    assert len({view["pid"] for view in seen}) == 1, "the records did not share one worker"
    orders = [view["order"] for view in seen]
    assert orders == sorted(orders), "the records did not run in the order they were given"


def without_view_keys(view):
    return {key: value for key, value in view.items() if key not in ("pid", "order")}


def environment(view):
    """A view's environment, less what pytest changes between tests (a worker started in
    another test than the first record's saw another PYTEST_CURRENT_TEST)."""
    return {key: value for key, value in view["environment"].items() if key != PYTEST_VARIABLE}


PYTEST_VARIABLE = "PYTEST_CURRENT_TEST"


def assert_as_before(seen, first):
    """Every view in ``seen`` shows the process as ``first`` saw it."""
    for position, view in enumerate(seen):
        assert view["cwd"] == first["cwd"], position
        assert environment(view) == environment(first), position
        assert view["limits"] == first["limits"], position


@pytest.mark.parametrize("action", ["chdir", "environment", "soft_limits"])
def test_later_records_in_the_same_worker_see_what_the_first_record_saw(manager, tmp_path, action):
    seen, records = run_sweep(manager, tmp_path / "markers", sweep(action))
    assert_one_process_in_order(seen)
    first = seen[0]
    changed = records[CULPRIT].state["changed"]
    # The stage really changed its process...
    assert without_view_keys(changed) != without_view_keys(first), changed
    # ...and every record, before and after it, saw the process as the first one did.
    assert_as_before(seen, first)


def test_environment_changes_are_undone_one_by_one(manager, tmp_path):
    seen, records = run_sweep(manager, tmp_path / "markers", sweep("environment"))
    before = seen[0]["environment"]
    changed = records[CULPRIT].state["changed"]["environment"]
    assert changed[ADDED_VARIABLE] == "added" and changed["PATH"] == "/nowhere"
    assert "HOME" not in changed
    for view in seen[CULPRIT + 1 :]:
        after = view["environment"]
        assert ADDED_VARIABLE not in after
        assert after["PATH"] == before["PATH"]
        assert after["HOME"] == before["HOME"]


def test_several_changes_made_by_one_record_are_all_undone(manager, tmp_path):
    seen, records = run_sweep(manager, tmp_path / "markers", sweep("soft_limits+environment+chdir"))
    assert_one_process_in_order(seen)
    first = seen[0]
    changed = records[CULPRIT].state["changed"]
    assert changed["cwd"] != first["cwd"]
    assert changed["limits"] != first["limits"]
    assert changed["environment"] != first["environment"]
    assert_as_before(seen, first)


def test_records_after_one_that_lowered_a_hard_limit_see_the_original_limits(manager, tmp_path):
    """Whether the worker may raise the limit again (CAP_SYS_RESOURCE in the initial user
    namespace) or not, later records see the original limits: in the same worker, put
    back, or in a fresh one, the old one retired."""
    seen, records = run_sweep(manager, tmp_path / "markers", sweep("hard_limit"))
    changed = records[CULPRIT].state["changed"]
    assert changed["limits"]["RLIMIT_NOFILE"] != seen[0]["limits"]["RLIMIT_NOFILE"]
    assert_as_before(seen[CULPRIT + 1 :], seen[0])
    if changed["could_raise_back"]:
        assert_one_process_in_order(seen)
    else:
        culprit_pid = seen[CULPRIT]["pid"]
        assert all(view["pid"] != culprit_pid for view in seen[CULPRIT + 1 :])


def test_a_worker_that_cannot_raise_a_hard_limit_again_retires_and_every_record_succeeds(
    manager, tmp_path, caplog
):
    with caplog.at_level(logging.WARNING):
        seen, records = run_sweep(
            manager, tmp_path / "markers", sweep("hard_limit_unprivileged"), errors="raise"
        )
    culprit = records[CULPRIT]
    changed = culprit.state["changed"]
    assert not changed["could_raise_back"], "the stage could not make the limit permanent"
    assert changed["limits"]["RLIMIT_NOFILE"] != seen[0]["limits"]["RLIMIT_NOFILE"]

    # No record failed and each ran once (run_sweep checked); none lost its worker.
    assert not any(isinstance(record.error, WorkerDiedError) for record in records)
    for record in records:
        assert record.stages == ["observe_then_change"]

    # A warning says what happened and names the record and the worker.
    culprit_pid = seen[CULPRIT]["pid"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    retiring = [message for message in warnings if "retires" in message]
    assert len(retiring) == 1, warnings
    assert repr(culprit.name) in retiring[0]
    assert str(culprit_pid) in retiring[0]
    assert "hard resource limit" in retiring[0]
    assert not any("died" in message for message in warnings), warnings

    # Every record after the culprit ran in another worker, with the original limits.
    assert_one_process_in_order(seen[: CULPRIT + 1])
    later = seen[CULPRIT + 1 :]
    in_culprits_worker = [
        (records[CULPRIT + 1 + i].name, view["limits"]["RLIMIT_NOFILE"])
        for i, view in enumerate(later)
        if view["pid"] == culprit_pid
    ]
    assert in_culprits_worker == [], "records ran in the worker with the lowered hard limit"
    assert_as_before(later, seen[0])


def test_the_next_run_does_not_inherit_a_lowered_hard_limit(make_manager, tmp_path):
    """The culprit is the last record of its run: the worker retires at the next run's
    first batch, and that run's records all succeed with the original limits."""
    first = make_manager("first")
    seen_first, _ = run_sweep(first, tmp_path / "first", ["ok", "hard_limit_unprivileged"])
    second = make_manager("second")
    seen_second, _ = run_sweep(second, tmp_path / "second", ["ok"] * 4)
    assert_as_before(seen_second, seen_first[0])
    assert all(view["pid"] != seen_first[1]["pid"] for view in seen_second)
