"""Values that cannot travel between processes.

What comes back from a worker and cannot be unpickled (an output, an exception) fails
its own record, never its batch neighbours, with a message that says what to do. What
would go to the workers and cannot (a parameter field, a variable a stage defined here
uses) is reported once, before anything is dispatched. In-process, nothing is pickled,
so none of it is a problem.
"""

import json
import logging
import threading
import types

import pytest

import travel_stages as t
from parafactory import Record, StageFailedError, UnpicklableStateError, stage

pytestmark = pytest.mark.timeout(120)

POOLS = pytest.mark.parametrize("backend", ["loky", "dask"], indirect=True)
RECORDS = 200  # tiny records: batches hold several
CULPRIT = "r137"
GLOBAL_GUARD = threading.Lock()  # a module global that a stage defined in a test uses


def sweep(manager, backend, action, **options):
    """Run ``begin`` then ``produce`` on RECORDS records; only CULPRIT does ``action``."""
    params = t.trips(RECORDS, **{CULPRIT: action})
    return manager.map(params, [t.begin, t.produce], progress=False, **options, **backend)


def assert_only_the_culprit_failed(records):
    """Exactly CULPRIT failed; every other record finished with its full state."""
    assert [r.name for r in records if r.error is not None] == [CULPRIT]
    for i, record in enumerate(records):
        if record.name != CULPRIT:
            assert record.state == {"start": i, "value": 2 * i}
            assert record.stages == ["begin", "produce"]
    return records[int(CULPRIT[1:])]


def parafactory_errors_logged(caplog):
    return [r for r in caplog.records if r.name == "parafactory" and r.levelno >= logging.ERROR]


# -- outputs that cannot be pickled back -------------------------------------------------


@POOLS
@pytest.mark.parametrize("action", ["generator", "lock"])
def test_an_unpicklable_output_fails_only_its_record(manager, backend, action):
    records = sweep(manager, backend, action, errors="continue")
    culprit = assert_only_the_culprit_failed(records)
    error = culprit.error
    assert isinstance(error, UnpicklableStateError)
    assert isinstance(error, StageFailedError)
    assert (error.record_name, error.stage_name) == (CULPRIT, "produce")
    message = str(error)
    for part in [f"'{CULPRIT}'", "'produce'", "'value'", action, "cacher", "n_jobs=1"]:
        assert part in message, part
    # What the stage before it computed is kept; the failed stage left nothing.
    assert culprit.state == {"start": 137}
    assert culprit.stages == ["begin"]


@POOLS
def test_with_errors_raise_the_unpicklable_output_is_the_error_raised(manager, backend):
    with pytest.raises(UnpicklableStateError) as excinfo:
        sweep(manager, backend, "generator")
    error = excinfo.value
    assert isinstance(error, StageFailedError)
    assert (error.record_name, error.stage_name) == (CULPRIT, "produce")
    records = manager.records
    assert records[137].error is error
    for i, record in enumerate(records):
        if record.name != CULPRIT:
            assert record.error is None
            assert record.state in ({}, {"start": i, "value": 2 * i})


@POOLS
def test_a_cacher_brings_an_unpicklable_output_back_through_its_file(manager, backend):
    count = 100
    records = manager.map(
        t.trips(count), [t.begin, t.produce_items], errors="continue", progress=False, **backend
    )
    assert [r.error for r in records] == [None] * count
    for i, record in enumerate(records):
        # The stage returned a generator; a list can only have come from the cacher's file.
        assert record.state["items"] == [0, i, 2 * i]
        name = f"{manager.name}_{record.params.hash}_produce_items_items.json"
        assert json.loads((manager.cache_dir / name).read_text()) == [0, i, 2 * i]


def test_in_process_an_unpicklable_output_is_fine(manager):
    params = t.trips(4, r1="generator", r2="lock")
    records = manager.map(params, [t.begin, t.produce, t.use_value], n_jobs=1, progress=False)
    assert [r.error for r in records] == [None] * 4
    assert isinstance(records[1].state["value"], types.GeneratorType)
    assert isinstance(records[2].state["value"], type(threading.Lock()))
    # The next stage used the very objects: it consumed the generator, took the lock.
    assert [r.state["used"] for r in records] == [1, 3, True, 7]
    assert records[2].state["value"].locked()


# -- exceptions that cannot travel as they are ---------------------------------------------


@POOLS
def test_an_exception_that_cannot_be_unpickled_fails_only_its_record(manager, backend):
    records = sweep(manager, backend, "two_arg_error", errors="continue")
    error = assert_only_the_culprit_failed(records).error
    assert isinstance(error, StageFailedError)
    assert (error.record_name, error.stage_name) == (CULPRIT, "produce")
    assert "TwoArgError" in str(error)
    assert "left and right disagree" in str(error)
    # The pool still serves a sweep after it.
    again = manager.map(t.trips(20), [t.begin, t.produce], progress=False, **backend)
    assert [r.state["value"] for r in again] == [2 * i for i in range(20)]


@POOLS
@pytest.mark.parametrize(
    "action, exception", [("system_exit", SystemExit), ("keyboard_interrupt", KeyboardInterrupt)]
)
def test_system_exit_or_ctrl_c_raised_by_a_stage_in_a_worker_fails_only_its_record(
    manager, backend, action, exception
):
    records = sweep(manager, backend, action, errors="continue")
    error = assert_only_the_culprit_failed(records).error
    assert isinstance(error, StageFailedError)
    assert (error.record_name, error.stage_name) == (CULPRIT, "produce")
    assert exception.__name__ in str(error)
    assert type(error.__cause__) is exception


# -- values refused before dispatch ----------------------------------------------------------


@POOLS
def test_an_unpicklable_parameter_field_is_reported_once_before_dispatch(
    manager, backend, tmp_path, caplog
):
    params = t.trips(6, marker_dir=tmp_path)
    for p in params:
        p.payload = threading.Lock()
    with caplog.at_level(logging.INFO, logger="parafactory"):
        with pytest.raises(UnpicklableStateError) as excinfo:
            manager.map(params, [t.begin, t.produce], progress=False, **backend)
    assert "payload" in str(excinfo.value)
    assert not isinstance(excinfo.value, StageFailedError)  # not a record's failure
    assert [t.started(tmp_path, p.name) for p in params] == [0] * 6
    assert manager.records == []
    assert parafactory_errors_logged(caplog) == []


def test_in_process_an_unpicklable_parameter_field_is_fine(manager, tmp_path):
    params = t.trips(3, marker_dir=tmp_path)
    for p in params:
        p.payload = threading.Lock()
    records = manager.map(params, [t.begin, t.produce], n_jobs=1, progress=False)
    assert [r.state for r in records] == [{"start": i, "value": 2 * i} for i in range(3)]
    assert [t.started(tmp_path, p.name) for p in params] == [1] * 3


def guarded_stage(captured, closure_guard):
    """A stage defined in a function (so it travels by value) that takes a lock from a
    global or from a closure variable; returns it and the variable's name."""
    if captured == "global":

        @stage(inputs=["start"], outputs=["guarded"])
        def guarded(record, start):
            with GLOBAL_GUARD:
                return start + 1

        return guarded, "GLOBAL_GUARD"

    @stage(inputs=["start"], outputs=["guarded"])
    def guarded(record, start):
        with closure_guard:
            return start + 1

    return guarded, "closure_guard"


@POOLS
@pytest.mark.parametrize("captured", ["global", "closure"])
def test_a_stage_using_an_unpicklable_variable_is_reported_once_before_dispatch(
    manager, backend, tmp_path, caplog, captured
):
    guarded, variable = guarded_stage(captured, threading.Lock())
    params = t.trips(6, marker_dir=tmp_path)

    def experiment(param_sets, manager):
        for p in param_sets:
            guarded(t.begin(Record(manager, p)))

    with caplog.at_level(logging.INFO, logger="parafactory"):
        with pytest.raises(UnpicklableStateError) as excinfo:
            manager.run(experiment, params, progress=False, **backend)
    message = str(excinfo.value)
    assert f"'{variable}'" in message and "'guarded'" in message
    assert not isinstance(excinfo.value, StageFailedError)
    assert [t.started(tmp_path, p.name) for p in params] == [0] * 6
    assert manager.records == []
    assert parafactory_errors_logged(caplog) == []


@pytest.mark.parametrize("captured", ["global", "closure"])
def test_in_process_a_stage_using_an_unpicklable_variable_is_fine(manager, captured):
    guarded, _ = guarded_stage(captured, threading.Lock())
    records = manager.map(t.trips(3), [t.begin, guarded], n_jobs=1, progress=False)
    assert [r.state["guarded"] for r in records] == [1, 2, 3]
