"""Streaming: an aggregate runs as soon as its inputs are done, while the rest keeps running."""

import pytest

import workloads as w

SLOW_SECONDS = 1.5


@pytest.mark.parametrize("backend", ["loky", "dask"], indirect=True)
def test_fast_groups_aggregate_finishes_before_the_slow_group(manager, backend):
    params = [w.Params(name=f"fast{i}", value=i, group="fast", sleep=0.05) for i in range(2)]
    params += [
        w.Params(name=f"slow{i}", value=i, group="slow", sleep=SLOW_SECONDS) for i in range(2)
    ]
    records = manager.run(w.streaming_experiment, params, progress=False, **backend)

    fast, slow = records[:2], records[2:4]
    fast_aggregate, slow_aggregate = records[4:]
    assert fast_aggregate.name == "fast-aggregate" and slow_aggregate.name == "slow-aggregate"
    assert fast_aggregate.state["members"] == ["fast0", "fast1"]
    assert slow_aggregate.state["members"] == ["slow0", "slow1"]

    fast_done = fast_aggregate.state["aggregated_at"]
    slow_finished = [r.state["finished_at"] for r in slow]
    assert max(r.state["finished_at"] for r in fast) <= fast_done
    # The fast group's aggregate did not wait for the rest of the sweep.
    assert fast_done < min(slow_finished), (fast_done, slow_finished)
    assert min(slow_finished) - fast_done > SLOW_SECONDS / 2
    assert slow_aggregate.state["aggregated_at"] >= max(slow_finished)
