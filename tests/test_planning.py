"""Planning mode, and bad input that must be refused before any stage runs."""

import gc
import os
import re
import sys
import threading
import weakref

import pytest

import workloads as w
from parafactory import (
    BackendUnavailableError,
    PlanningStateError,
    Record,
    UnpicklableStateError,
)

# -- planning mode ------------------------------------------------------------------------

STATE_READS = {
    "getitem": lambda state: state["marked"],
    "get": lambda state: state.get("marked"),
    "contains": lambda state: "marked" in state,
    "iterate": lambda state: list(state),
    "len": len,
    "truth": bool,
    "keys": lambda state: state.keys(),
    "items": lambda state: state.items(),
    "values": lambda state: state.values(),
}


@pytest.mark.parametrize("read", STATE_READS.values(), ids=STATE_READS.keys())
def test_reading_state_while_planning_says_to_move_the_logic_into_a_stage(manager, tmp_path, read):
    marker = tmp_path / "marker"

    def experiment(param_sets, manager):
        for params in param_sets:
            record = w.touch_marker(Record(manager, params))
            record.state["written"] = 1  # writing is allowed
            read(record.state)

    with pytest.raises(PlanningStateError) as excinfo:
        manager.run(experiment, [w.Params(name="a", marker=str(marker))], n_jobs=1, progress=False)
    assert re.search(r"move .*into a @stage", str(excinfo.value), re.IGNORECASE)
    assert not marker.exists()


def test_stage_calls_are_recorded_while_planning_and_run_afterwards(manager, backend, tmp_path):
    markers = [tmp_path / f"marker{i}" for i in range(3)]
    seen_while_planning = []

    def experiment(param_sets, manager):
        for params in param_sets:
            record = w.touch_marker(Record(manager, params))
            assert isinstance(record, Record)
            seen_while_planning.append(os.path.exists(params.marker))

    params = [w.Params(name=f"m{i}", marker=str(marker)) for i, marker in enumerate(markers)]
    records = manager.run(experiment, params, progress=False, **backend)
    assert seen_while_planning == [False, False, False]
    assert [marker.read_text() for marker in markers] == ["m0", "m1", "m2"]
    assert [r.state for r in records] == [{"marked": True}] * 3


def test_state_written_while_planning_reaches_the_stages(manager, backend):
    def experiment(param_sets, manager):
        for params in param_sets:
            record = Record(manager, params)
            record.state["offset"] = 100 * params.value
            w.use_offset(record)

    records = manager.run(experiment, w.numbered_params(4), progress=False, **backend)
    assert [r.state for r in records] == [{"offset": 100 * i, "shifted": 101 * i} for i in range(4)]


def test_extra_stage_arguments_reach_the_stage_in_the_worker(manager, backend, request):
    def experiment(param_sets, manager):
        for params in param_sets:
            w.scale_with(Record(manager, params), factor=params.value + 1, offset=7)
        w.scale_with(Record(manager, w.Params(name="positional", value=2)), 5, 1)

    records = manager.run(experiment, w.numbered_params(4), progress=False, **backend)
    assert [r.state["scaled"] for r in records] == [i * (i + 1) + 7 for i in range(4)] + [11]
    pids = {r.state["pid"] for r in records}
    if request.node.callspec.params["backend"] == "inprocess":
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids


@pytest.mark.parametrize("backend", ["inprocess"], indirect=True)
def test_planning_leaves_garbage_collection_as_it_found_it(manager, backend):
    # Planning pauses collection and moves its objects to the oldest generation; a user's
    # own frozen objects (as a pre-forking server keeps them) must stay frozen.
    stages = [w.make_base, w.expand]
    manager.map(w.numbered_params(3), stages, progress=False, **backend)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    kept = ["a tracked object"]
    gc.freeze()
    try:
        manager.map(w.numbered_params(3), stages, progress=False, **backend)
        assert gc.isenabled() and not any(o is kept for o in gc.get_objects())  # still frozen
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        manager.map(w.numbered_params(3), stages, progress=False, **backend)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_plan_and_its_records_go_as_soon_as_nothing_holds_them(manager):
    """No cycle through the plan (its tree of call sequences holds the aggregates' groups):
    dropped, a plan of 100,000 records goes at once, not at the collector's next full
    pass (which ``parafactory plan`` paid at its exit: a quarter of a second)."""
    gc.disable()
    try:
        plan = manager.plan(w.nested_aggregates_experiment, w.numbered_params(6))
        records = [weakref.ref(step.record) for step in plan.steps]  # hidden ones too
        assert any(call.group for step in plan.steps for call in step.calls)
        del plan
        manager.records.clear()
        assert [ref() for ref in records] == [None] * len(records)
    finally:
        gc.enable()


ARGUMENTS = [((1,), {}), ((1.0,), {}), ((True,), {}), ((-0.0,), {}), ((0.0,), {}), ((), {"k": 1})]


def arguments_experiment(param_sets, manager):
    """Two records for each way of calling, one more with a list (made per record)."""
    for params, (args, kwargs) in zip(param_sets, ARGUMENTS + ARGUMENTS, strict=False):
        w.echo_arguments(Record(manager, params), *args, **kwargs)
    for params in param_sets[2 * len(ARGUMENTS) :]:
        w.echo_arguments(Record(manager, params), [1, 2])


def test_calls_with_equal_literal_arguments_are_one_call_others_one_per_record(manager):
    params = w.numbered_params(2 * len(ARGUMENTS) + 2)
    calls = [step.calls[0] for step in manager.plan(arguments_experiment, params).steps]
    count = len(ARGUMENTS)
    first, again, listed = calls[:count], calls[count : 2 * count], calls[2 * count :]
    assert all(a is b for a, b in zip(first, again, strict=True))  # equal: one call
    assert len({id(call) for call in first}) == count  # 1, 1.0, True, -0.0, 0.0: apart
    assert listed[0] is not listed[1] and listed[0].args == listed[1].args


def test_a_stage_gets_each_argument_as_it_was_passed(manager, backend):
    params = w.numbered_params(2 * len(ARGUMENTS) + 2)
    manager.run(arguments_experiment, params, progress=False, **backend)
    seen = [record.state["seen"] for record in manager.records]
    expected = [[(type(v).__name__, v) for v in (*a, *k.values())] for a, k in ARGUMENTS]
    assert seen == expected + expected + [[("list", [1, 2])]] * 2
    assert [str(v) for _, v in seen[3] + seen[4]] == ["-0.0", "0.0"]


@pytest.mark.parametrize("backend", ["inprocess"], indirect=True)
def test_garbage_dropped_just_before_a_run_is_still_collected_young(manager, backend):
    class Node:
        pass

    cycle = Node()
    cycle.itself = cycle  # only the cycle collector can free it
    freed = weakref.ref(cycle)
    del cycle
    manager.map(w.numbered_params(3), [w.make_base], progress=False, **backend)
    assert freed() is None  # not moved to the oldest generation, to wait for a full collection


# -- bad input: a clear error, and no stage has run ------------------------------------------


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "ran"


@pytest.fixture
def marker_params(marker):
    return [w.Params(name="first", marker=str(marker))]


def marker_experiment(param_sets, manager):
    for params in param_sets:
        w.touch_marker(Record(manager, params))


def assert_nothing_ran(manager, marker):
    assert not marker.exists()
    assert all(r.stages == [] and "marked" not in r.state for r in manager.records)


@pytest.mark.parametrize("entry", ["map", "run"])
def test_n_jobs_zero(manager, marker, marker_params, entry):
    with pytest.raises(ValueError, match="n_jobs"):
        if entry == "map":
            manager.map(marker_params, [w.touch_marker], n_jobs=0, progress=False)
        else:
            manager.run(marker_experiment, marker_params, n_jobs=0, progress=False)
    assert_nothing_ran(manager, marker)


def test_unknown_backend(manager, marker, marker_params):
    with pytest.raises(ValueError, match="unknown backend 'spark'"):
        manager.map(marker_params, [w.touch_marker], n_jobs=2, backend="spark", progress=False)
    assert_nothing_ran(manager, marker)


def test_unknown_error_policy(manager, marker, marker_params):
    with pytest.raises(ValueError, match="errors"):
        manager.run(marker_experiment, marker_params, n_jobs=1, errors="ignore", progress=False)
    assert_nothing_ran(manager, marker)


@pytest.mark.parametrize("intruder", [print, "touch_marker", None], ids=["function", "str", "none"])
def test_map_with_a_non_stage(manager, marker, marker_params, intruder):
    with pytest.raises(TypeError, match=r"stages\[1\].*not a @stage"):
        manager.map(marker_params, [w.touch_marker, intruder], n_jobs=1, progress=False)
    assert_nothing_ran(manager, marker)


def test_map_with_an_aggregate(manager, marker, marker_params):
    with pytest.raises(TypeError, match=r"stages\[1\] is an @aggregate"):
        manager.map(marker_params, [w.touch_marker, w.collect_refined], n_jobs=1, progress=False)
    assert_nothing_ran(manager, marker)


def test_map_with_a_single_stage_not_in_a_list(manager, marker, marker_params):
    with pytest.raises(TypeError, match="list of @stage"):
        manager.map(marker_params, w.touch_marker, n_jobs=1, progress=False)
    assert_nothing_ran(manager, marker)


def test_experiment_not_callable(manager, marker, marker_params):
    with pytest.raises(TypeError, match="experiment"):
        manager.run("marker_experiment", marker_params, n_jobs=1, progress=False)
    assert_nothing_ran(manager, marker)


@pytest.mark.parametrize("bad", [{"name": "dict"}, "p1", None], ids=["dict", "str", "none"])
def test_map_with_a_parameter_set_that_is_not_experiment_parameters(
    manager, marker, marker_params, bad
):
    with pytest.raises(TypeError, match="parameter set 1 .*ExperimentParameters"):
        manager.map([*marker_params, bad], [w.touch_marker], n_jobs=1, progress=False)
    assert_nothing_ran(manager, marker)
    assert manager.records == []


@pytest.mark.parametrize("backend", ["loky", "dask"], indirect=True)
def test_unpicklable_state_names_the_record_and_the_key(manager, backend, marker, marker_params):
    def experiment(param_sets, manager):
        marker_experiment(param_sets, manager)  # a good record first
        record = Record(manager, w.Params(name="locked", marker=str(marker) + "-locked"))
        record.state["lock"] = threading.Lock()
        w.touch_marker(record)

    with pytest.raises(UnpicklableStateError) as excinfo:
        manager.run(experiment, marker_params, progress=False, **backend)
    message = str(excinfo.value)
    assert "'locked'" in message and "'lock'" in message
    assert_nothing_ran(manager, marker)
    assert not os.path.exists(str(marker) + "-locked")


def test_dask_without_distributed_says_what_to_install(manager, marker, marker_params, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'parafactory\[dask\]'") as info:
        manager.map(marker_params, [w.touch_marker], n_jobs=2, backend="dask", progress=False)
    assert isinstance(info.value, ImportError)
    assert_nothing_ran(manager, marker)
