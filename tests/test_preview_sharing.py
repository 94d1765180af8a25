"""``parafactory plan`` shares what it foresees across records the cache holds nothing for,
or holds entries of that its index describes: the outlooks must be exactly those of
foreseeing every call on its own, reading each entry's files."""

from __future__ import annotations

import functools
import random

import pytest

from cache_stages import Sweep, cache_dir_of, manager_for, sweep
from parafactory import ArtifactManager, PickleCacher, Record, aggregate, stage
from parafactory._cli import preview
from parafactory._model.cache import ListedCache


@stage(outputs=["a"], cachers=[PickleCacher()])
def start(record, offset=0):
    return (record.params.value if record.params else 0) + offset


@stage(inputs=["a"], outputs=["b"], cachers=[PickleCacher()])
def grow(record, a):
    return a + 1


@stage(inputs=["b"], outputs=["c"])
def show(record, b):
    """Not cached."""
    return str(b)


@stage(inputs=["b"], outputs=["d"], cachers=[PickleCacher()])
def double(record, b):
    return 2 * b


@aggregate(inputs=["b"], outputs=["t"], cachers=[PickleCacher()])
def tally(record, records, b):
    return sum(b.values())


def mixed_experiment(
    param_sets: list[Sweep], manager: ArtifactManager, *, aggregated: slice
) -> None:
    """Chains from different starts (extra arguments), branches under parameters of their
    own, an uncached stage, an aggregate over half the records with a stage after it, a
    stage called twice on a record, and records with and without parameters making the
    same calls."""
    records = []
    for i, params in enumerate(param_sets):
        record = Record(manager, params)
        start(record, offset=1) if i % 3 == 1 else start(record)
        grow(record)
        if i % 4 == 1:
            record = record.make_copy(Sweep(name=f"copy{i}", value=i))
        double(record)
        show(record)
        records.append(record)
    start(tally(Record(manager, None), records[aggregated]), offset=1)
    for record in [*records[::2], *records[1::4]]:  # again, over what a first call stored
        grow(record)  # (after the aggregate read it, or on a branch that never called it)
    grow(start(Record(manager, None)))
    size = len(param_sets)  # new in each sweep: the calls just made without parameters
    for late in (Sweep(name="late", value=-size), Sweep(name="late!", value=size, overwrite=True)):
        grow(start(Record(manager, late)))


def outlooks(tmp_path, experiment, param_sets, *, shared, monkeypatch, **options):
    """Each record's name and outlooks, foreseen as ``parafactory plan`` does (``shared``),
    or call by call, each entry read (``plan --check-files`` sharing nothing)."""
    with monkeypatch.context() as patch:
        if not shared:
            patch.setattr(preview._Foresight, "sharing_key", lambda foresight, step: None)
        manager = manager_for(tmp_path, dry=True, **options)
        cache = ListedCache.of(manager.cache_settings(), check_files=not shared)
        found = preview.foresee_plan(manager.plan(experiment, param_sets), cache)
        cache.keep_index()
    return [(record.name, calls) for record, calls in found.items()]


@pytest.mark.parametrize(
    "options",
    [{}, {"overwrite_stages": ["grow"]}, {"overwrite": True}],
    ids=["plain", "overwrite-stage", "overwrite-all"],
)
@pytest.mark.parametrize(
    "aggregated",
    [slice(None, None, 2), slice(None, 6)],
    ids=["aggregate-over-new-records", "aggregate-over-cached-records"],
)
def test_shared_foresight_equals_foreseeing_each_call(tmp_path, monkeypatch, options, aggregated):
    experiment = functools.partial(mixed_experiment, aggregated=aggregated)
    markers = tmp_path / "markers"
    manager_for(tmp_path).run(experiment, sweep(markers, 6), n_jobs=1)  # half cached
    damaged = sweep(markers, 6)[4].params_hash()  # one cached record loses an entry
    for path in cache_dir_of(tmp_path).glob(f"*_{damaged}_grow*"):
        path.unlink()
    param_sets = sweep(markers, 12)
    for index in (1, 5, 9):  # new records, two of them branching into cached ones
        param_sets[index].value += 100
    for index in (3, 8):  # a cached and a new record that ask to be recomputed
        param_sets[index].overwrite = True

    found = outlooks(  # files were removed by hand: from the files, writing the index
        tmp_path, experiment, param_sets, shared=True, monkeypatch=monkeypatch, **options
    )
    from_index = outlooks(
        tmp_path, experiment, param_sets, shared=True, monkeypatch=monkeypatch, **options
    )
    expected = outlooks(
        tmp_path, experiment, param_sets, shared=False, monkeypatch=monkeypatch, **options
    )

    assert found == expected
    assert from_index == expected
    verdicts = {outlook.verdict for _, calls in found for outlook in calls}
    if not options:  # every kind of call was there to share, or not
        assert {"new", "cached", "overwrite", "not cached", "no parameters"} <= verdicts


def later_steps_experiment(param_sets: list[Sweep], manager: ArtifactManager) -> None:
    """Calls after an aggregate read a record (a later step of it), and copies made then:
    every record's calls are still of stages none called twice."""
    records = [grow(start(Record(manager, params))) for params in param_sets]
    tally(Record(manager, None), records[::2])
    for i, record in enumerate(records):
        double(record)
        if i % 3 == 0:
            show(record.make_copy(Sweep(name=f"branch{i}", value=i)))
        elif i % 3 == 1:
            show(record)


@pytest.mark.parametrize(
    "options",
    [{}, {"overwrite_stages": ["double"]}, {"overwrite": True}],
    ids=["plain", "overwrite-stage", "overwrite-all"],
)
def test_shared_foresight_equals_foreseeing_each_call_in_later_steps(
    tmp_path, monkeypatch, options
):
    markers = tmp_path / "markers"
    manager_for(tmp_path).run(later_steps_experiment, sweep(markers, 6), n_jobs=1)
    param_sets = sweep(markers, 12)  # half cached, half new
    param_sets[7].overwrite = True

    found = outlooks(
        tmp_path,
        later_steps_experiment,
        param_sets,
        shared=True,
        monkeypatch=monkeypatch,
        **options,
    )
    expected = outlooks(
        tmp_path,
        later_steps_experiment,
        param_sets,
        shared=False,
        monkeypatch=monkeypatch,
        **options,
    )

    assert found == expected
    assert len(found) == 12 + 1 + 4  # the records, the aggregate's, the branches


@stage(inputs=["b"], outputs=["d"])
def note(record, b, text=""):
    """Not cached, with an argument."""
    return f"{text}{b}"


@stage(outputs=["label"])
def label(record, text=""):
    """Not cached, reading nothing: a record may start with calls that store nothing."""
    return text


NEEDS = {start: "", grow: "a", double: "b", show: "b", note: "b", label: ""}  # what each reads


def random_calls(rng, record, have):
    """One to four calls whose inputs the record has, some with arguments."""
    for _ in range(rng.randint(1, 4)):
        call = rng.choice([stage for stage, need in NEEDS.items() if need in have])
        if call is start and rng.random() < 0.3:
            start(record, offset=rng.randint(0, 1))
        elif call in (note, label):
            call(record, text=rng.choice("xy"))
        else:
            call(record)
        have |= set(call.spec.outputs)


def random_experiment(seed):
    """Chains of random calls on records of parameter sets taken with repeats (equal
    hashes), records without parameters, copies, and aggregates with calls after them."""

    def experiment(param_sets, manager):
        rng = random.Random(seed)
        records = []
        for _ in range(len(param_sets) + 4):
            params = rng.choice([*param_sets, None])
            record, have = Record(manager, params), {""}
            random_calls(rng, record, have)
            if rng.random() < 0.2:
                record = record.make_copy(rng.choice(param_sets))
                random_calls(rng, record, have)
            records.append((record, have))
            if rng.random() < 0.15:  # some records so far, aggregated (over those with "b")
                group = rng.sample([member for member, _ in records], min(3, len(records)))
                start(tally(Record(manager, None), group))
        for record, have in rng.sample(records, 4):  # later steps for some
            random_calls(rng, record, have)

    return experiment


@pytest.mark.parametrize("seed", range(30))
def test_shared_foresight_equals_foreseeing_each_call_in_random_experiments(
    tmp_path, monkeypatch, seed
):
    markers = tmp_path / "markers"
    pool = [
        Sweep(name=f"p{i}", value=i, marker_dir=str(markers), overwrite=i % 7 == 3)
        for i in range(14)
    ]
    experiment = random_experiment(seed)
    manager_for(tmp_path).run(experiment, pool[:7], n_jobs=1, errors="continue")

    found = outlooks(tmp_path, experiment, pool, shared=True, monkeypatch=monkeypatch)
    expected = outlooks(tmp_path, experiment, pool, shared=False, monkeypatch=monkeypatch)

    assert found == expected


def same_calls_in_other_steps_experiment(param_sets: list[Sweep], manager: ArtifactManager) -> None:
    """Records whose ``start`` and ``grow`` are two steps (an aggregate reads them in
    between), made before records calling both in one step: either step ends where the
    other records' calls do."""
    half = len(param_sets) // 2
    split = [start(Record(manager, params)) for params in param_sets[:half]]
    tally(Record(manager, None), split)
    for record in split:
        grow(record)
    for params in param_sets[half:]:
        grow(start(Record(manager, params)))


def test_shared_foresight_tells_apart_steps_ending_alike(tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    param_sets = sweep(markers, 8)
    experiment = same_calls_in_other_steps_experiment
    manager_for(tmp_path).run(experiment, param_sets, n_jobs=1)
    for record_params in param_sets[5::2]:  # some one-step records lose their first entry
        for path in cache_dir_of(tmp_path).glob(f"*_{record_params.params_hash()}_start*"):
            path.unlink()

    results = [
        outlooks(tmp_path, experiment, param_sets, shared=shared, monkeypatch=monkeypatch)
        for shared in (True, True, False)  # the files read (the index written), the index
    ]

    assert results[0] == results[2]
    assert results[1] == results[2]
    # r05 computes its first stage again, as the same code: its second loads as before
    new_then_cached = (preview.Outlook("start", "new"), preview.Outlook("grow", "cached"))
    assert ("r05", new_then_cached) in results[2]
