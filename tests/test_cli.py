"""The ``parafactory`` command, run as a user runs it: the installed console script in a
subprocess, on a small project laid out the curifactory way in a temporary directory.

Where the project is installed (``pip install -e .``, as CI does) the real console
script is used, importing the code under test; without it, ``python -m parafactory``
stands in, except in CI, where a missing script fails the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import parafactory

pytestmark = pytest.mark.timeout(120)

SOURCE = str(Path(parafactory.__file__).parent.parent)  # the code under test

STAGES = """
import os
import time
from pathlib import Path

from parafactory import JsonCacher, PickleCacher, aggregate, stage


@stage(outputs=["start"], cachers=[PickleCacher()])
def start(record):
    params = record.params
    time.sleep(params.nap)
    return params.base * params.scale


@stage(inputs=["start"], outputs=["final"], cachers=[JsonCacher()])
def grow(record, start):
    params = record.params
    if params.fail:
        raise ValueError(f"asked to fail: {params.name}")
    if "MARKERS" in os.environ:  # which process ran it
        Path(os.environ["MARKERS"], params.name).write_text(str(os.getpid()))
    return start + params.offset


@aggregate(inputs=["final"], outputs=["best"], cachers=[JsonCacher()])
def best(record, records, final):
    return max(final.values())
"""

PARAMS = """
import dataclasses

from parafactory import ExperimentParameters


@dataclasses.dataclass
class Numbers(ExperimentParameters):
    base: int = 1
    scale: float = 1.0
    offset: int = 0
    fail: bool = False
    label: str = "x"
    nap: float = 0.0


def get_params():
    return [Numbers(name="a", base=1), Numbers(name="b", base=2), Numbers(name="c", base=3)]
"""

MORE_PARAMS = """
from params.basic import Numbers


def get_params():
    return [Numbers(name=f"slow{i:02d}", base=i, nap=0.4) for i in range(12)]
"""

EXPERIMENT = """
from parafactory import Record
from stages.numbers import best, grow, start


def run(param_sets, manager):
    for params in param_sets:
        grow(start(Record(manager, params)))
    best(Record(manager, None))
"""

# An experiment file holding its own get_params, run by path.
SELF_CONTAINED = """
import dataclasses

from parafactory import ExperimentParameters, Record, stage


@dataclasses.dataclass
class Square(ExperimentParameters):
    x: int = 0


@stage(outputs=["squared"])
def square(record):
    return record.params.x ** 2


def get_params():
    return [Square(name=f"x{x}", x=x) for x in range(4)]


def run(param_sets, manager):
    for params in param_sets:
        square(Record(manager, params))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A curifactory-style project: experiments/, params/ and stages/."""
    root = tmp_path / "project"
    files = {
        "stages/numbers.py": STAGES,
        "params/basic.py": PARAMS,
        "params/more.py": MORE_PARAMS,
        "params/_private.py": "def get_params():\n    return []\n",
        "experiments/sweep.py": EXPERIMENT,
        "experiments/notes.txt": "not an experiment\n",
        "solo.py": SELF_CONTAINED,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


def command() -> list[str]:
    """The installed console script, or ``python -m parafactory`` where there is none."""
    script = Path(sys.executable).parent / "parafactory"
    if not script.exists():
        found = shutil.which("parafactory")
        script = Path(found) if found else script
    if script.exists():
        return [str(script)]
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("the parafactory console script is not installed (pip install -e .)")
    return [sys.executable, "-m", "parafactory"]


def environment(**extra: str) -> dict[str, str]:
    """The environment the command runs in: the code under test first on its path."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join([SOURCE, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PARAFACTORY_N_JOBS", None)
    return env


def parafactory_command(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``parafactory *args`` in ``project`` to its end."""
    return subprocess.run(
        [*command(), *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=100,
        env=environment(**env),
    )


def start(
    project: Path, *args: str, env: dict[str, str] | None = None, **popen: object
) -> subprocess.Popen:
    """Start ``parafactory *args`` in ``project``, leading a session of its own (signals
    sent to its process group reach its workers, and nothing reaches pytest); stages
    write which process ran them in ``project/markers``."""
    (project / "markers").mkdir(exist_ok=True)
    return subprocess.Popen(
        [*command(), *args],
        cwd=project,
        text=True,
        start_new_session=True,
        env=environment(MARKERS=str(project / "markers"), **(env or {})),
        **popen,
    )


def last_line(completed: subprocess.CompletedProcess | str) -> str:
    text = completed if isinstance(completed, str) else completed.stdout
    return text.rstrip("\n").splitlines()[-1]


def report_of(line: str, project: Path) -> Path:
    """The report a summary line names; it must exist."""
    match = re.search(r"; report: (.+)$", line)
    assert match, line
    path = project / match.group(1)
    assert path.is_file(), line
    return path


def finals(project: Path) -> dict[str, float]:
    """Each parameter set's cached ``final`` by name, read from the cache's files."""
    cache = project / "data" / "cache"
    registry = json.loads((cache / "params_registry.json").read_text())
    found = {}
    for path in cache.glob("sweep_*_grow_final.json"):
        record_hash = path.name.split("_")[1]
        found[registry[record_hash]["name"].strip("'")] = json.loads(path.read_text())
    return found


def plan_lines(project: Path, *args: str) -> dict[str, list[str]]:
    """``parafactory plan``'s verdicts: each record's stage lines, stripped."""
    completed = parafactory_command(project, "plan", *args)
    assert completed.returncode == 0, completed.stderr
    records: dict[str, list[str]] = {}
    stages: list[str] = []
    for line in completed.stdout.splitlines()[:-1]:
        if line.startswith("    "):
            stages.append(" ".join(line.split()))
        else:
            stages = records[line] = []
    return records


# -- finding things ---------------------------------------------------------------------


def test_ls_lists_the_experiments_and_parameter_files(project):
    completed = parafactory_command(project, "ls")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == ["experiments/: sweep", "params/: basic, more"]


def test_python_m_parafactory_is_the_same_command(project):
    completed = subprocess.run(
        [sys.executable, "-m", "parafactory", "run", "sweep", "-p", "basic", "-j", "1"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=100,
        env=environment(),
    )
    assert completed.returncode == 0, completed.stderr
    assert last_line(completed).startswith("sweep: 4 of 4 records finished; report: ")  # computed


# -- running ------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_run_ends_with_its_summary_and_report_and_a_rerun_loads_everything(project, jobs):
    first = parafactory_command(
        project, "run", "sweep", "-p", "basic", "-j", jobs, "--notes", "baseline for the paper"
    )
    assert first.returncode == 0, first.stderr
    line = last_line(first)
    assert line.startswith(f"sweep: 4 of 4 records finished; report: {project}/reports/sweep_1_")
    assert "baseline for the paper" in report_of(line, project).read_text()
    assert finals(project) == {"a": 1.0, "b": 2.0, "c": 3.0}

    verdicts = plan_lines(project, "sweep", "-p", "basic")
    assert verdicts["a"] == ["start load from cache", "grow load from cache"]
    assert verdicts["record #3"] == ["best load from cache"]

    second = parafactory_command(project, "run", "sweep", "-p", "basic", "-j", jobs)
    assert second.returncode == 0, second.stderr
    assert last_line(second).startswith(
        f"sweep: 4 of 4 records finished (4 loaded from cache); report: {project}/reports/sweep_2_"
    )


def test_an_experiment_file_with_its_own_params_runs_by_path(project):
    completed = parafactory_command(project, "run", "solo.py", "--dry", "-j", "2")
    assert completed.returncode == 0, completed.stderr
    assert last_line(completed) == "solo: 4 of 4 records finished"
    assert not (project / "data").exists() and not (project / "logs").exists()


def test_parameter_files_concatenate_and_names_and_indices_choose(project):
    completed = parafactory_command(
        project, "run", "sweep", "-p", "basic", "more", "--names", "b", "--indices", "3-5,9"
    )
    assert completed.returncode == 0, completed.stderr
    assert sorted(finals(project)) == ["b", "slow00", "slow01", "slow06"]


def test_failures_with_errors_continue_exit_1_naming_them(project):
    completed = parafactory_command(
        project, "run", "sweep", "-p", "basic", "--grid", "fail=False,True", "--errors",
        "continue", "-j", "2",
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    line = last_line(completed)
    assert re.match(r"sweep: \d of 7 records finished, 3 failed; report: ", line), line
    assert "  'a_fail=True': ValueError in stage 'grow'" in completed.stderr
    report_of(line, project)
    assert finals(project) == {"a_fail=False": 1.0, "b_fail=False": 2.0, "c_fail=False": 3.0}


@pytest.mark.parametrize("run", ["first", "cached rerun"])
def test_an_aggregate_over_only_failed_records_is_not_run_and_exits_1(project, run):
    """Every record fails, so ``best`` has nothing to aggregate: it is not run (its
    ``max`` of nothing would raise), and the summary says so."""
    args = ["run", "sweep", "-p", "basic", "--set", "fail=True", "--errors", "continue"]
    if run == "cached rerun":
        parafactory_command(project, *args, "-j", "2")
    completed = parafactory_command(project, *args, "-j", "2")
    assert completed.returncode == 1, completed.stderr
    line = last_line(completed)
    assert re.match(r"sweep: 0 of 4 records finished, 3 failed, 1 not run; report: ", line), line
    assert "  'record #3': not run, as records it needs failed" in completed.stderr
    assert "aggregate 'best' was not run on record 'record #3'" in completed.stderr
    assert "empty" not in completed.stderr  # max() of nothing: never called


COPY_OF_HIDDEN = """
import dataclasses

from parafactory import Record, stage
from stages.numbers import grow


@stage(outputs=["start"])
def start_or_fail(record):
    if record.params.fail:
        raise ValueError(f"asked to fail: {record.params.name}")
    return record.params.base


def run(param_sets, manager):
    for params in param_sets:
        hidden = start_or_fail(Record(manager, params, hide=True))
        grow(hidden.make_copy(dataclasses.replace(params, name=params.name + "-copy")))
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_copy_not_run_as_its_hidden_original_failed_exits_1(project, jobs):
    """The failed original is hidden, so only its copy says the run did not finish."""
    (project / "experiments" / "copies.py").write_text(COPY_OF_HIDDEN)
    completed = parafactory_command(
        project, "run", "copies", "-p", "basic", "--names", "a", "--set", "fail=True",
        "--errors", "continue", "-j", jobs,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    line = last_line(completed)
    assert re.match(r"copies: 0 of 2 records finished, 1 failed, 1 not run; report: ", line), line


def test_a_failure_with_errors_raise_exits_1(project):
    completed = parafactory_command(
        project, "run", "sweep", "-p", "basic", "--set", "fail=True", "-j", "1"
    )
    assert completed.returncode == 1
    assert "asked to fail: a_fail=True" in completed.stderr
    assert completed.stderr.count("asked to fail: a_fail=True") == 1
    assert "1 failed" in last_line(completed)


def test_quiet_prints_only_the_summary(project):
    completed = parafactory_command(project, "run", "sweep", "-p", "basic", "-q", "-j", "2")
    assert completed.returncode == 0
    assert completed.stderr == ""
    assert len(completed.stdout.splitlines()) == 1


def test_without_a_terminal_progress_is_calm_lines(project):
    completed = parafactory_command(project, "run", "sweep", "-p", "more", "-j", "2")
    assert completed.returncode == 0, completed.stderr
    assert "\r" not in completed.stderr
    progress = [line for line in completed.stderr.splitlines() if "records done" in line]
    assert progress and all(re.fullmatch(r"sweep: \d+/13 records done.*", p) for p in progress)


def test_without_jobs_a_slurm_task_of_one_cpu_runs_in_this_process(project):
    process = start(project, "run", "sweep", "-p", "basic", "-q", env={"SLURM_CPUS_PER_TASK": "1"})
    assert process.wait(100) == 0
    ran_in = {path.read_text() for path in (project / "markers").iterdir()}
    assert ran_in == {str(process.pid)}


CLUSTER = """
import sys, time
sys.path.insert(0, ".")
from distributed import LocalCluster
cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://",
                       dashboard_address=":0")
print(cluster.scheduler_address, flush=True)
time.sleep(120)
"""


def test_a_dask_scheduler_by_address(project):
    """The command connects to a running scheduler, whose workers (threads of another
    process started in the project) import the project's modules."""
    pytest.importorskip("distributed")
    cluster = subprocess.Popen(
        [sys.executable, "-c", CLUSTER],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment(),
    )
    try:
        address = cluster.stdout.readline().strip()
        completed = parafactory_command(
            project, "run", "sweep", "-p", "basic", "--scheduler", address
        )
    finally:
        cluster.kill()
        cluster.wait(10)
    assert completed.returncode == 0, completed.stderr
    assert finals(project) == {"a": 1.0, "b": 2.0, "c": 3.0}


def test_the_dask_backend_on_a_local_cluster(project):
    pytest.importorskip("distributed")
    completed = parafactory_command(
        project, "run", "sweep", "-p", "basic", "--backend", "dask", "-j", "2", "-q"
    )
    assert completed.returncode == 0, completed.stderr
    assert finals(project) == {"a": 1.0, "b": 2.0, "c": 3.0}


# -- grids and overrides --------------------------------------------------------------


def test_grid_is_the_cartesian_product_named_after_the_overrides(project):
    completed = parafactory_command(
        project, "run", "sweep", "-p", "basic", "--names", "b", "--grid", "offset=0,10",
        "--grid", "scale=1,2.5", "--set", "label=3", "-j", "2",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert finals(project) == {
        "b_label=3_offset=0_scale=1": 2.0,
        "b_label=3_offset=0_scale=2.5": 5.0,
        "b_label=3_offset=10_scale=1": 12.0,
        "b_label=3_offset=10_scale=2.5": 15.0,
    }
    registry = json.loads((project / "data/cache/params_registry.json").read_text())
    shown = {entry["name"]: entry for entry in registry.values()}
    assert shown["'b_label=3_offset=0_scale=1'"]["scale"] == "1.0"  # an int for a float field
    assert shown["'b_label=3_offset=0_scale=1'"]["label"] == "'3'"  # the text for a str field


def test_grid_values_are_python_literals(project):
    verdicts = plan_lines(project, "sweep", "-p", "basic", "--names", "a", "--grid", "nap=0,0.0")
    assert list(verdicts)[:2] == ["a_nap=0", "a_nap=0.0"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--grid", "offest=1,2"], "Numbers has no field 'offest'"),
        (["--set", "base=big"], "field 'base' of Numbers is int, and 'big' is a str"),
        (["--grid", "fail=True,3"], "field 'fail' of Numbers is bool, and 3 is a int"),
        (["--set", "scale"], "--set 'scale': write it as field=value"),
        (["--names", "zz"], "no parameter set is named 'zz'"),
        (["--indices", "2-9"], "position 3 is past the 3 parameter sets"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
@pytest.mark.parametrize("subcommand", ["run", "plan"])
def test_bad_values_are_usage_errors_before_anything_runs(project, subcommand, arguments, message):
    completed = parafactory_command(project, subcommand, "sweep", "-p", "basic", *arguments)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert re.search(rf"^parafactory( {subcommand})?: error: ", completed.stderr, re.M)
    assert not (project / "data").exists() and not (project / "logs").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["sweep", "-p", "basic", "-j", "many"], "argument -j/--jobs: invalid int value: 'many'"),
        (["sweep", "-p", "basic", "--errors", "skip"], "argument --errors: invalid choice: 'skip'"),
        (["nosuch"], "no experiment 'nosuch'"),
        (["nosuch.py"], "no experiment file 'nosuch.py'"),
        (["sweep", "-p", "nosuch"], "no parameter file 'nosuch'"),
        (["solo.py", "-p", "basic", "--grid", "x=1"], "Numbers has no field 'x'"),
    ],
)
def test_bad_names_are_usage_errors(project, arguments, message):
    completed = parafactory_command(project, "run", *arguments)
    assert completed.returncode == 2
    assert message in completed.stderr


def test_an_experiment_without_params_needs_a_parameter_file(project):
    completed = parafactory_command(project, "plan", "sweep")
    assert completed.returncode == 2
    assert "has no get_params() of its own: name a parameter file with -p" in completed.stderr


# -- plan ------------------------------------------------------------------------------


def test_plan_says_what_would_compute_and_why(project):
    assert parafactory_command(project, "run", "sweep", "-p", "basic", "-j", "1").returncode == 0
    verdicts = plan_lines(project, "sweep", "-p", "basic", "--overwrite-stage", "start")
    assert verdicts["b"] == ["start compute: overwrite", "grow compute: upstream changed"]
    assert verdicts["record #3"] == ["best compute: upstream changed"]
    verdicts = plan_lines(project, "sweep", "-p", "basic", "--overwrite")
    assert verdicts["c"] == ["start compute: overwrite", "grow compute: overwrite"]

    stages = project / "stages/numbers.py"
    stages.write_text(stages.read_text().replace("start + params.offset", "params.offset + start"))
    verdicts = plan_lines(project, "sweep", "-p", "basic", "--grid", "offset=0,1")
    assert verdicts["a_offset=0"] == ["start load from cache", "grow compute: code changed"]
    assert verdicts["a_offset=1"] == ["start compute: new", "grow compute: new"]
    assert verdicts["record #6"] == ["best compute: new"]

    completed = parafactory_command(project, "plan", "sweep", "-p", "basic", "--hashes")
    assert re.search(r"^a \[[0-9a-f]{32,33}\]$", completed.stdout, re.M)
    assert last_line(completed) == (
        "4 records, 7 stage calls: 3 from cache, 4 to compute (3 code changed, 1 upstream changed)"
    )
    assert len(run_reports(project)) == 1  # plan writes nothing


def test_plan_check_files_foresees_files_changed_in_place(project):
    """The plan judges entries from the cache's index, which files rewritten in place leave
    as it was; ``--check-files`` reads every entry, as the run does."""
    assert parafactory_command(project, "run", "sweep", "-p", "basic", "-j", "1").returncode == 0
    cache = project / "data/cache"
    final = sorted(cache.glob("sweep_*_grow_final.json"))[0]
    final.write_text("[]", encoding="utf-8")  # in place: the directory's time stays

    said = plan_lines(project, "sweep", "-p", "basic")
    checked = plan_lines(project, "sweep", "-p", "basic", "--check-files")
    changed = [name for name in said if said[name] != checked[name]]
    assert len(changed) == 1
    assert checked[changed[0]] == ["start load from cache", "grow compute: damaged"]
    assert said[changed[0]] == ["start load from cache", "grow load from cache"]


# -- stopping ---------------------------------------------------------------------------


def run_until_some_are_done(project: Path, signum: int, **popen: object) -> subprocess.Popen:
    """Start a sweep of 12 slow records and send ``signum`` to its process group once a
    couple are in the cache; returns the process, ended."""
    process = start(project, "run", "sweep", "-p", "more", "-j", "2", **popen)
    try:
        deadline = time.monotonic() + 60
        while len(list(project.glob("data/cache/*_grow_final.json"))) < 2:
            assert process.poll() is None, "the sweep ended early"
            assert time.monotonic() < deadline, "the sweep did not get going"
            time.sleep(0.05)
        os.killpg(process.pid, signum)
        process.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return process


def test_ctrl_c_exits_130_keeping_what_finished_and_a_rerun_computes_the_rest(project):
    process = run_until_some_are_done(
        project, signal.SIGINT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = process.communicate()
    assert process.returncode == 130, stderr
    line = last_line(stdout)
    match = re.match(r"sweep: run interrupted by Ctrl-C: (\d+) of 13 records finished", line)
    assert match, line
    report_of(line, project)
    kept = finals(project)  # a worker may have stored a record the run had no time to count
    assert len(kept) >= max(2, int(match.group(1)))
    verdicts = plan_lines(project, "sweep", "-p", "more")
    cached = [name for name, lines in verdicts.items() if "grow load from cache" in lines]
    assert sorted(cached) == sorted(kept)
    assert plan_lines(project, "sweep", "-p", "more", "--check-files") == verdicts

    rerun = parafactory_command(project, "run", "sweep", "-p", "more", "-j", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert re.match(
        r"sweep: 13 of 13 records finished \(\d+ loaded from cache\); report: ", last_line(rerun)
    )
    assert finals(project) == {f"slow{i:02d}": float(i) for i in range(12)}


def test_sigterm_exits_143_keeping_what_finished(project):
    process = run_until_some_are_done(
        project, signal.SIGTERM, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, _ = process.communicate()
    assert process.returncode == 128 + signal.SIGTERM
    line = last_line(stdout)
    assert "run interrupted by SIGTERM" in line
    report_of(line, project)
    assert len(finals(project)) >= 2


def test_the_terminal_closing_sighup_exits_129_keeping_what_finished(project, tmp_path):
    """As when the terminal closes: SIGHUP, and nobody reads the output any more."""
    read_end, write_end = os.pipe()
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = start(
            project, "run", "sweep", "-p", "more", "-j", "2", stdout=write_end, stderr=stderr
        )
    os.close(write_end)
    os.close(read_end)  # the output goes nowhere: writes fail
    try:
        deadline = time.monotonic() + 60
        while len(list(project.glob("data/cache/*_grow_final.json"))) < 2:
            assert time.monotonic() < deadline, "the sweep did not get going"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGHUP)
        process.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGHUP, log.read_text()
    assert "run interrupted by SIGHUP" in log.read_text()
    assert "Exception ignored" not in log.read_text()  # no failed flush of stdout at exit
    assert len(run_reports(project)) == 1
    assert len(finals(project)) >= 2


def run_reports(project: Path) -> list[Path]:
    """The runs' report folders (not the index of runs, nor ``_latest``)."""
    return [path for path in (project / "reports").iterdir() if (path / "run.json").is_file()]
