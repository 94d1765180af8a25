"""curifactory's own test examples run on parafactory as they ran on curifactory 0.20.5.

``tests/curifactory_examples`` holds curifactory's example stages, parameter files and
``simple_cache`` experiment (imports changed only); ``recorded/*.json`` holds what
curifactory 0.20.5 gave for scenarios over them (states, hashes, cache file names). Each
scenario runs here eagerly and in ``map``/``run`` on every backend, and must give the same.

curifactory also writes a ``{...}_metadata.json`` per output and parafactory a
``.meta.json`` per entry, and their ``params_registry.json`` lives in different places: only
the artifact files are compared. A parallel run uses an absolute cache directory (under
``tmp_path``), so the paths curifactory recorded relative to ``data/cache`` are compared
with that prefix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import parafactory as cf
from compat_stages import AB, EAGER_OR_RUN, EVERY_WAY
from curifactory_examples.experiments import simple_cache
from curifactory_examples.params import params1, params2
from curifactory_examples.params.subparams import thing
from curifactory_examples.stages.basic_stages import get_data, sum_data
from curifactory_examples.stages.cache_stages import (
    agg_store_an_output,
    filerefcacher_stage,
    filerefcacher_stage_multifile,
    store_an_output,
)

pytestmark = pytest.mark.timeout(120)

RECORDED = Path(__file__).parent / "curifactory_examples" / "recorded"
BOOKKEEPING = {"params_registry.json", ".registry.lock", ".entries-index", ".staging"}


def recorded(scenario: str) -> dict:
    return json.loads((RECORDED / f"{scenario}.json").read_text())


def record_info(record: cf.Record) -> dict:
    """What the recording script kept of a record (``record_info`` in 11_test_examples.py)."""
    return {
        "name": record.params.name if record.params is not None else None,
        "hash": record.get_hash(),
        "is_aggregate": record.is_aggregate,
        "stages": list(record.stages),
        "state": repr(dict(record.state)),
        "output": repr(record.output),
    }


def expected_records(infos: list[dict], cache_path: str = "data/cache") -> list[dict]:
    """The recorded records, with curifactory's relative cache dir replaced by ``cache_path``."""
    text = json.dumps(infos).replace("data/cache/", f"{cache_path}/")
    return json.loads(text)


def artifact_files(cache_dir: str | Path) -> list[str]:
    """Everything under the cache dir, as curifactory's ``cache_files()`` lists it, but
    parafactory's own bookkeeping (``.meta.json`` per entry, the registry and its lock)."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    found = []
    for path in cache_dir.rglob("*"):
        if path.name in BOOKKEEPING or path.name.endswith(".meta.json"):
            continue
        relative = path.relative_to(cache_dir).as_posix()
        found.append(relative + ("/" if path.is_dir() else ""))
    return sorted(found)


def curifactory_artifacts(files: list[str]) -> list[str]:
    """curifactory's recorded cache files without its per-output metadata files."""
    return [name for name in files if not name.endswith("_metadata.json")]


def stamps(cache_dir: str | Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file in the cache dir: a recomputed entry is written anew."""
    return {
        path.name: (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in Path(cache_dir).rglob("*")
        if path.is_file() and path.name not in BOOKKEEPING
    }


def perform(mode, backend, manager, experiment, param_sets, stages=None):
    """Run ``experiment`` eagerly or with ``manager.run``, or ``stages`` with ``manager.map``."""
    if mode == "eager":
        first = len(manager.records)
        experiment(param_sets, manager)
        return manager.records[first:]
    if mode == "map":
        return manager.map(param_sets, stages, progress=False, **backend)
    return manager.run(experiment, param_sets, progress=False, **backend)


def basic_experiment(param_sets, manager):
    """experiments/basic.py's procedure: get_data then sum_data on each parameter set."""
    for params in param_sets:
        sum_data(get_data(cf.Record(manager, params)))


@EVERY_WAY
def test_basic_stages_over_params1_and_params2(mode, backend, make_manager):
    expected = recorded("basic_stages_eager")
    assert recorded("basic_experiment_run")["records"] == expected["records"]
    manager = make_manager("test")
    param_sets = params1.get_params() + params2.get_params()
    records = perform(mode, backend, manager, basic_experiment, param_sets, [get_data, sum_data])
    assert [record_info(r) for r in records] == expected["records"]
    assert artifact_files(manager.cache_dir) == expected["cache_files"] == []


def data_only(param_sets, manager):
    for params in param_sets:
        get_data(cf.Record(manager, params))


@EVERY_WAY
def test_get_data_over_subparams(mode, backend, make_manager):
    expected = recorded("subexp_example_run")
    manager = make_manager("test")
    records = perform(mode, backend, manager, data_only, thing.get_params(), [get_data])
    assert [record_info(r) for r in records] == expected["records"]
    assert repr(records[-1].output) == expected["returned_output"]
    assert artifact_files(manager.cache_dir) == expected["cache_files"] == []


def store_and_agg(param_sets, manager):
    """The calls of the ``cache_stages_store_and_agg`` recording."""
    r1 = store_an_output(cf.Record(manager, AB(name="p1")))
    r2 = store_an_output(cf.Record(manager, AB(name="p2", a=2, b=5)))
    agg_store_an_output(cf.Record(manager, AB(name="agg", a=1, b=1)), [r1, r2])
    agg_store_an_output(cf.Record(manager, AB(name="agg_all", a=3, b=3)))


@EAGER_OR_RUN
def test_store_an_output_and_its_aggregate(mode, backend, make_manager):
    expected = recorded("cache_stages_store_and_agg")
    manager = make_manager("test")
    records = perform(mode, backend, manager, store_and_agg, None)
    assert [record_info(r) for r in records] == expected["records"]
    inputs = {r.params.name: [x.params.name for x in r.input_records] for r in records[2:]}
    assert inputs == expected["aggregate_input_records"]
    assert artifact_files(manager.cache_dir) == curifactory_artifacts(expected["cache_files"])


@EAGER_OR_RUN
def test_simple_cache_experiment_and_its_reruns(mode, backend, make_manager):
    expected = recorded("simple_cache_experiment")
    manager = make_manager("test")
    records = perform(mode, backend, manager, simple_cache.run, simple_cache.get_params())
    assert [record_info(r) for r in records] == expected["records"]
    inputs = {
        r.params.name: [x.params.name for x in r.input_records] for r in records if r.is_aggregate
    }
    assert inputs == expected["aggregate_input_records"]
    files = curifactory_artifacts(expected["cache_files"])
    assert artifact_files(manager.cache_dir) == files
    before = stamps(manager.cache_dir)

    rerun = make_manager("test")
    records = perform(mode, backend, rerun, simple_cache.run, simple_cache.get_params())
    assert [record_info(r) for r in records] == expected["records"]
    assert stamps(manager.cache_dir) == before  # nothing computed, nothing written
    assert expected["rerun_executed_log_lines (empty = all cache hits)"] == []

    dry = make_manager("test", dry=True)  # parafactory's dry run reads no cache: same states
    records = perform(mode, backend, dry, simple_cache.run, simple_cache.get_params())
    assert [record_info(r) for r in records] == expected["dry_rerun_records"]
    assert artifact_files(manager.cache_dir) == curifactory_artifacts(
        expected["cache_files_after_reruns"]
    )


def fileref_calls(mode, backend, manager):
    """The calls of the ``cache_stages_fileref`` recording: each stage on a record of
    ``ExperimentParameters(name="test")``."""
    if mode == "eager":
        first = filerefcacher_stage_multifile(
            cf.Record(manager, cf.ExperimentParameters(name="test"))
        )
        second = filerefcacher_stage(cf.Record(manager, cf.ExperimentParameters(name="test")))
        return [first, second]
    if mode == "map":
        [first] = manager.map(
            [cf.ExperimentParameters(name="test")],
            [filerefcacher_stage_multifile],
            progress=False,
            **backend,
        )
        [second] = manager.map(
            [cf.ExperimentParameters(name="test")], [filerefcacher_stage], progress=False, **backend
        )
        return [first, second]

    # One parameter set for both records: parafactory refuses a plan in which two distinct
    # parameter sets share a name (a deliberate difference); these two are equal anyway.
    def experiment(param_sets, manager):
        [params] = param_sets
        filerefcacher_stage_multifile(cf.Record(manager, params))
        filerefcacher_stage(cf.Record(manager, params))

    return manager.run(
        experiment, [cf.ExperimentParameters(name="test")], progress=False, **backend
    )


def check_fileref(mode, backend, make_manager, cache_path):
    expected = recorded("cache_stages_fileref")
    manager = make_manager()
    records = fileref_calls(mode, backend, manager)
    assert [record_info(r) for r in records] == expected_records(expected["records"], cache_path)
    assert artifact_files(cache_path) == curifactory_artifacts(expected["cache_files"])
    os.remove(os.path.join(manager.cache_path, "stage_ran"))

    records = fileref_calls(mode, backend, make_manager())
    stage_ran = os.path.exists(os.path.join(manager.cache_path, "stage_ran"))
    assert stage_ran is expected["rerun_stage_ran_exists (False = short-circuited)"] is False
    assert [record_info(r) for r in records] == expected_records(
        expected["rerun_records"], cache_path
    )
    assert artifact_files(cache_path) == curifactory_artifacts(expected["cache_files_after_rerun"])


@EVERY_WAY
def test_file_reference_cacher_stages(mode, backend, make_manager, tmp_path):
    cache_path = str(tmp_path / "data" / "cache")  # make_manager's root is tmp_path
    check_fileref(mode, backend, lambda: make_manager("test"), cache_path)


@pytest.mark.parametrize("mode", ["eager", "map"])
def test_file_reference_cacher_stages_with_curifactorys_relative_paths(mode, tmp_path, monkeypatch):
    """As curifactory ran them: ``ArtifactManager("test")`` in the working directory, so the
    paths in the state are the recorded relative ones, to the letter."""
    monkeypatch.chdir(tmp_path)
    made = []

    def make_manager():
        made.append(cf.ArtifactManager("test", console_log=False))
        return made[-1]

    try:
        check_fileref(mode, {"n_jobs": 1}, make_manager, "data/cache")
    finally:
        for manager in made:
            manager.close()
