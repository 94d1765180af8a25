"""Mistakes found while planning, before any worker starts.

A run with mistakes is refused with one ``PlanError`` that lists every problem and every
record affected; no stage runs (marker files prove it) and the refused run leaves no
records in ``manager.records``. Declarations and manager names that cannot work are
refused even earlier, where they are written.
"""

import pytest

import parafactory
import travel_stages as t
import workloads as w
from parafactory import ArtifactManager, Record, StageDefinitionError, aggregate, stage
from parafactory._errors import PlanError  # the public name is checked on its own below

pytestmark = pytest.mark.timeout(120)

# Planning is the same for every backend: once in-process and once with a loky pool.
PLANNING_BACKENDS = pytest.mark.parametrize("backend", ["inprocess", "loky"], indirect=True)


def marked_params(tmp_path, names):
    """Parameter sets whose :func:`workloads.touch_marker` writes ``tmp_path/<name>``."""
    return [
        w.Params(name=name, value=i, marker=str(tmp_path / name)) for i, name in enumerate(names)
    ]


def markers_written(tmp_path, names):
    return [name for name in names if (tmp_path / name).exists()]


def function_of(stage_callable):
    """The user's function behind a ``@stage`` callable (``functools.wraps`` keeps it)."""
    return stage_callable.__wrapped__


def where(stage_callable):
    function = function_of(stage_callable)
    return f"{function.__module__}.{function.__qualname__}"


@stage(outputs=["processed"])
def process(record):
    """Shares its name with :func:`travel_stages.process`."""
    return "test_plan_checks"


def process_stage(label):
    """A new ``process`` stage on each call: closures of one definition."""

    @stage(outputs=["processed"])
    def process(record):
        return label

    return process


def test_plan_error_is_a_public_name():
    assert getattr(parafactory, "PlanError", None) is PlanError
    assert issubclass(PlanError, parafactory.ParafactoryError)


# -- (1) an input nothing upstream produces ------------------------------------------------


@PLANNING_BACKENDS
def test_run_refuses_an_input_nothing_upstream_produces(make_manager, backend, tmp_path):
    manager = make_manager("plan")
    earlier = manager.map([w.Params(name="earlier", value=2)], [w.make_base], n_jobs=1)
    names = ["r0", "r1", "r2", "r3", "r4", "given"]
    params = marked_params(tmp_path, names)

    def experiment(param_sets, manager):
        for p in param_sets:
            record = w.touch_marker(Record(manager, p))
            if p.name in ("r0", "r3"):
                w.make_base(record)
            elif p.name == "given":
                record.state["base"] = 100  # written while planning: available to expand
            w.expand(record)

    with pytest.raises(PlanError) as excinfo:
        manager.run(experiment, params, progress=False, **backend)

    [problem] = excinfo.value.problems  # one stage, one input: one line naming every record
    assert problem in str(excinfo.value)
    assert "'expand'" in problem and "'base'" in problem
    assert "available" in problem and "'marked'" in problem
    for name in ["r1", "r2", "r4"]:
        assert f"'{name}'" in problem
    for name in ["r0", "r3", "given"]:
        assert f"'{name}'" not in problem
    assert markers_written(tmp_path, names) == []
    assert manager.records == earlier


@PLANNING_BACKENDS
def test_map_refuses_an_input_nothing_upstream_produces(manager, backend, tmp_path):
    names = [f"m{i}" for i in range(5)]
    with pytest.raises(PlanError) as excinfo:
        manager.map(
            marked_params(tmp_path, names), [w.touch_marker, w.expand], progress=False, **backend
        )
    [problem] = excinfo.value.problems
    assert "'expand'" in problem and "'base'" in problem and "'marked'" in problem
    assert all(f"'{name}'" in problem for name in names)
    assert markers_written(tmp_path, names) == []
    assert manager.records == []


@PLANNING_BACKENDS
def test_a_key_written_while_planning_is_an_available_input(manager, backend):
    def experiment(param_sets, manager):
        for p in param_sets:
            record = Record(manager, p)
            record.state["base"] = 10 * p.value
            w.expand(record)

    records = manager.run(experiment, w.numbered_params(3), progress=False, **backend)
    assert [r.state["multiples"] for r in records] == [
        [10 * i * k for k in range(5)] for i in range(3)
    ]
    assert [r.error for r in records] == [None] * 3


@PLANNING_BACKENDS
def test_every_mistake_of_a_run_comes_in_one_error(manager, backend, tmp_path):
    names = ["a", "b"]

    def experiment(param_sets, manager):
        first, second = (w.touch_marker(Record(manager, p)) for p in param_sets)
        w.expand(first)  # nothing made 'base'
        t.process(second)
        process(second)  # a different stage of the same name

    with pytest.raises(PlanError) as excinfo:
        manager.run(experiment, marked_params(tmp_path, names), progress=False, **backend)
    problems = excinfo.value.problems
    assert len(problems) == 2
    assert any("'base'" in p and "'a'" in p for p in problems)
    assert any("'process'" in p for p in problems)
    assert markers_written(tmp_path, names) == []
    assert manager.records == []


# -- (2) a single name given where a list is expected ----------------------------------------


def accepts_x(record, x):
    return x


def aggregates_x(record, records, x):
    return x


@pytest.mark.parametrize("keyword", ["inputs", "outputs"])
@pytest.mark.parametrize("decorator, function", [(stage, accepts_x), (aggregate, aggregates_x)])
def test_a_string_for_inputs_or_outputs_is_refused_at_decoration(decorator, function, keyword):
    name = "x" if keyword == "inputs" else "result"
    with pytest.raises(StageDefinitionError) as excinfo:
        decorator(**{keyword: name})(function)
    message = str(excinfo.value)
    assert keyword in message and repr(name) in message
    assert function.__name__ in message


# -- (3) a manager name that cannot start a file name ----------------------------------------


@pytest.mark.parametrize("name", ["runs/first", "", "..", "../outside"])
def test_a_manager_name_that_cannot_be_a_file_name_is_refused(tmp_path, name):
    with pytest.raises(ValueError) as excinfo:
        ArtifactManager(name, root=tmp_path, console_log=False)
    assert repr(name) in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []  # no log, run number or directory was made
    assert not (tmp_path.parent / "outside_1").exists()


# -- (4) two different stages sharing a name -----------------------------------------------


def two_lambdas():
    first = stage(outputs=["a"])(lambda record: 1)
    second = stage(outputs=["b"])(lambda record: 2)
    return first, second


def clashing_pairs():
    return {
        "lambdas": two_lambdas(),
        "modules": (t.process, process),
        "closures": (process_stage("one"), process_stage("two")),
    }


def assert_names_both(problem, first, second):
    """The problem names the two functions: where each is defined (module, qualname, line)."""
    name = function_of(first).__name__
    assert f"2 different stages are named {name!r}" in problem
    for stage_callable in (first, second):
        assert where(stage_callable) in problem
        assert f":{function_of(stage_callable).__code__.co_firstlineno})" in problem
    if where(first) == where(second):  # one qualname: both must still be listed
        assert problem.count(where(first)) == 2


@PLANNING_BACKENDS
@pytest.mark.parametrize("pair", ["lambdas", "modules", "closures"])
def test_run_refuses_two_stages_with_one_name(manager, backend, tmp_path, pair):
    first, second = clashing_pairs()[pair]
    names = ["c0", "c1", "c2"]

    def experiment(param_sets, manager):
        for p in param_sets:
            record = w.touch_marker(Record(manager, p))
            (first if p.name == "c0" else second)(record)

    with pytest.raises(PlanError) as excinfo:
        manager.run(experiment, marked_params(tmp_path, names), progress=False, **backend)
    [problem] = excinfo.value.problems
    assert_names_both(problem, first, second)
    assert markers_written(tmp_path, names) == []
    assert manager.records == []


@PLANNING_BACKENDS
@pytest.mark.parametrize("pair", ["lambdas", "modules", "closures"])
def test_map_refuses_two_stages_with_one_name(manager, backend, tmp_path, pair):
    first, second = clashing_pairs()[pair]
    names = ["c0", "c1"]
    with pytest.raises(PlanError) as excinfo:
        manager.map(
            marked_params(tmp_path, names),
            [w.touch_marker, first, second],
            progress=False,
            **backend,
        )
    [problem] = excinfo.value.problems
    assert_names_both(problem, first, second)
    assert markers_written(tmp_path, names) == []
    assert manager.records == []


@PLANNING_BACKENDS
def test_one_stage_called_twice_is_not_a_clash(manager, backend):
    def experiment(param_sets, manager):
        for p in param_sets:
            w.bump_base(w.bump_base(w.make_base(Record(manager, p))))

    ran = manager.run(experiment, w.numbered_params(3), progress=False, **backend)
    mapped = manager.map(
        w.numbered_params(3), [w.make_base, w.bump_base, w.bump_base], progress=False, **backend
    )
    for records in (ran, mapped):
        assert [r.state["base"] for r in records] == [3 * i + 1 + 2000 for i in range(3)]
        assert [r.stages for r in records] == [["make_base", "bump_base", "bump_base"]] * 3
