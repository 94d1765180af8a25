"""The artifact cache: cachers, file names, skipping, atomic writes, stale code, the registry.

Stages that must run in worker processes live in ``cache_stages`` (importable by
them); executions and loads are counted through files, so they count in any process.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import parafactory._model.cache
from cache_stages import (
    PAYLOAD,
    RACE_BYTES,
    RACE_ENTRY,
    Sweep,
    blob,
    cache_dir_of,
    chain_experiment,
    executions,
    first,
    loads,
    manager_for,
    race_writer,
    second,
    sweep,
    third,
    write_blob_eagerly,
    x_sum_experiment,
)
from parafactory import (
    Cacher,
    JoblibCacher,
    JsonCacher,
    Lazy,
    PickleCacher,
    Record,
    StageDefinitionError,
    aggregate,
    stage,
)
from parafactory._core.scheduler import Scheduler
from parafactory._model.cache import Artifact, Cache, Hit
from parafactory._model.parameters import parameter_set_hash

pytestmark = pytest.mark.timeout(60)

BOOKKEEPING = {"params_registry.json", ".registry.lock", ".entries-index", ".staging"}


def artifact_files(cache_dir: Path) -> set[str]:
    """Files in ``cache_dir`` other than meta files and the registry (temp files included)."""
    return {
        p.name
        for p in Path(cache_dir).iterdir()
        if p.is_file() and p.name not in BOOKKEEPING and not p.name.endswith(".meta.json")
    }


def temp_files(cache_dir: Path) -> list[str]:
    """Temporary files in the cache directory, its staging folder first."""
    return [p.name for p in Path(cache_dir).rglob("*") if ".tmp" in p.name]


def combo_hash(own: str | None, members: list[str]) -> str:
    """curifactory's combo hash, computed here independently of parafactory."""
    return hashlib.md5(str([own or "None", *sorted(members)]).encode()).hexdigest()


class Counter:
    """Counts calls of a stage defined inside a test (these run in this process)."""

    def __init__(self) -> None:
        self.calls = 0


# -- 1. cachers -------------------------------------------------------------------------------


def test_cacher_count_must_match_output_count():
    with pytest.raises(StageDefinitionError, match="cacher"):

        @stage(outputs=["a", "b"], cachers=[PickleCacher()])
        def too_few(record):
            return 1, 2

    with pytest.raises(StageDefinitionError, match="cacher"):

        @stage(outputs=["a"], cachers=[PickleCacher(), JsonCacher()])
        def too_many(record):
            return 1

    with pytest.raises(StageDefinitionError, match="cacher"):

        @stage(cachers=[PickleCacher()])
        def no_outputs(record):
            return None

    with pytest.raises(StageDefinitionError, match="cacher"):

        @aggregate(outputs=["a", "b"], cachers=[JsonCacher()])
        def aggregate_too_few(record, records):
            return 1, 2


def test_lazy_output_needs_cachers():
    with pytest.raises(StageDefinitionError, match="Lazy"):

        @stage(outputs=[Lazy("model")])
        def lazy_stage(record):
            return 1

    with pytest.raises(StageDefinitionError, match="Lazy"):

        @aggregate(outputs=["plain", Lazy("model")])
        def lazy_aggregate(record, records):
            return 1, 2


def test_a_non_cacher_is_refused():
    with pytest.raises(StageDefinitionError, match="cacher"):

        @stage(outputs=["a"], cachers=["pickle"])
        def with_string(record):
            return 1


def test_a_cacher_class_is_refused_or_works(tmp_path):
    try:

        @stage(outputs=["a"], cachers=[PickleCacher])  # the class, not an instance
        def with_class(record):
            return 1

    except StageDefinitionError:
        return  # refused where it was written: fine
    record = with_class(Record(manager_for(tmp_path), Sweep(name="p")))
    assert record.state["a"] == 1
    rerun = with_class(Record(manager_for(tmp_path), Sweep(name="p")))
    assert rerun.state["a"] == 1


@pytest.mark.parametrize(
    ("cacher", "value"),
    [
        (PickleCacher(), {"tuple": (1, 2), "set": {3, 4}, "none": None, "bytes": b"\x00\xff"}),
        (JsonCacher(), {"list": [1, 2.5, "three"], "nested": {"none": None, "flag": True}}),
        (JoblibCacher(), {"n": 3, "label": "x", "list": [1, (2, 3)]}),
    ],
    ids=["pickle", "json", "joblib"],
)
def test_builtin_cachers_round_trip(tmp_path, cacher, value):
    path = tmp_path / f"artifact.{cacher.extension}"
    cacher.save(value, path)
    assert cacher.load(path) == value


def test_joblib_cacher_loads_arrays_memory_mapped(tmp_path):
    array = np.arange(24, dtype=np.float64).reshape(4, 6)
    cacher = JoblibCacher()
    cacher.save({"array": array, "n": 1}, tmp_path / "a.joblib")
    cacher.save(array, tmp_path / "b.joblib")

    inside = cacher.load(tmp_path / "a.joblib")
    bare = cacher.load(tmp_path / "b.joblib")

    assert isinstance(inside["array"], np.memmap)
    assert isinstance(bare, np.memmap)
    np.testing.assert_array_equal(inside["array"], array)
    np.testing.assert_array_equal(bare, array)
    assert inside["n"] == 1


def test_cacher_default_path_names_the_file(tmp_path):
    path = JsonCacher().path(tmp_path, "prefix", "abc123", "my_stage", "my_output")
    assert path == tmp_path / "prefix_abc123_my_stage_my_output.json"


@pytest.mark.parametrize(
    ("cacher", "value"),
    [
        (PickleCacher(), {"tuple": (1, 2), "set": {3}}),
        (JsonCacher(), {"list": [1, 2.5, "three"]}),
        (JoblibCacher(), np.linspace(0.0, 1.0, 50)),
    ],
    ids=["pickle", "json", "joblib"],
)
def test_builtin_cachers_end_to_end(tmp_path, cacher, value):
    counter = Counter()

    @stage(outputs=["result"], cachers=[cacher])
    def produce(record):
        counter.calls += 1
        return value

    computed = manager_for(tmp_path).map([Sweep(name="p")], [produce], n_jobs=1, progress=False)
    rerun = manager_for(tmp_path).map([Sweep(name="p")], [produce], n_jobs=1, progress=False)

    assert counter.calls == 1
    params_hash = computed[0].params.hash
    artifact = f"cached_{params_hash}_produce_result.{cacher.extension}"
    assert (cache_dir_of(tmp_path) / artifact).exists()
    loaded = rerun[0].state["result"]
    if isinstance(value, np.ndarray):
        assert isinstance(loaded, np.memmap)
        np.testing.assert_array_equal(loaded, value)
    else:
        assert loaded == value
    assert rerun[0].stages == ["produce"]


class TextCacher(Cacher):
    """A user's own cacher: plain text with a header line."""

    extension = "txt"

    def save(self, obj, path):
        Path(path).write_text(f"TEXT v1\n{obj}", encoding="utf-8")

    def load(self, path):
        header, _, body = Path(path).read_text(encoding="utf-8").partition("\n")
        assert header == "TEXT v1"
        return body


def test_custom_cacher_end_to_end(tmp_path):
    counter = Counter()

    @stage(outputs=["greeting", "length"], cachers=[TextCacher(), JsonCacher()])
    def greet(record):
        counter.calls += 1
        return f"hello {record.params.name}", len(record.params.name)

    first_run = greet(Record(manager_for(tmp_path), Sweep(name="world")))
    params_hash = first_run.params.hash
    text_file = cache_dir_of(tmp_path) / f"cached_{params_hash}_greet_greeting.txt"
    assert text_file.read_text(encoding="utf-8") == "TEXT v1\nhello world"
    assert first_run.state["greeting"] == "hello world"

    rerun = greet(Record(manager_for(tmp_path), Sweep(name="world")))
    assert counter.calls == 1
    assert rerun.state["greeting"] == "hello world"
    assert rerun.state["length"] == 5


@stage(outputs=["a", "b"], cachers=[JsonCacher(), PickleCacher()])
def pair(record):
    return record.params.value, {"value": record.params.value}


@aggregate(inputs=["a"], outputs=["sum_a"], cachers=[JsonCacher()])
def sum_a(record, records, a):
    return sum(a.values())


def pair_experiment(param_sets, manager):
    records = [pair(Record(manager, params)) for params in param_sets]
    sum_a(Record(manager, None), records)
    sum_a(Record(manager, Sweep(name="own", value=99)), records[:2])


class KeptElsewhere(PickleCacher):
    """Keeps its files outside the cache directory, and notes where it was told to write."""

    written_in: list[Path] = []

    def path(self, directory, prefix, record_hash, stage, output):
        return directory.parent / "elsewhere" / f"{prefix}_{record_hash}_{stage}_{output}.pkl"

    def save(self, obj, path):
        KeptElsewhere.written_in.append(Path(path).parent)
        super().save(obj, path)


def test_a_file_kept_outside_the_cache_directory_is_written_beside_itself(tmp_path):
    """Renamed into place from where it was written, it must be written on its own
    filesystem: beside itself, not in the cache's staging folder."""
    elsewhere = cache_dir_of(tmp_path).parent / "elsewhere"
    elsewhere.mkdir(parents=True)

    @stage(outputs=["kept"], cachers=[KeptElsewhere()])
    def keep_elsewhere(record):
        return record.params.value

    record = keep_elsewhere(Record(manager_for(tmp_path), Sweep(name="p", value=3)))
    assert KeptElsewhere.written_in == [elsewhere]
    assert [p.name for p in elsewhere.iterdir()] == [
        f"cached_{parameter_set_hash(Sweep(name='p', value=3))}_keep_elsewhere_kept.pkl"
    ]
    assert record.state["kept"] == 3


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cache_file_names(tmp_path, n_jobs):
    params = [Sweep(name=f"p{i}", value=i) for i in range(3)]
    records = manager_for(tmp_path, "names").run(
        pair_experiment, params, n_jobs=n_jobs, progress=False
    )

    hashes = [parameter_set_hash(p) for p in params]
    own_hash = parameter_set_hash(Sweep(name="own", value=99))
    expected = {f"names_{h}_pair_a.json" for h in hashes} | {
        f"names_{h}_pair_b.pkl" for h in hashes
    }
    expected.add(f"names_{combo_hash(None, hashes)}_sum_a_sum_a.json")
    expected.add(f"names_{combo_hash(own_hash, hashes[:2])}_sum_a_sum_a.json")
    assert artifact_files(cache_dir_of(tmp_path)) == expected  # nothing else: no temp files either
    assert records[3].state["sum_a"] == 3
    assert records[4].state["sum_a"] == 1
    assert records[3].hash == combo_hash(None, hashes)


def test_aggregate_cache_entry_depends_on_its_input_records(tmp_path):
    counter = Counter()

    @aggregate(inputs=["a"], outputs=["sum_a"], cachers=[JsonCacher()])
    def counted_sum(record, records, a):
        counter.calls += 1
        return sum(a.values())

    def experiment(param_sets, manager):
        records = [pair(Record(manager, params)) for params in param_sets]
        counted_sum(Record(manager, None), records)

    params = [Sweep(name=f"p{i}", value=i) for i in range(3)]
    manager_for(tmp_path).run(experiment, params, n_jobs=1, progress=False)
    same = manager_for(tmp_path).run(experiment, list(reversed(params)), n_jobs=1, progress=False)
    fewer = manager_for(tmp_path).run(experiment, params[:2], n_jobs=1, progress=False)

    assert counter.calls == 2  # same inputs in another order: cached; other inputs: computed
    assert same[-1].state["sum_a"] == 3
    assert fewer[-1].state["sum_a"] == 1


# -- 2. skipping ----------------------------------------------------------------------------


def test_eager_rerun_skips_cached_stages(tmp_path):
    markers = tmp_path / "markers"
    record = second(first(Record(manager_for(tmp_path), sweep(markers, 1)[0])))
    assert executions(markers) == ["r00", "r00"]
    assert record.state["y"] == 1

    again = second(first(Record(manager_for(tmp_path), sweep(markers, 1)[0])))

    assert executions(markers) == ["r00", "r00"]
    assert again.stages == ["first", "second"]
    assert loads(cache_dir_of(tmp_path)) == 0  # nothing read yet: nothing loaded
    assert again.state["y"] == 1
    assert again.state["x"] == 0


def test_eager_overwrite_recomputes(tmp_path):
    markers = tmp_path / "markers"
    first(Record(manager_for(tmp_path), sweep(markers, 1)[0]))

    params = sweep(markers, 1)[0]
    params.overwrite = True
    first(Record(manager_for(tmp_path), params))
    assert executions(markers, "first") == ["r00", "r00"]

    first(Record(manager_for(tmp_path, overwrite=True), sweep(markers, 1)[0]))
    assert executions(markers, "first") == ["r00"] * 3

    first(Record(manager_for(tmp_path), sweep(markers, 1)[0]))
    assert executions(markers, "first") == ["r00"] * 3


@pytest.fixture
def submissions(monkeypatch):
    """Records how many chains the scheduler sends to its executor."""
    sent: list[str] = []
    original = Scheduler._submit

    def counting_submit(self, steps):
        sent.extend(step.record.name for step in steps)
        return original(self, steps)

    monkeypatch.setattr(Scheduler, "_submit", counting_submit)
    return sent


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_parallel_rerun_of_cached_sweep_dispatches_and_loads_nothing(tmp_path, n_jobs, submissions):
    markers = tmp_path / "markers"
    manager_for(tmp_path).run(chain_experiment, sweep(markers, 4), n_jobs=n_jobs, progress=False)
    assert len(executions(markers)) == 4 + 4 + 1
    assert len(submissions) == 4
    submissions.clear()

    records = manager_for(tmp_path).run(
        chain_experiment, sweep(markers, 4), n_jobs=n_jobs, progress=False
    )

    assert submissions == []
    assert len(executions(markers)) == 4 + 4 + 1
    assert loads(cache_dir_of(tmp_path)) == 0
    assert [r.stages for r in records[:4]] == [["first", "second"]] * 4
    assert [r.state["y"] for r in records[:4]] == [1, 3, 5, 7]
    assert records[4].state["total"] == 16


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_only_artifacts_an_uncached_stage_reads_are_loaded(tmp_path, n_jobs, submissions):
    markers = tmp_path / "markers"
    manager_for(tmp_path).run(x_sum_experiment, sweep(markers, 4), n_jobs=n_jobs, progress=False)
    submissions.clear()

    records = manager_for(tmp_path).run(
        x_sum_experiment, sweep(markers, 4), n_jobs=n_jobs, progress=False
    )

    assert submissions == []
    assert (
        executions(markers, "first")
        == executions(markers, "second")
        == ["r00", "r01", "r02", "r03"]
    )
    assert executions(markers, "x_sum") == ["aggregate"] * 2
    assert loads(cache_dir_of(tmp_path), "x") == 4  # the aggregate read x of every record
    assert loads(cache_dir_of(tmp_path), "y") == 0  # nothing still to run needs y
    assert records[4].state["x_sum"] == 12


def chain_with_uncached_end(param_sets, manager):
    for params in param_sets:
        third(second(first(Record(manager, params))))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_chain_with_only_its_last_stage_uncached_loads_only_what_that_stage_reads(
    tmp_path, n_jobs, submissions
):
    markers = tmp_path / "markers"
    manager_for(tmp_path).run(
        chain_with_uncached_end, sweep(markers, 4), n_jobs=n_jobs, progress=False
    )
    submissions.clear()

    records = manager_for(tmp_path).run(
        chain_with_uncached_end, sweep(markers, 4), n_jobs=n_jobs, progress=False
    )

    assert sorted(submissions) == ["r00", "r01", "r02", "r03"]
    assert len(executions(markers, "first")) == len(executions(markers, "second")) == 4
    assert len(executions(markers, "third")) == 8
    assert loads(cache_dir_of(tmp_path), "x") == 0
    assert loads(cache_dir_of(tmp_path), "y") == 4
    assert [r.state["z"] for r in records] == [10, 30, 50, 70]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_outputs_loaded_in_a_worker_reach_the_parents_state(tmp_path, n_jobs):
    markers = tmp_path / "markers"
    manager_for(tmp_path).run(
        chain_with_uncached_end, sweep(markers, 2), n_jobs=n_jobs, progress=False
    )

    records = manager_for(tmp_path).run(
        chain_with_uncached_end, sweep(markers, 2), n_jobs=n_jobs, progress=False
    )

    assert [sorted(r.state) for r in records] == [["x", "y", "z"]] * 2
    # The worker loaded y to run third; it comes back as the artifact, still on disk here.
    assert all(isinstance(dict.__getitem__(r.state, "y"), Artifact) for r in records)
    assert [(r.state["x"], r.state["y"]) for r in records] == [(0, 1), (2, 3)]
    assert [r.stages for r in records] == [["first", "second", "third"]] * 2


@pytest.mark.parametrize("how", ["params", "manager"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_parallel_overwrite_recomputes(tmp_path, n_jobs, how):
    markers = tmp_path / "markers"
    manager_for(tmp_path).run(chain_experiment, sweep(markers, 3), n_jobs=n_jobs, progress=False)

    params = sweep(markers, 3)
    if how == "params":
        for p in params:
            p.overwrite = True
        manager = manager_for(tmp_path)
    else:
        manager = manager_for(tmp_path, overwrite=True)
    records = manager.run(chain_experiment, params, n_jobs=n_jobs, progress=False)

    assert executions(markers, "first") == sorted(["r00", "r01", "r02"] * 2)
    assert executions(markers, "second") == sorted(["r00", "r01", "r02"] * 2)
    if how == "manager":
        assert executions(markers, "total") == ["aggregate"] * 2
    assert [r.state["y"] for r in records[:3]] == [1, 3, 5]


# -- 4. atomic writes -------------------------------------------------------------------------


class HalfThenFail(Cacher):
    """Writes half its data, then fails like a full disk would, while ``failing`` is set."""

    extension = "bin"

    def __init__(self) -> None:
        self.failing = True

    def save(self, obj, path):
        with open(path, "wb") as file:
            file.write(obj[: len(obj) // 2])
            if self.failing:
                raise OSError(28, "No space left on device")
            file.write(obj[len(obj) // 2 :])

    def load(self, path):
        return Path(path).read_bytes()


def test_failed_write_leaves_nothing_that_counts_as_cached(tmp_path):
    counter = Counter()
    cacher = HalfThenFail()

    @stage(outputs=["small", "big"], cachers=[PickleCacher(), cacher])
    def write_two(record):
        counter.calls += 1
        return "small", b"x" * 100_000

    with pytest.raises(OSError, match="No space"):
        write_two(Record(manager_for(tmp_path), Sweep(name="p")))
    params_hash = parameter_set_hash(Sweep(name="p"))
    cache_dir = cache_dir_of(tmp_path)
    assert not (cache_dir / f"cached_{params_hash}_write_two_big.bin").exists()
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".meta.json")]
    assert temp_files(cache_dir) == []

    cacher.failing = False
    record = write_two(Record(manager_for(tmp_path), Sweep(name="p")))
    assert counter.calls == 2
    assert record.state["big"] == b"x" * 100_000

    again = write_two(Record(manager_for(tmp_path), Sweep(name="p")))
    assert counter.calls == 2
    assert again.state["big"] == b"x" * 100_000


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {seconds} s")
        time.sleep(0.02)


def test_writer_killed_mid_write_leaves_nothing_that_counts_as_cached(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    cache_dir = cache_dir_of(tmp_path)
    cache_dir.mkdir(parents=True)
    (cache_dir / "stall").touch()
    final = cache_dir / f"cached_{parameter_set_hash(Sweep(name='r00', marker_dir=str(markers)))}"
    final = final.with_name(final.name + "_blob_blob.bin")

    writer = multiprocessing.get_context("spawn").Process(
        target=write_blob_eagerly, args=(str(tmp_path), str(markers))
    )
    writer.start()
    try:
        _wait_for(cache_dir / "half-written", 30)
        being_written = Path((cache_dir / "half-written").read_text())
        assert being_written.parent == cache_dir / ".staging"
        assert being_written != final
        assert being_written.stat().st_size == len(PAYLOAD) // 2
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.join(10)
        if writer.is_alive():
            writer.kill()
    assert writer.exitcode == -signal.SIGKILL
    assert not final.exists()
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".meta.json")]

    (cache_dir / "stall").unlink()
    record = blob(Record(manager_for(tmp_path), Sweep(name="r00", marker_dir=str(markers))))
    assert executions(markers) == ["r00", "r00"]  # the killed write did not count as cached
    assert final.read_bytes() == PAYLOAD
    assert record.state["blob"] == PAYLOAD

    again = blob(Record(manager_for(tmp_path), Sweep(name="r00", marker_dir=str(markers))))
    assert executions(markers) == ["r00", "r00"]
    assert again.state["blob"] == PAYLOAD


def test_two_processes_writing_one_artifact_leave_one_whole_file(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [
        context.Process(target=race_writer, args=(str(tmp_path), fill, barrier))
        for fill in (ord("A"), ord("B"))
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(45)
    assert [w.exitcode for w in writers] == [0, 0]

    data = (tmp_path / "race_samehash_write_data.bin").read_bytes()
    assert len(data) == RACE_BYTES
    assert data[0] in (ord("A"), ord("B"))
    assert data.count(data[:1]) == RACE_BYTES  # all from one writer
    assert temp_files(tmp_path) == []
    cache = Cache(tmp_path, prefix="race")
    found = cache.lookup(RACE_ENTRY, upstream="")
    assert isinstance(found, Hit)
    assert found.artifacts["data"].load() == data


# -- 6. code changes ----------------------------------------------------------------------------

STAGE_SOURCE = """\
import uuid
from pathlib import Path

from parafactory import PickleCacher, stage

MARKERS = Path({markers!r})
{padding}

@stage(outputs=["answer"], cachers=[PickleCacher()]{options})
def compute(record):
    # {comment}
    (MARKERS / uuid.uuid4().hex).touch()
    return {constant}
"""


class EditableModule:
    """A stage module in tmp_path that a test edits and reloads."""

    def __init__(self, directory: Path, monkeypatch, options: str = "") -> None:
        self.markers = directory / "markers"
        self.markers.mkdir()
        self.name = f"edited_stages_{uuid.uuid4().hex[:8]}"
        self.path = directory / f"{self.name}.py"
        self.options = options
        monkeypatch.syspath_prepend(str(directory))
        monkeypatch.setattr(sys, "dont_write_bytecode", True)  # every reload compiles the source
        self.write(constant=42)
        self.module = importlib.import_module(self.name)

    def write(self, constant: int, comment: str = "the answer", padding: str = "") -> None:
        self.path.write_text(
            STAGE_SOURCE.format(
                markers=str(self.markers),
                padding=padding,
                options=self.options,
                comment=comment,
                constant=constant,
            )
        )

    def edit(self, **changes) -> None:
        self.write(**changes)
        importlib.invalidate_caches()
        self.module = importlib.reload(self.module)

    def executions(self) -> int:
        return len(list(self.markers.iterdir()))


def run_compute(directory: Path, module, how: str):
    manager = manager_for(directory, "edited")
    params = Sweep(name="r00", value=1)
    if how == "eager":
        return module.compute(Record(manager, params)).state["answer"]
    n_jobs = 2 if how == "loky" else 1
    records = manager.map([params], [module.compute], n_jobs=n_jobs, progress=False)
    return records[0].state["answer"]


def stale_messages(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "stale" in r.getMessage()]


@pytest.mark.parametrize("how", ["eager", "inprocess", "loky"])
def test_changed_code_makes_the_cache_stale(tmp_path, monkeypatch, caplog, how):
    stages = EditableModule(tmp_path, monkeypatch)
    assert run_compute(tmp_path, stages.module, how) == 42

    stages.edit(constant=43)
    with caplog.at_level(logging.INFO):
        assert run_compute(tmp_path, stages.module, how) == 43

    assert stages.executions() == 2
    stale = stale_messages(caplog)
    assert stale, "no log record says why the stage was recomputed"
    message = stale[0].getMessage()
    assert stale[0].levelno == logging.INFO
    assert "compute" in message and "code changed" in message
    assert "'r00'" in message  # eager: the call's own line; a run: its stage's line names it

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_compute(tmp_path, stages.module, how) == 43
    assert stages.executions() == 2  # the recomputed entry is cached under the new code
    assert stale_messages(caplog) == []


def test_comments_and_blank_lines_do_not_make_the_cache_stale(tmp_path, monkeypatch, caplog):
    stages = EditableModule(tmp_path, monkeypatch)
    assert run_compute(tmp_path, stages.module, "eager") == 42

    stages.edit(constant=42, comment="a longer comment, reworded", padding="\n\n# moved down\n")
    with caplog.at_level(logging.INFO):
        assert run_compute(tmp_path, stages.module, "eager") == 42

    assert stages.module.compute.__code__.co_firstlineno > 9  # the edit really moved it
    assert stages.executions() == 1
    assert stale_messages(caplog) == []


def test_check_code_false_keeps_the_cache_after_a_code_change(tmp_path, monkeypatch):
    stages = EditableModule(tmp_path, monkeypatch, options=", check_code=False")
    assert run_compute(tmp_path, stages.module, "eager") == 42

    stages.edit(constant=43)
    assert run_compute(tmp_path, stages.module, "eager") == 42
    assert stages.executions() == 1


# -- 8. the parameters registry -------------------------------------------------------------------


def test_params_registry_maps_each_hash_to_its_parameters(tmp_path):
    params = sweep(tmp_path / "markers", 10)
    manager = manager_for(tmp_path)
    manager.map(params, [first], n_jobs=1, progress=False)

    registry = json.loads((manager.cache_dir / "params_registry.json").read_text())
    assert set(registry) == {p.hash for p in params}
    for p in params:
        entry = registry[p.hash]
        assert entry["value"] == repr(p.value)
        assert p.name in entry["name"]
        assert str(tmp_path / "markers") in entry["marker_dir"]

    more = [Sweep(name="extra", value=100)]
    manager_for(tmp_path).map(more, [pair], n_jobs=1, progress=False)
    registry = json.loads((manager.cache_dir / "params_registry.json").read_text())
    assert set(registry) == {p.hash for p in params + more}  # added to, nothing lost


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_params_registry_is_written_once_per_run(tmp_path, monkeypatch, n_jobs):
    calls: list[int] = []
    original = parafactory._model.cache.Cache.register

    def counting_register(self, representations):
        calls.append(len(representations))
        return original(self, representations)

    monkeypatch.setattr(parafactory._model.cache.Cache, "register", counting_register)
    manager = manager_for(tmp_path)
    manager.map(sweep(tmp_path / "markers", 10), [first], n_jobs=n_jobs, progress=False)

    assert calls == [10]
    assert len(json.loads((manager.cache_dir / "params_registry.json").read_text())) == 10
