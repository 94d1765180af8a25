"""Same answer: every backend gives every record the state eager, in-process execution gives.

Each case runs an experiment through ``manager.run``/``manager.map`` on the
``backend`` fixture, then calls the same experiment directly (eagerly) with a
separate dry manager, and compares the records position by position.
"""

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

import workloads as w
from parafactory import ArtifactManager, Record


def _by_name(value):
    """``value`` with every Record replaced by its name, so states compare across managers."""
    if isinstance(value, Record):
        return ("Record", value.name)
    if isinstance(value, dict):
        return {_by_name(key): _by_name(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_by_name(item) for item in value)
    return value


def run_eagerly(tmp_path, experiment, param_sets):
    """Call the experiment directly: every stage runs at once, in this process."""
    eager = ArtifactManager("eager", root=tmp_path, dry=True, console_log=False)
    try:
        experiment(param_sets, eager)
    finally:
        eager.close()
    return eager.records


def assert_same_answer(records, manager, expected):
    assert all(isinstance(record, Record) for record in records)
    # run returns every record it created, in creation order, aggregate records included.
    assert len(records) == len(manager.records)
    assert all(got is made for got, made in zip(records, manager.records, strict=True))
    assert [r.name for r in records] == [r.name for r in expected]
    for position, (got, want) in enumerate(zip(records, expected, strict=True)):
        where = f"record {position} ({want.name!r})"
        assert got.error is None, where
        assert got.params == want.params, where
        assert got.stages == want.stages, where
        assert _by_name(got.state) == _by_name(want.state), where
        assert _by_name(got.output) == _by_name(want.output), where


def test_seed_example(manager, backend, tmp_path):
    records = manager.run(w.seed_experiment, w.seed_params(), progress=False, **backend)
    expected = run_eagerly(tmp_path, w.seed_experiment, w.seed_params())
    assert_same_answer(records, manager, expected)
    # The numbers the seed notebook prints.
    assert [r.state for r in records[:3]] == [
        {"initial_value": 5.0},
        {"initial_value": 10.0, "final_value": 20.0},
        {"initial_value": 20.0, "final_value": 80.0},
    ]
    assert records[3].state == {
        "all_final_values": {"doubled": 20.0, "uber-double": 80.0},
        "maximum_value": 80.0,
    }


def test_200_records_3_stages_map(manager, backend, tmp_path):
    stages = [w.make_base, w.expand, w.summarize]
    records = manager.map(w.numbered_params(200), stages, progress=False, **backend)
    expected = run_eagerly(tmp_path, w.three_stage_experiment, w.numbered_params(200))
    assert_same_answer(records, manager, expected)
    assert records[199].state["summary"] == {"label": "p199:598", "total": 5980, "largest": 2392}
    assert all(r.stages == ["make_base", "expand", "summarize"] for r in records)


def test_aggregate_then_stages_on_its_record_then_aggregate_of_aggregates(
    manager, backend, tmp_path
):
    def params():
        return [
            w.Params(name=f"{group}{i}", value=10 * g + i, group=group)
            for g, group in enumerate("abc")
            for i in range(3)
        ]

    records = manager.run(w.nested_aggregates_experiment, params(), progress=False, **backend)
    expected = run_eagerly(tmp_path, w.nested_aggregates_experiment, params())
    assert_same_answer(records, manager, expected)
    group_records, final = records[9:12], records[12]
    assert group_records[0].stages == ["make_base", "total_summaries", "scale_total", "per_member"]
    assert [r.stages for r in group_records[1:]] == [
        ["total_summaries", "scale_total", "per_member"]
    ] * 2
    assert group_records[0].state["members"] == ["a0", "a1", "a2"]
    assert final.stages == ["combine_totals"]
    assert set(final.state["overall"]["scaled"]) == {r.name for r in group_records}


def test_two_aggregates_over_overlapping_subsets(manager, backend, tmp_path):
    records = manager.run(
        w.overlapping_aggregates_experiment, w.numbered_params(7), progress=False, **backend
    )
    expected = run_eagerly(tmp_path, w.overlapping_aggregates_experiment, w.numbered_params(7))
    assert_same_answer(records, manager, expected)
    names = [r.name for r in records[:7]]
    assert [r.state["members"] for r in records[7:]] == [names[:4], names[2:], names[1::2]]


def test_aggregate_sees_only_state_planned_before_it(manager, backend, tmp_path):
    records = manager.run(
        w.early_aggregate_experiment, w.numbered_params(6), progress=False, **backend
    )
    expected = run_eagerly(tmp_path, w.early_aggregate_experiment, w.numbered_params(6))
    assert_same_answer(records, manager, expected)
    first, second, third = (r.state for r in records[7:])
    assert records[6].state == {} and records[6].stages == []
    assert first["seen_keys"] == {**{f"p{i:03d}": ["base"] for i in range(6)}, "idle": []}
    assert first["base_sum"] == sum(3 * i + 1 for i in range(6))
    assert second["seen_keys"]["p000"] == ["base", "label", "multiples"]
    assert second["seen_keys"]["p001"] == ["base"]
    assert third["base_sum"] == sum(3 * i + 1001 for i in range(6))
    assert "summary" not in third["seen_keys"]["p000"]
    assert records[0].state["base"] == 1001
    assert records[0].state["summary"]["label"] == "p000:1"  # expand ran before bump_base


def test_aggregate_over_a_repeated_member_and_its_own_record(manager, backend, tmp_path):
    records = manager.run(
        w.repeated_members_experiment, w.numbered_params(3), progress=False, **backend
    )
    expected = run_eagerly(tmp_path, w.repeated_members_experiment, w.numbered_params(3))
    assert_same_answer(records, manager, expected)
    own, last = records[3].state, records[4].state
    assert own["seen_keys"] == {
        "p000": ["base"],
        "own": ["base"],
        "p001": ["base"],
        "p002": ["base"],
    }
    assert last["seen_keys"]["own"] == ["base", "base_sum", "label", "multiples", "seen_keys"]


def test_stage_mutating_its_input_in_place_after_an_aggregate(manager, backend, tmp_path):
    records = manager.run(
        w.in_place_mutation_experiment, w.numbered_params(4), progress=False, **backend
    )
    expected = run_eagerly(tmp_path, w.in_place_mutation_experiment, w.numbered_params(4))
    assert [r.state["history"] for r in expected[:4]] == [[i, 10 * i] for i in range(4)]
    assert_same_answer(records, manager, expected)


@pytest.mark.parametrize("backend", ["inprocess"], indirect=True)
def test_contract_detects_a_wrong_state(manager, backend, tmp_path):
    """The comparison itself can fail: a state changed after the run no longer matches."""
    records = manager.run(w.seed_experiment, w.seed_params(), progress=False, **backend)
    expected = run_eagerly(tmp_path, w.seed_experiment, w.seed_params())
    records[1].state["final_value"] += 1
    with pytest.raises(AssertionError):
        assert_same_answer(records, manager, expected)


@pytest.mark.parametrize("pool", [ThreadPoolExecutor, ProcessPoolExecutor])
def test_any_executor_gives_the_same_answer(manager, tmp_path, pool):
    with pool(max_workers=2) as executor:
        records = manager.run(
            w.nested_aggregates_experiment, w.numbered_params(6), backend=executor, progress=False
        )
    expected = run_eagerly(tmp_path, w.nested_aggregates_experiment, w.numbered_params(6))
    assert_same_answer(records, manager, expected)
