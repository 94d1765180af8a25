"""A real notebook (nbclient + ipykernel) whose cells define params and stages and run them.

Everything the workers run is defined in the kernel's ``__main__`` (notebook cells), so
this checks that such functions and parameter classes travel to loky workers, that the
results come back right, and that a progress bar shows in the notebook's outputs.
"""

import json
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

RESULT_MARK = "RESULT-JSON:"


def module_returning(value):
    return f"def value():\n    return {value}\n"


def _cells(tmp_path):
    setup = f"""
import dataclasses, json, os
from parafactory import ArtifactManager, ExperimentParameters, Record, aggregate, stage

KERNEL_PID = os.getpid()

@dataclasses.dataclass
class NotebookParams(ExperimentParameters):
    x: int = 0
    factor: int = 1

def offset_for(x):
    # a plain helper defined in the notebook, called from a stage in the worker
    return 100 * x

@stage(outputs=["square"])
def square(record):
    return record.params.x ** 2

@stage(inputs=["square"], outputs=["scaled", "worker_pid"])
def scale(record, square):
    return square * record.params.factor + offset_for(record.params.x), os.getpid()

@aggregate(inputs=["scaled"], outputs=["total"])
def total(record, records, scaled):
    return sum(scaled.values())

manager = ArtifactManager("notebook_sweep", root={str(tmp_path)!r})
param_sets = [NotebookParams(name=f"p{{i}}", x=i, factor=3) for i in range(6)]

# a module of the user's own, on sys.path before any pool starts
import importlib, pathlib, sys, time
CODE_DIR = pathlib.Path({str(tmp_path / "code")!r})
CODE_DIR.mkdir()
(CODE_DIR / "nb_helper.py").write_text({module_returning(1)!r})
sys.path.insert(0, str(CODE_DIR))
import nb_helper
"""
    run_map = f"""
records = manager.map(param_sets, [square, scale], n_jobs=2)
print({RESULT_MARK!r} + json.dumps({{
    "states": {{r.name: {{k: r.state[k] for k in ("square", "scaled")}} for r in records}},
    "errors": [r.name for r in records if r.error is not None],
    "in_workers": all(r.state["worker_pid"] != KERNEL_PID for r in records),
    "params_class": type(records[0].params).__name__,
}}))
"""
    run_experiment = f"""
def experiment(param_sets, manager):
    records = [scale(square(Record(manager, params))) for params in param_sets]
    total(Record(manager, None), records)

run_records = manager.run(experiment, param_sets[:4], n_jobs=2)
print({RESULT_MARK!r} + json.dumps({{
    "count": len(run_records),
    "scaled": {{r.name: r.state["scaled"] for r in run_records[:4]}},
    "total": run_records[-1].state["total"],
    "in_workers": all(r.state["worker_pid"] != KERNEL_PID for r in run_records[:4]),
}}))
"""
    reload_helper = f"""
@stage(outputs=["helped"])
def call_helper(record):
    time.sleep(0.1)  # so that both workers run records and import nb_helper
    return nb_helper.value()

def helped():
    records = manager.map(param_sets, [call_helper], n_jobs=2, progress=False)
    return [r.state["helped"] for r in records]

first = helped()
helper_path = CODE_DIR / "nb_helper.py"
helper_path.write_text({module_returning(2)!r})
later = helper_path.stat().st_mtime + 10
os.utime(helper_path, (later, later))
importlib.reload(nb_helper)
print({RESULT_MARK!r} + json.dumps({{
    "first": first, "in_kernel": nb_helper.value(), "second": helped(),
}}))
"""
    late_path = f"""
LATE_DIR = pathlib.Path({str(tmp_path / "late")!r})
LATE_DIR.mkdir()
(LATE_DIR / "nb_late.py").write_text({module_returning(7)!r})
sys.path.insert(0, str(LATE_DIR))
import nb_late

@stage(outputs=["late"])
def call_late(record):
    return nb_late.value()

late_records = manager.map(
    param_sets[:2], [call_late], n_jobs=2, progress=False, errors="continue"
)
print({RESULT_MARK!r} + json.dumps({{
    "values": [r.state.get("late") for r in late_records],
    "errors": [str(r.error) for r in late_records if r.error is not None],
}}))
"""
    failing = """def refuse(x):
    raise ValueError(f"refused {x}")

@stage(outputs=["never"])
def flaky(record):
    logging.getLogger("notebook").warning("flaky on %s", record.name)
    if record.params.x in (1, 4):
        return refuse(record.params.x)
    return record.params.x

import logging
failing_records = manager.map(param_sets, [flaky], n_jobs=2, errors="continue")
"""
    return [setup, run_map, run_experiment, reload_helper, late_path, failing]


def _expected_scaled(x, factor=3):
    return x**2 * factor + 100 * x


@pytest.fixture(scope="module")
def executed(python3_kernel, tmp_path_factory):
    """Build, write, execute and read back the notebook once for all tests here."""
    tmp_path = tmp_path_factory.mktemp("notebook")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in _cells(tmp_path)]
    path = tmp_path / "sweep.ipynb"
    nbformat.write(nb, path)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name=python3_kernel,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    nbformat.write(nb, path)
    return nb, tmp_path


def _results(cell):
    found = []
    for output in cell.outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            for line in output["text"].splitlines():
                if line.startswith(RESULT_MARK):
                    found.append(json.loads(line[len(RESULT_MARK) :]))
    assert len(found) == 1, f"expected one result line in {cell.outputs!r}"
    return found[0]


WIDGET = "application/vnd.jupyter.widget-view+json"


def test_map_in_notebook_gives_right_states(executed):
    nb, _ = executed
    result = _results(nb.cells[1])
    assert result["errors"] == []
    assert result["states"] == {
        f"p{i}": {"square": i**2, "scaled": _expected_scaled(i)} for i in range(6)
    }
    assert result["params_class"] == "NotebookParams"


def test_stages_defined_in_notebook_ran_in_worker_processes(executed):
    nb, _ = executed
    assert _results(nb.cells[1])["in_workers"] is True
    assert _results(nb.cells[2])["in_workers"] is True


def test_run_with_aggregate_in_notebook(executed):
    nb, _ = executed
    result = _results(nb.cells[2])
    assert result["count"] == 5  # four records and the aggregate's record
    assert result["scaled"] == {f"p{i}": _expected_scaled(i) for i in range(4)}
    assert result["total"] == sum(_expected_scaled(i) for i in range(4))


@pytest.mark.parametrize("cell_index, total", [(1, 6), (2, 5)])
def test_progress_bar_shows_in_notebook(executed, cell_index, total):
    nb, _ = executed
    cell = nb.cells[cell_index]
    # The test extra installs ipywidgets, as a Jupyter user has it: tqdm.auto draws a widget.
    widgets = [o for o in cell.outputs if WIDGET in o.get("data", {})]
    assert widgets, cell.outputs
    assert re.search(rf"notebook_sweep:.*\| 0/{total}\b", widgets[-1]["data"]["text/plain"])
    # Its final state, kept by nbclient: the bar reached the total.
    model = widgets[-1]["data"][WIDGET]["model_id"]
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    progress = next(
        states[child.removeprefix("IPY_MODEL_")]["state"]
        for child in states[model]["state"]["children"]
        if states[child.removeprefix("IPY_MODEL_")]["model_name"] == "FloatProgressModel"
    )
    assert progress["value"] == progress["max"] == total


def test_notebook_run_wrote_its_log_file(executed):
    _, tmp_path = executed
    logs = list((tmp_path / "logs").glob("notebook_sweep_1_*.log"))
    assert len(logs) == 1


def test_module_reloaded_in_notebook_runs_new_code_in_workers(executed):
    nb, _ = executed
    result = _results(nb.cells[3])
    assert result["first"] == [1] * 6
    assert result["in_kernel"] == 2
    assert result["second"] == [2] * 6


def test_directory_added_to_sys_path_after_pool_started(executed):
    nb, _ = executed
    result = _results(nb.cells[4])
    assert result == {"values": [7, 7], "errors": []}


def test_a_failing_stage_of_a_cell_shows_the_cell_and_line_once_apart_from_the_bar(executed):
    nb, _ = executed
    cell = nb.cells[5]
    stderr = "".join(o["text"] for o in cell.outputs if o.get("name") == "stderr")
    source = cell.source.splitlines()

    def line_of(text):
        return next(n for n, line in enumerate(source, 1) if text in line)

    for x in (1, 4):
        # The stage ran in a worker: its traceback names the cell as IPython does, with
        # the source line, from the user's code on, and the message once.
        block = (
            f"[ERROR] stage 'flaky' failed on record 'p{x}':\n"
            "Traceback (most recent call last):\n"
            f'  File "Cell In[6]", line {line_of("return refuse(")}, in flaky\n'
            "    return refuse(record.params.x)\n"
            "           ^^^^^^^^^^^^^^^^^^^^^^^\n"
            f'  File "Cell In[6]", line {line_of("raise ValueError")}, in refuse\n'
            '    raise ValueError(f"refused {x}")\n'
            f"ValueError: refused {x}\n"
        )
        assert block in stderr, stderr
        assert stderr.count(f"refused {x}") == 1, stderr
    assert "<dynamic-code>" not in stderr
    assert "  'p1': ValueError in stage 'flaky'\n  'p4': ValueError in stage 'flaky'" in stderr
    # Log lines are text outputs of their own; the bar is a widget that holds none.
    assert stderr.count("[WARNING] [p") == 6, stderr
    widgets = [o for o in cell.outputs if WIDGET in o.get("data", {})]
    assert widgets and all("[" not in w["data"]["text/plain"].split("|")[0] for w in widgets)
    assert not re.search(r"\d+/6 \[", stderr)  # no bar drawn as text
