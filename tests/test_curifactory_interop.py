"""Caches carry over between curifactory 0.20 and parafactory, both ways.

curifactory runs in a subprocess, with the Python named by ``PARAFACTORY_CURIFACTORY_PYTHON``
(CI makes one; locally e.g. ``/work/cfvenv/bin/python``); the tests are skipped, saying
why, without it. It runs curifactory's own example stages (``tests/curifactory_examples``,
copied with their imports put back to ``curifactory``) in a project directory; parafactory
runs the same stages, imported from ``curifactory_examples``, on the same directory.

(a) parafactory adopts what curifactory cached: nothing recomputes, the log says the
outputs were adopted from a curifactory cache with their code unchecked, and a second
parafactory run uses them as its own entries. (b) curifactory reuses what parafactory
cached: it executes nothing and loads the same values.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

import parafactory as cf
from curifactory_examples.experiments import simple_cache
from curifactory_examples.stages.cache_stages import (
    filerefcacher_stage,
    filerefcacher_stage_multifile,
)

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).parent / "curifactory_examples"
BOOKKEEPING = {"params_registry.json", ".registry.lock", ".entries-index", ".staging"}
ADOPTED = "adopted from a curifactory cache"

_PARALLEL = ["inprocess", "loky", "dask"]
EAGER_OR_RUN = pytest.mark.parametrize(
    ("mode", "backend"),
    [("eager", "inprocess")] + [("run", b) for b in _PARALLEL],
    indirect=["backend"],
)

CURIFACTORY_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    sys.path.insert(0, sys.argv[1])
    import curifactory as cf
    from curifactory_examples.experiments import simple_cache
    from curifactory_examples.stages.cache_stages import (
        filerefcacher_stage, filerefcacher_stage_multifile,
    )

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    manager = cf.ArtifactManager("test")
    collect = Collect()  # after the manager: curifactory resets the root logger's handlers
    logging.getLogger().addHandler(collect)
    logging.getLogger().setLevel(logging.INFO)
    if sys.argv[2] == "simple_cache":
        simple_cache.run(simple_cache.get_params(), manager)
    else:
        filerefcacher_stage_multifile(cf.Record(manager, cf.ExperimentParameters(name="test")))
        filerefcacher_stage(cf.Record(manager, cf.ExperimentParameters(name="test")))
    print(json.dumps({
        "records": [[r.params.name, r.get_hash(), repr(dict(r.state))] for r in manager.records],
        "executed": [m for m in collect.messages if "executing..." in m],
    }))
    """
)


@pytest.fixture(scope="module")
def curifactory_python() -> str:
    python = os.environ.get("PARAFACTORY_CURIFACTORY_PYTHON")
    if not python:
        pytest.skip(
            "PARAFACTORY_CURIFACTORY_PYTHON is not set: set it to a Python with curifactory 0.20 "
            "installed (e.g. /work/cfvenv/bin/python) to check caches carry over"
        )
    try:
        completed = subprocess.run(
            [python, "-c", "import curifactory; print(curifactory.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as error:
        pytest.skip(f"PARAFACTORY_CURIFACTORY_PYTHON={python} cannot be run: {error}")
    if completed.returncode != 0:
        pytest.skip(f"PARAFACTORY_CURIFACTORY_PYTHON={python} does not import curifactory")
    version = completed.stdout.strip()
    if not version.startswith("0.20."):
        pytest.skip(f"PARAFACTORY_CURIFACTORY_PYTHON={python} has curifactory {version}, not 0.20")
    return python


@pytest.fixture(scope="module")
def curifactory_examples(tmp_path_factory) -> Path:
    """A copy of ``tests/curifactory_examples`` importing curifactory again (its parent dir)."""
    parent = tmp_path_factory.mktemp("curifactory_side")
    target = parent / "curifactory_examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", "recorded"))
    for path in target.rglob("*.py"):
        path.write_text(path.read_text().replace("parafactory", "curifactory"))
    return parent


@pytest.fixture
def curifactory(curifactory_python, curifactory_examples, tmp_path):
    """``curifactory(project, scenario)`` runs the scenario ("simple_cache" or "fileref")
    with curifactory in ``project``; returns its records (name, hash, state) and the
    "Stage ... executing..." lines it logged."""
    script = tmp_path / "curifactory_side.py"
    script.write_text(CURIFACTORY_SCRIPT)

    def run(project: Path, scenario: str) -> dict:
        completed = subprocess.run(
            [curifactory_python, str(script), str(curifactory_examples), scenario],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout.strip().splitlines()[-1])

    return run


def artifacts(cache_dir: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each artifact curifactory or parafactory wrote: a file written again
    (a recomputed output) changes, a loaded one does not."""
    return {
        path.relative_to(cache_dir).as_posix(): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in cache_dir.rglob("*")
        if path.is_file()
        and path.name not in BOOKKEEPING
        and not path.name.endswith((".meta.json", "_metadata.json"))
    }


def infos(records) -> list[list[str]]:
    return [[r.params.name, r.get_hash(), repr(dict(r.state))] for r in records]


def run_simple_cache(mode, backend, project: Path) -> list[cf.Record]:
    with cf.ArtifactManager("test", root=project, console_log=False) as manager:
        if mode == "eager":
            simple_cache.run(simple_cache.get_params(), manager)
            return manager.records
        return manager.run(simple_cache.run, simple_cache.get_params(), progress=False, **backend)


def run_fileref() -> list[cf.Record]:
    """The fileref stages, eagerly, in the working directory (their paths are relative)."""
    with cf.ArtifactManager("test", console_log=False) as manager:
        return [
            filerefcacher_stage_multifile(cf.Record(manager, cf.ExperimentParameters(name="test"))),
            filerefcacher_stage(cf.Record(manager, cf.ExperimentParameters(name="test"))),
        ]


def adoptions(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if ADOPTED in r.getMessage()]


SIMPLE_CACHE_ENTRIES = [  # (stage, hash) of its four outputs (recorded/simple_cache_experiment)
    ("store_an_output", "173d8788eec770552d333f4ec6a03d519"),
    ("store_an_output", "20473d2ab3dc19aec4a8afe06b4a9bf39"),
    ("agg_store_an_output", "bfc1795255f274aabdce33e5fc02a73d"),
    ("agg_store_an_output", "f36e2074a6e6b9941d2d73c78f5b83b0"),
]


def assert_adopted(messages: list[str], entries: list[tuple[str, str]]) -> None:
    for stage_name, hash_ in entries:
        said = [m for m in messages if repr(stage_name) in m and hash_ in m]
        assert len(said) == 1, (stage_name, hash_, messages)
        assert "unchecked" in said[0], said[0]


@EAGER_OR_RUN
def test_parafactory_adopts_outputs_curifactory_cached(
    mode, backend, curifactory, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    project = tmp_path / "project"
    project.mkdir()
    written = curifactory(project, "simple_cache")
    assert len(written["executed"]) == 4
    cache = project / "data" / "cache"
    before = artifacts(cache)
    assert len(before) == 4

    records = run_simple_cache(mode, backend, project)
    assert infos(records) == written["records"]
    assert artifacts(cache) == before  # loaded, none computed again
    assert_adopted(adoptions(caplog), SIMPLE_CACHE_ENTRIES)

    caplog.clear()
    records = run_simple_cache(mode, backend, project)
    assert infos(records) == written["records"]
    assert artifacts(cache) == before
    assert adoptions(caplog) == []  # parafactory's own entries now


def test_parafactory_adopts_file_references_curifactory_cached(
    curifactory, tmp_path, caplog, monkeypatch
):
    caplog.set_level(logging.INFO)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    written = curifactory(project, "fileref")
    assert len(written["executed"]) == 2
    stage_ran = project / "data" / "cache" / "stage_ran"
    stage_ran.unlink()

    records = run_fileref()
    assert not stage_ran.exists()  # neither stage ran
    assert infos(records) == written["records"]
    assert_adopted(
        adoptions(caplog), [("filerefcacher_stage_multifile", "0"), ("filerefcacher_stage", "0")]
    )

    caplog.clear()
    records = run_fileref()
    assert not stage_ran.exists()
    assert infos(records) == written["records"]
    assert adoptions(caplog) == []


@EAGER_OR_RUN
def test_curifactory_reuses_outputs_parafactory_cached(mode, backend, curifactory, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    records = run_simple_cache(mode, backend, project)
    cache = project / "data" / "cache"
    before = artifacts(cache)
    assert len(before) == 4

    read = curifactory(project, "simple_cache")
    assert read["executed"] == []
    assert read["records"] == infos(records)
    assert artifacts(cache) == before


def test_curifactory_reuses_file_references_parafactory_cached(curifactory, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    records = run_fileref()
    stage_ran = project / "data" / "cache" / "stage_ran"
    stage_ran.unlink()

    read = curifactory(project, "fileref")
    assert read["executed"] == []
    assert not stage_ran.exists()
    assert read["records"] == infos(records)
