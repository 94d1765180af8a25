"""The cache's index of entries (``.entries-index``): ``parafactory plan`` judges entries
from it, reading none, while it accounts for every change made to the cache directory;
when something else changed the directory, the plan reads the entries as a run would, and
writes the index afresh. Either way it says what reading every entry says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cache_stages import cache_dir_of, manager_for, sweep
from parafactory import FileReferenceCacher, JsonCacher, PickleCacher, Record, stage
from parafactory._cli import preview
from parafactory._model import cache as cache_module
from parafactory._model.cache import ListedCache
from parafactory._model.entry_index import INDEX_FILE

pytestmark = pytest.mark.timeout(300)


@stage(outputs=["a"], cachers=[PickleCacher()])
def first(record):
    return record.params.value + 1


@stage(inputs=["a"], outputs=["b"], cachers=[PickleCacher()])
def second(record, a):
    return a * 2


def changed_second():
    """``second`` as a user who edited it has it."""

    @stage(inputs=["a"], outputs=["b"], cachers=[PickleCacher()])
    def second(record, a):
        return a * 3

    return second


def first_saved_as_json():
    """``first`` as a user who changed its cacher, not its code, has it."""

    @stage(outputs=["a"], cachers=[JsonCacher()])
    def first(record):
        return record.params.value + 1

    return first


def experiment(param_sets, manager, last=second):
    for params in param_sets:
        last(first(Record(manager, params)))


@stage(outputs=["a"], cachers=[PickleCacher()])
def first_with_a_file(record):
    """Writes a file of its own in the cache directory, as ``get_path`` allows."""
    Path(record.get_path("notes.txt")).write_text("notes")
    return record.params.value + 1


def experiment_writing_files(param_sets, manager):
    for params in param_sets:
        second(first_with_a_file(Record(manager, params)))


class NamedOtherwise(PickleCacher):
    """Names its files its own way: the index does not hold such entries' metadata."""

    def path(self, directory, prefix, record_hash, stage, output):
        return directory / f"{prefix}_{record_hash}_{stage}_{output}_own.pkl"


@stage(outputs=["a"], cachers=[NamedOtherwise()])
def first_named_otherwise(record):
    return record.params.value + 1


def experiment_naming_files(param_sets, manager):
    for params in param_sets:
        second(first_named_otherwise(Record(manager, params)))


@stage(outputs=["model"], cachers=[FileReferenceCacher()])
def write_model(record):
    path = Path(record.get_path("model.txt", subdir="models"))
    path.write_text(f"model {record.params.value}")
    return str(path)


def experiment_writing_models(param_sets, manager):
    for params in param_sets:
        write_model(Record(manager, params))


class Plan:
    """What ``parafactory plan`` says of each record, and how many entries it read."""

    def __init__(
        self, tmp_path, monkeypatch, param_sets, body=experiment, check_files=False, name="cached"
    ):
        reads = []
        real = cache_module._small_file_bytes
        with monkeypatch.context() as patch:
            patch.setattr(
                cache_module, "_small_file_bytes", lambda path: reads.append(path) or real(path)
            )
            manager = manager_for(tmp_path, name, dry=True)
            cache = ListedCache.of(manager.cache_settings(), check_files=check_files)
            found = preview.foresee_plan(manager.plan(body, param_sets), cache)
            cache.keep_index()
        self.said = {
            record.name: [(o.stage, o.verdict) for o in calls] for record, calls in found.items()
        }
        self.reads = len(reads)

    def verdicts(self) -> set[str]:
        return {verdict for calls in self.said.values() for _, verdict in calls}


def plans_agree(tmp_path, monkeypatch, param_sets, body=experiment, name="cached") -> Plan:
    """The plan as ``parafactory plan`` makes it, checked against reading every entry."""
    planned = Plan(tmp_path, monkeypatch, param_sets, body, name=name)
    checked = Plan(tmp_path, monkeypatch, param_sets, body, check_files=True, name=name)
    assert planned.said == checked.said
    return planned


def index_lines(tmp_path) -> list[str]:
    return (cache_dir_of(tmp_path) / INDEX_FILE).read_text().splitlines()


def test_a_run_keeps_the_index_and_the_plan_reads_no_entry(tmp_path, monkeypatch, backend):
    param_sets = sweep(tmp_path / "markers", 8)
    manager_for(tmp_path).run(experiment, param_sets, progress=False, **backend)

    kinds = [line.split("\t")[0] for line in index_lines(tmp_path)[1:]]
    assert kinds[0] == "B" and kinds.count("G") == 2  # folded at the run's end: a line a stage
    assert "E" not in kinds
    planned = plans_agree(tmp_path, monkeypatch, param_sets)
    assert planned.reads == 0
    assert planned.verdicts() == {"cached"}


def test_experiments_sharing_a_cache_directory_are_each_judged_from_the_index(
    tmp_path, monkeypatch
):
    param_sets = sweep(tmp_path / "markers", 4)
    manager_for(tmp_path, "one").run(experiment, param_sets[:2], n_jobs=1, progress=False)
    manager_for(tmp_path, "two").run(experiment, param_sets[1:3], n_jobs=2, progress=False)

    one = plans_agree(tmp_path, monkeypatch, param_sets, name="one")
    two = plans_agree(tmp_path, monkeypatch, param_sets, name="two")
    assert one.reads == two.reads == 0
    assert [one.said[name][0][1] for name in ("r00", "r01", "r02", "r03")] == [
        "cached",
        "cached",
        "new",
        "new",
    ]
    assert [two.said[name][0][1] for name in ("r00", "r01", "r02", "r03")] == [
        "new",
        "cached",
        "cached",
        "new",
    ]


def test_an_edited_stage_is_judged_from_the_index(tmp_path, monkeypatch):
    param_sets = sweep(tmp_path / "markers", 4)
    manager_for(tmp_path).run(experiment, param_sets[:3], n_jobs=1, progress=False)

    def edited(param_sets, manager):
        experiment(param_sets, manager, last=changed_second())

    planned = plans_agree(tmp_path, monkeypatch, param_sets, edited)
    assert planned.reads == 0
    assert planned.said["r00"] == [("first", "cached"), ("second", "code changed")]
    assert planned.said["r03"] == [("first", "new"), ("second", "new")]


def test_entries_the_index_cannot_hold_are_read(tmp_path, monkeypatch):
    param_sets = sweep(tmp_path / "markers", 4)
    manager_for(tmp_path).run(experiment_naming_files, param_sets[:3], n_jobs=2, progress=False)

    for _ in range(2):  # the run's index, then the plan's
        planned = plans_agree(tmp_path, monkeypatch, param_sets, experiment_naming_files)
        assert planned.reads == 3  # first_named_otherwise's entries, the others from the index
        assert planned.said["r00"] == [("first_named_otherwise", "cached"), ("second", "cached")]
        assert planned.said["r03"] == [("first_named_otherwise", "new"), ("second", "new")]


def test_entries_of_files_elsewhere_are_read_for_the_files_they_name(tmp_path, monkeypatch):
    """A file a stage wrote in a folder of the cache directory goes without the directory's
    time moving: entries naming such files are read, and their files looked for."""
    param_sets = sweep(tmp_path / "markers", 3)
    manager_for(tmp_path).run(experiment_writing_models, param_sets, n_jobs=1, progress=False)
    plans_agree(tmp_path, monkeypatch, param_sets, experiment_writing_models)  # the index, afresh
    models = sorted(cache_dir_of(tmp_path).rglob("*model.txt"))
    assert len(models) == 3 and models[0].parent.name == "models"
    models[0].unlink()

    planned = plans_agree(tmp_path, monkeypatch, param_sets, experiment_writing_models)
    assert sorted(verdict for calls in planned.said.values() for _, verdict in calls) == [
        "cached",
        "cached",
        "damaged",
    ]


def test_a_stage_whose_cacher_changed_looks_for_its_new_files(tmp_path, monkeypatch):
    param_sets = sweep(tmp_path / "markers", 2)
    manager_for(tmp_path).run(experiment, param_sets, n_jobs=1, progress=False)

    def saved_as_json(param_sets, manager):
        first = first_saved_as_json()
        for params in param_sets:
            second(first(Record(manager, params)))

    planned = plans_agree(tmp_path, monkeypatch, param_sets, saved_as_json)
    assert planned.said["r00"] == [("first", "damaged"), ("second", "cached")]


def test_files_removed_by_hand_are_seen_and_the_index_is_written_afresh(tmp_path, monkeypatch):
    param_sets = sweep(tmp_path / "markers", 6)
    manager_for(tmp_path).run(experiment, param_sets, n_jobs=1, progress=False)
    removed = param_sets[2].params_hash()
    for path in cache_dir_of(tmp_path).glob(f"*_{removed}_second*"):
        path.unlink()
    (cache_dir_of(tmp_path) / f"cached_{param_sets[4].params_hash()}_first_a.pkl").unlink()

    planned = plans_agree(tmp_path, monkeypatch, param_sets)
    assert planned.reads > 0  # the index does not account for the removals: entries are read
    assert planned.said["r02"] == [("first", "cached"), ("second", "new")]
    assert planned.said["r04"] == [("first", "damaged"), ("second", "cached")]
    assert planned.said["r00"] == [("first", "cached"), ("second", "cached")]
    again = plans_agree(tmp_path, monkeypatch, param_sets)
    assert again.said == planned.said
    assert again.reads == 1  # only the damaged entry, which the index does not hold


def test_files_a_stage_writes_itself_make_the_plan_read_the_entries_once(tmp_path, monkeypatch):
    param_sets = sweep(tmp_path / "markers", 4)
    manager_for(tmp_path).run(experiment_writing_files, param_sets, n_jobs=2, progress=False)

    planned = plans_agree(tmp_path, monkeypatch, param_sets, experiment_writing_files)
    assert planned.verdicts() == {"cached"}
    assert plans_agree(tmp_path, monkeypatch, param_sets, experiment_writing_files).reads == 0


def test_entries_stored_without_a_run_are_indexed_by_the_plan_then_noted(tmp_path, monkeypatch):
    param_sets = sweep(tmp_path / "markers", 4)
    manager = manager_for(tmp_path)
    experiment(param_sets[:2], manager)  # eagerly: no run started an index
    assert not (cache_dir_of(tmp_path) / INDEX_FILE).exists()
    assert plans_agree(tmp_path, monkeypatch, param_sets).reads > 0

    experiment(param_sets[2:3], manager)  # stored now, and noted in the index the plan wrote
    planned = plans_agree(tmp_path, monkeypatch, param_sets)
    assert planned.reads == 0
    assert planned.said["r02"] == [("first", "cached"), ("second", "cached")]
    assert planned.said["r03"] == [("first", "new"), ("second", "new")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[:-5],  # a writer died mid-line
        lambda text: text.replace("\tcached\t", "\tcached\tx\t", 1),  # a field too many
        lambda text: text + "Z\tnot a line\n",
        lambda text: "",
    ],
    ids=["cut-short", "malformed", "unknown-line", "empty"],
)
def test_a_damaged_index_is_not_trusted(tmp_path, monkeypatch, damage):
    param_sets = sweep(tmp_path / "markers", 4)
    manager_for(tmp_path).run(experiment, param_sets[:3], n_jobs=1, progress=False)
    index = cache_dir_of(tmp_path) / INDEX_FILE
    index.write_text(damage(index.read_text()))

    planned = plans_agree(tmp_path, monkeypatch, param_sets)
    assert planned.reads > 0
    assert planned.said["r00"] == [("first", "cached"), ("second", "cached")]


CONCURRENT_RUN = """
import sys
sys.path.insert(0, {tests!r})
from cache_stages import manager_for, sweep
from test_entry_index import experiment
param_sets = sweep({markers!r}, 24)[{start}::2]
manager_for({root!r}).run(experiment, param_sets, n_jobs=2, progress=False)
"""


def test_runs_storing_at_once_keep_the_index_whole(tmp_path, monkeypatch):
    tests = str(Path(__file__).parent)
    markers = tmp_path / "markers"
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONCURRENT_RUN.format(
                    tests=tests, markers=str(markers), start=start, root=str(tmp_path)
                ),
            ],
            env={**os.environ, "PARAFACTORY_N_JOBS": "2"},
        )
        for start in (0, 1)
    ]
    assert [run.wait(timeout=240) for run in runs] == [0, 0]

    planned = plans_agree(tmp_path, monkeypatch, sweep(markers, 24))
    assert planned.verdicts() == {"cached"}
    assert planned.reads == 0
