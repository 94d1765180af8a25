"""``errors="raise"`` stops a sweep at its first failure, on every backend.

No record starts after the failure is known, records already running finish and keep
their state, and the error raised names the record that failed, not a neighbour of its
batch. :func:`travel_stages.begin` leaves a marker each time it starts, in any process.
"""

import pytest

import travel_stages as t
from parafactory import Record, StageFailedError

pytestmark = pytest.mark.timeout(120)


def full_state(i):
    return {"start": i, "value": 2 * i}


def assert_error_names(error, culprit):
    assert (error.record_name, error.stage_name) == (culprit, "produce")
    assert f"'{culprit}'" in str(error) and "produce was told to fail" in str(error)
    assert type(error.__cause__) is t.TripError


def chain_experiment(param_sets, manager):
    for p in param_sets:
        t.produce(t.begin(Record(manager, p)))


@pytest.mark.parametrize("entry", ["map", "run"])
def test_in_process_no_record_starts_after_the_failing_one(manager, tmp_path, entry):
    params = t.trips(30, tmp_path, r4="fail")  # the 5th of 30
    with pytest.raises(StageFailedError) as excinfo:
        if entry == "map":
            manager.map(params, [t.begin, t.produce], n_jobs=1, progress=False)
        else:
            manager.run(chain_experiment, params, n_jobs=1, progress=False)
    assert_error_names(excinfo.value, "r4")

    records = manager.records
    assert [r.name for r in records] == [f"r{i}" for i in range(30)]
    assert [t.started(tmp_path, f"r{i}") for i in range(30)] == [1] * 5 + [0] * 25
    for i, record in enumerate(records[:4]):
        assert record.state == full_state(i)
        assert record.stages == ["begin", "produce"]
        assert record.error is None
    culprit = records[4]
    assert culprit.error is excinfo.value
    assert culprit.state == {"start": 4} and culprit.stages == ["begin"]
    for record in records[5:]:
        assert record.state == {} and record.stages == [] and record.error is None


@pytest.mark.parametrize("backend", ["loky", "dask"], indirect=True)
def test_a_pool_stops_dispatching_and_keeps_what_was_in_flight(manager, backend, tmp_path):
    count, culprit = 2000, 1000  # tiny records: batches hold many
    params = t.trips(count, tmp_path, r1000="fail")
    with pytest.raises(StageFailedError) as excinfo:
        manager.map(params, [t.begin, t.produce], progress=False, **backend)
    assert_error_names(excinfo.value, f"r{culprit}")

    records = manager.records
    assert len(records) == count
    starts = [t.started(tmp_path, f"r{i}") for i in range(count)]
    assert max(starts) == 1  # nothing ran twice
    assert starts[culprit] == 1
    assert records[culprit].error is excinfo.value
    assert records[culprit].state == {"start": culprit}
    never_started = [i for i in range(count) if not starts[i]]
    assert never_started, "dispatching should stop once the failure is known"
    for i, record in enumerate(records):
        if i == culprit:
            continue
        if starts[i]:  # it was in flight: it finished, and its state is kept
            assert (record.state, record.stages) == (full_state(i), ["begin", "produce"])
            assert record.error is None
        else:
            assert (record.state, record.stages, record.error) == ({}, [], None)
