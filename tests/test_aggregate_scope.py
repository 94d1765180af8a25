"""Which records an aggregate called with ``records=None`` reads.

Inside ``manager.run`` it is exactly the records that this call of the experiment
created; eagerly it is every other record of the manager (curifactory's meaning),
and records lacking an input are left out with one warning naming them. Also: the
README's ``@aggregate`` example runs as written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path

import pytest

from parafactory import Record
from state_stages import (
    collect,
    collect_midway,
    emit,
    emit_then_collect,
    items,
    marker_count,
)

pytestmark = pytest.mark.timeout(120)

README = Path(__file__).resolve().parent.parent / "README.md"


def lacking_input_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "collect" in r.getMessage()
    ]


# -- inside manager.run ---------------------------------------------------------------------------


def test_records_none_in_run_reads_only_the_records_of_that_call(
    make_manager, backend, tmp_path, caplog
):
    manager = make_manager("scope")
    markers = tmp_path / "markers"
    emit(Record(manager, items(markers, ("eager", 100))[0]))  # an earlier cell's record

    with caplog.at_level(logging.WARNING):
        first = manager.run(
            emit_then_collect, items(markers, ("a", 1), ("b", 2)), progress=False, **backend
        )
        second = manager.run(
            emit_then_collect,
            items(markers, ("c", 3), ("d", 4), ("e", 5)),
            progress=False,
            **backend,
        )

    assert [r.name for r in first[:2]] == ["a", "b"] and first[2].params is None
    assert first[2].state["members"] == ["a", "b"]
    assert first[2].state["values"] == {"a": 1, "b": 2}
    assert [r.name for r in second[:3]] == ["c", "d", "e"] and second[3].params is None
    assert second[3].state["members"] == ["c", "d", "e"]
    assert second[3].state["values"] == {"c": 3, "d": 4, "e": 5}
    # Had it read the manager's other records, the earlier aggregate record (no "value")
    # would have been warned about.
    assert lacking_input_warnings(caplog) == []
    assert len(manager.records) == 1 + 3 + 4


def test_records_none_in_run_after_eager_records_reads_only_that_call(
    make_manager, backend, tmp_path
):
    manager = make_manager("scope")
    markers = tmp_path / "markers"
    for params in items(markers, ("early-1", 10), ("early-2", 20)):
        emit(Record(manager, params))
    collect(Record(manager, None))  # an eager aggregate record too

    records = manager.run(emit_then_collect, items(markers, ("late", 7)), progress=False, **backend)

    assert records[-1].state["members"] == ["late"]
    assert records[-1].state["values"] == {"late": 7}


@pytest.mark.parametrize("how", ["eager", "run"])
def test_records_none_reads_the_records_created_before_the_call(make_manager, tmp_path, how):
    """As eagerly, an aggregate in the middle of an experiment reads the records made
    so far, not those the experiment creates after calling it."""
    manager = make_manager("scope")
    param_sets = items(tmp_path / "markers", ("a", 1), ("b", 2), ("c", 3))
    if how == "eager":
        collect_midway(param_sets, manager)
        records = manager.records
    else:
        records = manager.run(collect_midway, param_sets, n_jobs=2, progress=False)

    assert [r.params.name if r.params else None for r in records] == ["a", "b", None, "c"]
    assert records[2].state["members"] == ["a", "b"]
    assert records[2].state["values"] == {"a": 1, "b": 2}
    assert records[3].state["value"] == 3


# -- eagerly --------------------------------------------------------------------------------------


def test_eager_records_none_reads_every_other_record_and_warns_once_about_gaps(
    make_manager, tmp_path, caplog
):
    manager = make_manager("scope", dry=True)
    markers = tmp_path / "markers"
    with_value = items(markers, ("has-1", 1), ("has-2", 2))
    for params in with_value:
        emit(Record(manager, params))
    Record(manager, items(markers, ("bare", 9))[0])  # never given a "value"

    with caplog.at_level(logging.WARNING):
        result = collect(Record(manager, None))  # must not fail

    assert result.state["members"] == ["bare", "has-1", "has-2"]
    assert result.state["values"] == {"has-1": 1, "has-2": 2}
    warnings = lacking_input_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "'bare'" in warnings[0] and "'value'" in warnings[0], warnings[0]
    assert "has-1" not in warnings[0] and "has-2" not in warnings[0], warnings[0]


def test_eager_records_none_after_a_run_reads_the_runs_records_too(make_manager, tmp_path, caplog):
    """Eagerly, the records of earlier runs are the manager's records like any other;
    the run's aggregate record has no ``value`` and is left out, with one warning."""
    manager = make_manager("scope")
    markers = tmp_path / "markers"
    run_records = manager.run(
        emit_then_collect, items(markers, ("a", 1), ("b", 2)), n_jobs=1, progress=False
    )
    emit(Record(manager, items(markers, ("eager", 5))[0]))

    with caplog.at_level(logging.WARNING):
        result = collect(Record(manager, None))

    aggregate_name = run_records[2].name
    assert result.state["members"] == sorted(["a", "b", aggregate_name, "eager"])
    assert result.state["values"] == {"a": 1, "b": 2, "eager": 5}
    warnings = lacking_input_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert repr(aggregate_name) in warnings[0], warnings[0]


# -- map ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1])
def test_map_refuses_an_aggregate_in_its_stage_list(make_manager, tmp_path, position):
    manager = make_manager("scope")
    stages = [emit, collect] if position == 1 else [collect, emit]

    with pytest.raises(TypeError, match="aggregate"):
        manager.map(items(tmp_path / "markers", ("a", 1)), stages, n_jobs=1, progress=False)

    assert marker_count(tmp_path / "markers") == 0
    assert manager.records == []


# -- the README's example -------------------------------------------------------------------------


def aggregates_section(readme: str) -> str:
    """The text under the README heading that documents aggregates."""
    match = re.search(r"^## Aggregates[^\n]*\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match is not None, (
        "README.md has no '## Aggregates' section: add one with a complete, runnable "
        "@aggregate example in a ```python block"
    )
    return match.group(1)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def test_readme_aggregate_example_runs_as_written(tmp_path, monkeypatch):
    blocks = python_blocks(aggregates_section(README.read_text(encoding="utf-8")))
    code = "\n".join(blocks)
    assert "@aggregate" in code, (
        "the README's Aggregates section has no ```python block with an @aggregate example"
    )
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()

    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md (Aggregates)", "exec"), {"__name__": "__main__"})

    # worked out by hand: 5 * multiplier for multipliers 1, 2 and 4
    expected = {
        "all_final_values": {"x1.0": 5.0, "x2.0": 10.0, "x4.0": 20.0},
        "maximum_value": 20.0,
    }
    assert printed.getvalue().strip() == repr(expected)
    # and the output the README shows under its print is what it prints
    shown = re.findall(r"^# (\{.*\})$", code, re.M)
    assert shown == [repr(expected)], shown
