"""Provenance and damaged cache entries: what a rerun recomputes, why it says so, and what
it hands back.

A cache entry is valid only for the exact code of its stage and of every stage upstream of
it in the record's chain (and, for an aggregate, in every input record's chain). A damaged
entry is a miss (recomputed, with a warning naming the file), never a crash; a damaged
``Lazy`` output read after the run is a clear :class:`CacheEntryDamagedError`.

* Code edits use a chain ``make_data -> fit -> score`` (and an aggregate) written to
  ``tmp_path`` as a module that the test edits and reloads; loky workers import it from
  ``sys.path``. Dask's session-wide workers would keep the first version of such a module
  imported, so dask runs the overwrite scenarios, whose stages do not change
  (``provenance_stages``).
* Executions are counted with marker files (``cache_stages.mark``), so they count in any
  process; expected values and file names are worked out here, never read from parafactory.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import logging
import os
import re
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

import provenance_stages as ps
from cache_stages import Sweep, sweep
from parafactory import CacheEntryDamagedError, Record

pytestmark = pytest.mark.timeout(120)

PREFIX = "prov"
CHAIN = ["make_data", "fit", "score"]
RUNS = ["eager", "inprocess", "loky"]
BOOKKEEPING = {"params_registry.json", ".registry.lock", ".entries-index", ".staging"}


# -- running a sweep eagerly or on a backend ---------------------------------------------------


class Runner:
    """Runs stages eagerly (``options`` is ``None``) or through ``manager.map``/``manager.run``."""

    def __init__(self, name: str, options: dict | None) -> None:
        self.name = name
        self.options = options

    def map(self, manager, param_sets, stages) -> list[Record]:
        if self.options is None:
            records = [Record(manager, params) for params in param_sets]
            for record in records:
                for call_stage in stages:
                    call_stage(record)
            return records
        return manager.map(param_sets, stages, progress=False, **self.options)

    def run(self, manager, experiment, param_sets) -> list[Record]:
        if self.options is None:
            experiment(param_sets, manager)  # no planner: every stage call runs at once
            return list(manager.records)
        return manager.run(experiment, param_sets, progress=False, **self.options)


@pytest.fixture
def how(request) -> Runner:
    """How a test runs its sweeps: ``eager``, ``inprocess``, ``loky`` or ``dask`` (indirect)."""
    options = {"eager": None, "inprocess": {"n_jobs": 1}, "loky": {"n_jobs": 2}}
    if request.param == "dask":
        return Runner("dask", {"backend": "dask", "client": request.getfixturevalue("dask_client")})
    return Runner(request.param, options[request.param])


@pytest.fixture
def new_manager(make_manager):
    """A fresh manager per run, all on the test's one cache (``prov`` starts file names)."""

    def make(**options):
        return make_manager(PREFIX, console_log=False, **options)

    return make


# -- counting executions and reading the log ---------------------------------------------------


class Executions:
    """The executions noted in a marker directory since the last call of :meth:`new`."""

    def __init__(self, markers: Path) -> None:
        self.markers = Path(markers)
        self.markers.mkdir(parents=True, exist_ok=True)
        self.seen = self._tally()

    def _tally(self) -> collections.Counter:
        return collections.Counter(
            tuple(path.name.split("__")[:2]) for path in self.markers.iterdir()
        )

    def new(self) -> collections.Counter:
        """``Counter({(stage, record label): executions})`` since the last call."""
        now = self._tally()
        new, self.seen = now - self.seen, now
        return new


def each(stages: list[str], labels: list[str]) -> collections.Counter:
    """One execution of every stage on every record."""
    return collections.Counter({(stage, label): 1 for stage in stages for label in labels})


def recompute_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "recompute" in r.getMessage()]


def mentions(message: str, *words: str) -> bool:
    return all(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", message) for word in words)


EAGER_LINE = re.compile(r"\w+ '(\w+)' on record '([^']+)' \(\w+\): recomputed because (.*)")
RUN_LINE = re.compile(r"stage '(\w+)': (.*)")
RUN_GROUP = re.compile(r"\d+ recomputed because (.*?) \((.*?)\)(?:, |$)")


def explained(message: str) -> dict[tuple[str, str], str]:
    """``{(stage, record): reason}`` said in a line: an eager call's own line, or a run's
    line for a stage (``stage 'fit': 2 recomputed because <reason> ('r00', 'r01')``)."""
    eager = EAGER_LINE.fullmatch(message)
    if eager:
        return {(eager[1], eager[2]): eager[3]}
    run = RUN_LINE.fullmatch(message)
    assert run, message
    return {
        (run[1], name): reason
        for reason, names in RUN_GROUP.findall(run[2])
        for name in re.findall(r"'([^']+)'", names)
    }


def assert_explained(caplog, expected: dict[tuple[str, str], str]) -> None:
    """Exactly the stage runs in ``expected`` were said at INFO to be recomputed, each
    with the reason's text: once each, in its own line when called eagerly, in its stage's
    line at the end of a run."""
    said: dict[tuple[str, str], str] = {}
    for record in recompute_records(caplog):
        assert record.levelno == logging.INFO, record.getMessage()
        lines = explained(record.getMessage())
        assert not lines.keys() & said.keys(), record.getMessage()  # said once
        said.update(lines)
    assert said.keys() == expected.keys(), said
    for key, reason in expected.items():
        assert reason in said[key], (key, said[key])


# -- hashes, file names, damage ----------------------------------------------------------------


def curifactory_hash(params: Sweep) -> str:
    """curifactory's parameter hash of a ``Sweep``, computed here independently."""
    fields = {"value": params.value, "seconds": params.seconds, "marker_dir": params.marker_dir}
    total = sum(int(hashlib.md5(f"{k}{v!r}".encode()).hexdigest(), 16) for k, v in fields.items())
    return f"{total:x}"


def cache_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file() and p.name not in BOOKKEEPING}


def damage(path: Path, kind: str) -> None:
    """Damage a cache file after its run, as a failing disk or a stray write would:
    ``truncated`` to half, or ``garbage`` of the same length (every byte flipped).
    The write is repeated until the file's time moves on, as it would for any later write."""
    before = path.stat().st_mtime_ns
    original = path.read_bytes()
    damaged = (
        original[: len(original) // 2]
        if kind == "truncated"
        else bytes(byte ^ 0xFF for byte in original)
    )
    assert damaged != original
    path.write_bytes(damaged)
    while path.stat().st_mtime_ns == before:
        time.sleep(0.01)
        path.write_bytes(damaged)


# -- an editable chain: make_data -> fit -> score, and an aggregate ----------------------------

CHAIN_SOURCE = '''\
"""A cached chain written by test_provenance, which edits and reloads it."""
{padding}
from cache_stages import mark, mark_in
from parafactory import PickleCacher, aggregate, stage


@stage(outputs=["data"], cachers=[PickleCacher()])
def make_data(record):
    # {comment}
    mark(record, "make_data")
    return [record.params.value + {offset}, 2 * record.params.value]


@stage(inputs=["data"], outputs=["model"], cachers=[PickleCacher()])
def fit(record, data):
    # {comment}
    mark(record, "fit")
    return sum(data) * {scale}


@stage(inputs=["model"], outputs=["score"], cachers=[PickleCacher()])
def score(record, model):
    # {comment}
    mark(record, "score")
    return model + {bonus}


@aggregate(inputs=["model"], outputs=["total"], cachers=[PickleCacher()])
def total_model(record, records, model):
    # {comment}
    members = list(records)
    label = "+".join(sorted(member.name for member in members))
    mark_in(members[0].params.marker_dir, "total_model", label)
    return sum(model.values())
'''


class ChainModule:
    """The chain's module in ``directory`` (on ``sys.path``); :meth:`edit` rewrites it and
    reloads it, as a user editing a file between two runs in one session."""

    def __init__(self, directory: Path, monkeypatch) -> None:
        directory.mkdir()
        self.markers = directory.parent / "markers"
        self.name = f"edited_chain_{uuid.uuid4().hex[:8]}"
        self.path = directory / f"{self.name}.py"
        self.code = {"offset": 1, "scale": 2, "bonus": 100, "comment": "first", "padding": ""}
        monkeypatch.syspath_prepend(str(directory))
        monkeypatch.setattr(sys, "dont_write_bytecode", True)  # every reload compiles the source
        self.path.write_text(CHAIN_SOURCE.format(**self.code), encoding="utf-8")
        self._mtime = self.path.stat().st_mtime
        self.module = importlib.import_module(self.name)

    def edit(self, **changes) -> None:
        self.code.update(changes)
        self.path.write_text(CHAIN_SOURCE.format(**self.code), encoding="utf-8")
        # Later by whole seconds: a .pyc a worker wrote keeps its source's time in seconds.
        self._mtime += 10
        os.utime(self.path, (self._mtime, self._mtime))
        shutil.rmtree(self.path.parent / "__pycache__", ignore_errors=True)
        importlib.invalidate_caches()
        self.module = importlib.reload(self.module)

    def stages(self) -> list:
        return [self.module.make_data, self.module.fit, self.module.score]

    def expected(self, value: int) -> dict:
        """The chain's outputs for ``value`` under the code as last written."""
        offset, scale, bonus = self.code["offset"], self.code["scale"], self.code["bonus"]
        model = (3 * value + offset) * scale
        return {"data": [value + offset, 2 * value], "model": model, "score": model + bonus}


@pytest.fixture
def chain(tmp_path, monkeypatch):
    module = ChainModule(tmp_path / "code", monkeypatch)
    yield module
    sys.modules.pop(module.name, None)


def check_chain_values(records: list[Record], chain: ChainModule) -> None:
    for record in records:
        expected = chain.expected(record.params.value)
        assert {key: record.state[key] for key in expected} == expected, record.name


def grouped_experiment(module):
    """The full chain on the ``r`` records, make_data -> fit only on the ``s`` records, then
    ``total_model`` over each group (both groups have ``model``)."""

    def experiment(param_sets, manager):
        full = [p for p in param_sets if p.name.startswith("r")]
        short = [p for p in param_sets if p.name.startswith("s")]
        full = [module.score(module.fit(module.make_data(Record(manager, p)))) for p in full]
        short = [module.fit(module.make_data(Record(manager, p))) for p in short]
        module.total_model(Record(manager, None), full)
        module.total_model(Record(manager, None), short)

    return experiment


def grouped_params(markers: Path) -> list[Sweep]:
    return sweep(markers, 2) + [
        Sweep(name=f"s{i:02d}", value=10 + i, marker_dir=str(markers)) for i in range(2)
    ]


# -- 1. code edits in a chain ------------------------------------------------------------------


@pytest.mark.parametrize("how", RUNS, indirect=True)
def test_editing_the_first_stage_recomputes_it_and_everything_downstream(
    chain, how, new_manager, caplog
):
    caplog.set_level(logging.INFO)
    runs = Executions(chain.markers)
    check_chain_values(how.map(new_manager(), sweep(chain.markers, 2), chain.stages()), chain)
    assert runs.new() == each(CHAIN, ["r00", "r01"])

    chain.edit(offset=5)
    caplog.clear()
    records = how.map(new_manager(), sweep(chain.markers, 2), chain.stages())

    assert records[1].state["score"] == (3 + 5) * 2 + 100  # the new code's value
    check_chain_values(records, chain)
    assert runs.new() == each(CHAIN, ["r00", "r01"])
    reasons = {"make_data": "its code changed", "fit": "an upstream stage changed"}
    reasons["score"] = "an upstream stage changed"
    assert_explained(caplog, {(s, n): reasons[s] for s in CHAIN for n in ["r00", "r01"]})

    caplog.clear()
    check_chain_values(how.map(new_manager(), sweep(chain.markers, 2), chain.stages()), chain)
    assert runs.new() == collections.Counter()  # stored under the new code: all cached now
    assert_explained(caplog, {})


@pytest.mark.parametrize("how", RUNS, indirect=True)
def test_editing_the_middle_stage_recomputes_it_and_what_follows_but_not_what_precedes(
    chain, how, new_manager, caplog
):
    caplog.set_level(logging.INFO)
    runs = Executions(chain.markers)
    how.map(new_manager(), sweep(chain.markers, 2), chain.stages())
    runs.new()

    chain.edit(scale=3)
    caplog.clear()
    records = how.map(new_manager(), sweep(chain.markers, 2), chain.stages())

    assert records[1].state["model"] == (3 + 1) * 3
    check_chain_values(records, chain)
    assert runs.new() == each(["fit", "score"], ["r00", "r01"])
    reasons = {"fit": "its code changed", "score": "an upstream stage changed"}
    assert_explained(caplog, {(s, n): reasons[s] for s in reasons for n in ["r00", "r01"]})


@pytest.mark.parametrize("how", RUNS, indirect=True)
def test_a_comment_only_edit_recomputes_nothing(chain, how, new_manager, caplog):
    caplog.set_level(logging.INFO)
    runs = Executions(chain.markers)
    how.map(new_manager(), sweep(chain.markers, 2), chain.stages())
    runs.new()
    line_before = chain.module.fit.__wrapped__.__code__.co_firstlineno

    chain.edit(comment="reworded, and longer than before", padding="\n\n# pushed down\n\n")
    caplog.clear()
    records = how.map(new_manager(), sweep(chain.markers, 2), chain.stages())

    assert chain.module.fit.__wrapped__.__code__.co_firstlineno > line_before  # really edited
    assert runs.new() == collections.Counter()
    assert_explained(caplog, {})
    check_chain_values(records, chain)


def test_cache_files_keep_curifactorys_names_across_a_code_edit(chain, new_manager):
    params = sweep(chain.markers, 2)
    manager = new_manager()
    manager.map(params, chain.stages(), n_jobs=1, progress=False)
    expected = set()
    for p in params:
        for stage_name, output in [("make_data", "data"), ("fit", "model"), ("score", "score")]:
            expected.add(f"{PREFIX}_{curifactory_hash(p)}_{stage_name}_{output}.pkl")
            expected.add(f"{PREFIX}_{curifactory_hash(p)}_{stage_name}.meta.json")
    assert cache_files(manager.cache_dir) == expected
    metadata = {n: (manager.cache_dir / n).read_bytes() for n in expected if n.endswith(".json")}

    chain.edit(offset=9)
    rerun = new_manager().map(sweep(chain.markers, 2), chain.stages(), n_jobs=1, progress=False)
    check_chain_values(rerun, chain)

    assert cache_files(manager.cache_dir) == expected  # the same names: no code in them
    rewritten = {n for n, old in metadata.items() if (manager.cache_dir / n).read_bytes() != old}
    assert rewritten == set(metadata)  # each entry's metadata now holds the new provenance


# -- 2. aggregates over edited and unchanged chains --------------------------------------------


@pytest.mark.parametrize("how", RUNS, indirect=True)
def test_an_aggregate_recomputes_only_when_a_chain_it_reads_was_edited(
    chain, how, new_manager, caplog
):
    caplog.set_level(logging.INFO)
    runs = Executions(chain.markers)

    def run_and_check() -> list[Record]:
        records = how.run(
            new_manager(), grouped_experiment(chain.module), grouped_params(runs.markers)
        )
        check_chain_values(records[:2], chain)
        assert records[4].state["total"] == sum(chain.expected(v)["model"] for v in (0, 1))
        assert records[5].state["total"] == sum(chain.expected(v)["model"] for v in (10, 11))
        return records

    run_and_check()
    aggregates = collections.Counter({("total_model", "r00+r01"): 1, ("total_model", "s00+s01"): 1})
    all_stages = each(CHAIN, ["r00", "r01"]) + each(["make_data", "fit"], ["s00", "s01"])
    assert runs.new() == all_stages + aggregates
    run_and_check()
    assert runs.new() == collections.Counter()  # unchanged records: aggregates load from cache

    chain.edit(bonus=200)  # only the r records run score
    caplog.clear()
    records = run_and_check()
    full_total = collections.Counter({("total_model", "r00+r01"): 1})
    assert runs.new() == each(["score"], ["r00", "r01"]) + full_total
    assert_explained(
        caplog,
        {
            ("score", "r00"): "its code changed",
            ("score", "r01"): "its code changed",
            ("total_model", records[4].name): "an upstream stage changed",
        },
    )

    chain.edit(offset=7)
    run_and_check()
    assert runs.new() == all_stages + aggregates


# -- 3. overwrite ------------------------------------------------------------------------------

ALL_BACKENDS = ["eager", "inprocess", "loky", "dask"]
NAMES = ["r00", "r01", "r02"]


def overwrite_experiment(param_sets, manager):
    """The chain on every record, then ``best`` over all of them and over all but r01."""
    records = [ps.score(ps.fit(ps.make_data(Record(manager, p)))) for p in param_sets]
    ps.best(Record(manager, None), records)
    ps.best(Record(manager, None), [r for r in records if r.name != "r01"])


def check_overwrite_values(records: list[Record]) -> None:
    for record in records[:3]:
        value = record.params.value
        assert record.state["data"] == [value, value + 1]
        assert record.state["model"] == {"slope": 2 * value + 1}
        assert record.state["score"] == 10 * (2 * value + 1)
    assert records[3].state["best"] == max(10 * (2 * v + 1) for v in (0, 1, 2))
    assert records[4].state["best"] == max(10 * (2 * v + 1) for v in (0, 2))


BEST_OVER_BOTH = collections.Counter({("best", "r00+r01+r02"): 1, ("best", "r00+r02"): 1})


def first_run(how: Runner, new_manager, markers: Path) -> Executions:
    runs = Executions(markers)
    check_overwrite_values(how.run(new_manager(), overwrite_experiment, sweep(markers, 3)))
    assert runs.new() == each(CHAIN, NAMES) + BEST_OVER_BOTH
    return runs


def assert_normal_rerun_computes_nothing(how, new_manager, runs, caplog) -> None:
    caplog.clear()
    check_overwrite_values(how.run(new_manager(), overwrite_experiment, sweep(runs.markers, 3)))
    assert runs.new() == collections.Counter()
    assert_explained(caplog, {})


@pytest.mark.parametrize("how", ALL_BACKENDS, indirect=True)
def test_overwrite_in_one_parameter_set_recomputes_that_record_and_what_reads_it(
    how, new_manager, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    runs = first_run(how, new_manager, tmp_path / "markers")

    params = sweep(runs.markers, 3)
    params[1].overwrite = True
    caplog.clear()
    records = how.run(new_manager(), overwrite_experiment, params)

    check_overwrite_values(records)
    best_over_r01 = collections.Counter({("best", "r00+r01+r02"): 1})
    assert runs.new() == each(CHAIN, ["r01"]) + best_over_r01
    expected = {(stage_name, "r01"): "overwrite=True" for stage_name in CHAIN}
    expected["best", records[3].name] = "an upstream stage changed"
    assert_explained(caplog, expected)
    assert_normal_rerun_computes_nothing(how, new_manager, runs, caplog)


@pytest.mark.parametrize("how", ALL_BACKENDS, indirect=True)
def test_overwrite_stages_recomputes_that_stage_and_what_reads_it_on_every_record(
    how, new_manager, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    runs = first_run(how, new_manager, tmp_path / "markers")

    caplog.clear()
    manager = new_manager(overwrite_stages=["fit"])
    records = how.run(manager, overwrite_experiment, sweep(runs.markers, 3))

    check_overwrite_values(records)
    assert runs.new() == each(["fit", "score"], NAMES) + BEST_OVER_BOTH
    expected = {("fit", name): "overwrites" for name in NAMES}
    expected |= {("score", name): "an upstream stage changed" for name in NAMES}
    expected |= {("best", r.name): "an upstream stage changed" for r in records[3:]}
    assert_explained(caplog, expected)
    assert_normal_rerun_computes_nothing(how, new_manager, runs, caplog)


@pytest.mark.parametrize("how", ALL_BACKENDS, indirect=True)
def test_an_interrupted_overwrite_still_recomputes_downstream_on_the_next_run(
    how, new_manager, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    runs = first_run(how, new_manager, tmp_path / "markers")
    overwriting = new_manager(overwrite_stages=["fit"])
    how.map(overwriting, sweep(runs.markers, 3), [ps.make_data, ps.fit])  # score never runs
    assert runs.new() == each(["fit"], NAMES)

    caplog.clear()
    records = how.run(new_manager(), overwrite_experiment, sweep(runs.markers, 3))

    check_overwrite_values(records)
    assert runs.new() == each(["score"], NAMES) + BEST_OVER_BOTH
    expected = {("score", name): "an upstream stage changed" for name in NAMES}
    expected |= {("best", r.name): "an upstream stage changed" for r in records[3:]}
    assert_explained(caplog, expected)


# -- 4. damaged cache entries ------------------------------------------------------------------


def check_chain_of_provenance_stages(records: list[Record]) -> None:
    for record in records:
        value = record.params.value
        assert record.state["data"] == [value, value + 1]
        assert record.state["model"] == {"slope": 2 * value + 1}
        assert record.state["score"] == 10 * (2 * value + 1)


@pytest.mark.parametrize(
    ("target", "kind"),
    [("output", "truncated"), ("output", "garbage"), ("metadata", "garbage")],
    ids=["truncated-output", "same-length-garbage-output", "garbage-metadata"],
)
@pytest.mark.parametrize("how", RUNS, indirect=True)
def test_a_damaged_entry_is_recomputed_with_a_warning_naming_its_file(
    how, new_manager, tmp_path, caplog, target, kind
):
    caplog.set_level(logging.INFO)
    stages = [ps.make_data, ps.fit, ps.score]
    runs = Executions(tmp_path / "markers")
    manager = new_manager()
    records = how.map(manager, sweep(runs.markers, 2), stages)
    runs.new()
    entry = f"{PREFIX}_{curifactory_hash(records[1].params)}_fit"
    name = f"{entry}_model.pkl" if target == "output" else f"{entry}.meta.json"
    path = manager.cache_dir / name
    damage(path, kind)

    caplog.clear()
    records = how.map(new_manager(), sweep(runs.markers, 2), stages)

    assert runs.new() == collections.Counter({("fit", "r01"): 1})
    check_chain_of_provenance_stages(records)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    naming = [r.getMessage() for r in warnings if path.name in r.getMessage()]
    assert naming, [r.getMessage() for r in caplog.records]
    assert mentions(naming[0], "fit", "r01")

    check_chain_of_provenance_stages(how.map(new_manager(), sweep(runs.markers, 2), stages))
    assert runs.new() == collections.Counter()  # the entry was written whole again


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
@pytest.mark.parametrize("how", RUNS, indirect=True)
def test_a_lazy_output_damaged_after_the_run_is_a_clear_error_then_recomputes(
    how, new_manager, tmp_path, kind
):
    runs = Executions(tmp_path / "markers")
    manager = new_manager()
    records = how.map(manager, sweep(runs.markers, 2), [ps.train_lazy])
    assert runs.new() == each(["train_lazy"], ["r00", "r01"])
    file_name = f"{PREFIX}_{curifactory_hash(records[1].params)}_train_lazy_weights.pkl"
    damage(manager.cache_dir / file_name, kind)

    with pytest.raises(CacheEntryDamagedError) as caught:
        records[1].state["weights"]

    assert file_name in str(caught.value)
    assert "train_lazy" in str(caught.value)
    assert records[0].state["weights"] == [0] * 4  # the other record's file is whole
    rerun = how.map(new_manager(), sweep(runs.markers, 2), [ps.train_lazy])
    assert runs.new() == collections.Counter({("train_lazy", "r01"): 1})
    assert [r.state["weights"] for r in rerun] == [[0] * 4, [1] * 4]
