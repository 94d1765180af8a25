"""``Lazy("name")`` outputs stay on disk and load on first access of ``record.state[name]``.

Loads are counted by ``cache_stages.CountingCacher`` (one file per load), so loads in
worker processes count too.
"""

from __future__ import annotations

import pytest

from cache_stages import (
    cache_dir_of,
    executions,
    first_model_weights,
    first_model_weights_from_state,
    loads,
    manager_for,
    sweep,
    train,
)
from parafactory import Record
from parafactory._model.cache import Artifact

pytestmark = pytest.mark.timeout(60)


def unloaded(record: Record, key: str) -> bool:
    return isinstance(dict.__getitem__(record.state, key), Artifact)


def run_train(tmp_path, how: str, count: int = 3) -> list[Record]:
    markers = tmp_path / "markers"
    manager = manager_for(tmp_path)
    if how == "eager":
        return [train(Record(manager, params)) for params in sweep(markers, count)]
    n_jobs = 2 if how == "loky" else 1
    return manager.map(sweep(markers, count), [train], n_jobs=n_jobs, progress=False)


@pytest.mark.parametrize("how", ["eager", "inprocess", "loky"])
def test_lazy_output_stays_on_disk_until_read(tmp_path, how):
    records = run_train(tmp_path, how)

    assert all(unloaded(r, "model") for r in records)
    assert not any(unloaded(r, "score") for r in records)  # not Lazy: in memory
    assert [r.state["score"] for r in records] == [0.0, 0.1, 0.2]
    assert loads(cache_dir_of(tmp_path)) == 0

    assert records[1].state["model"] == {"weights": [1, 1, 1]}
    assert loads(cache_dir_of(tmp_path), "model") == 1
    assert not unloaded(records[1], "model")
    assert records[1].state["model"] == {"weights": [1, 1, 1]}
    assert loads(cache_dir_of(tmp_path), "model") == 1  # loaded once, then kept
    assert unloaded(records[0], "model") and unloaded(records[2], "model")


@pytest.mark.parametrize("how", ["eager", "inprocess", "loky"])
def test_cached_lazy_output_stays_on_disk_after_a_rerun(tmp_path, how):
    run_train(tmp_path, how)
    records = run_train(tmp_path, how)

    assert len(executions(tmp_path / "markers", "train")) == 3
    assert all(unloaded(r, "model") for r in records)
    assert loads(cache_dir_of(tmp_path)) == 0
    assert records[2].state.get("model") == {"weights": [2, 2, 2]}
    assert loads(cache_dir_of(tmp_path), "model") == 1


def test_printing_a_state_does_not_load_lazy_outputs(tmp_path):
    (record,) = run_train(tmp_path, "eager", count=1)

    shown = repr(record.state)

    assert "model" in shown and "score" in shown
    assert loads(cache_dir_of(tmp_path)) == 0
    assert unloaded(record, "model")


def lazy_then_aggregate(aggregate_stage):
    def experiment(param_sets, manager):
        records = [train(Record(manager, params)) for params in param_sets]
        aggregate_stage(Record(manager, None), records)

    return experiment


@pytest.mark.parametrize(
    "aggregate_stage",
    [first_model_weights_from_state, first_model_weights],
    ids=["reading_one_records_state", "over_lazy_input"],
)
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_aggregate_loads_only_the_lazy_values_it_reads(tmp_path, n_jobs, aggregate_stage):
    records = manager_for(tmp_path).run(
        lazy_then_aggregate(aggregate_stage),
        sweep(tmp_path / "markers", 3),
        n_jobs=n_jobs,
        progress=False,
    )

    assert records[3].state["first_weights"] == [0, 0, 0]
    assert loads(cache_dir_of(tmp_path), "model") == 1
    assert unloaded(records[1], "model") and unloaded(records[2], "model")
